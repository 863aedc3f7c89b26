"""local-proxy with a loopback endpoint: joining control planes reach a real API server.

With the endpoint on every node's own proxy (127.0.0.1), a joining control plane has nothing
behind it yet, so it discovers through a file naming the first control plane's API server,
and its admin.conf (kubeadm join's client) points there too. A control plane needs a proxy
only when the proxy's port is not the API server's own; the first one gets it before
`kubeadm init`, the others after their join. From source text to the compiled files and
plan, and, with kubectl, the discovery file against an HTTPS server holding the first
control plane's compiled serving certificate.
"""

from __future__ import annotations

import base64
import http.server
import json
import random
import ssl
import subprocess
import threading

import pytest
import yaml
from cluster_helpers import require_binary

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.kubeadm_schema import validate_documents
from kubeforge.compiler.plan import Plan
from tests.conftest import FIXED_NOW

KUBEADM = "etc/kubernetes/kubeadm"

SOURCE = """cluster lp {
  kubernetes "1.37.2"
  loadbalancer local-proxy%(lb)s
  pki { algorithm ecdsa-p256 }
  node cp1 { address %(net)s.11  role control-plane }
  node cp2 { address %(net)s.12  role control-plane }
  node cp3 { address %(net)s.13  role control-plane }
  node w1 { address %(net)s.21  role worker }
}
"""


def build(tmp_path, lb="", net="10.77.0"):
    path = tmp_path / "lp.kf"
    path.write_text(SOURCE % {"lb": lb, "net": net})
    result = compile_file(path, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW)
    return result.root


def yaml_docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def server_of(path):
    return yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"]


def steps(root):
    return {s.id: s for s in Plan.from_json((root / "plan.json").read_text()).steps}


def test_joining_control_planes_discover_through_the_first_control_plane(tmp_path):
    root = build(tmp_path)
    for cp in ("cp2", "cp3"):
        join_path = root / f"nodes/{cp}" / KUBEADM / "join.yaml"
        assert validate_documents(join_path.read_text()) == []
        [join] = yaml_docs(join_path)
        token = join["discovery"]["tlsBootstrapToken"]
        assert join["discovery"] == {"file": {"kubeConfigPath": f"/{KUBEADM}/discovery.conf"},
                                     "tlsBootstrapToken": token}
        discovery = yaml.safe_load((root / f"nodes/{cp}" / KUBEADM / "discovery.conf").read_text())
        cluster = discovery["clusters"][0]["cluster"]
        assert cluster["server"] == "https://10.77.0.11:6443"
        ca = (tmp_path / "state/pki/ca.crt").read_bytes()
        assert base64.b64decode(cluster["certificate-authority-data"]) == ca
        assert discovery["users"][0]["user"] == {"token": token}
        # kubeadm join's own client (etcd join, mark-control-plane) uses admin.conf.
        assert server_of(root / f"nodes/{cp}/etc/kubernetes/admin.conf") \
            == "https://10.77.0.11:6443"
    # The first control plane and every worker keep the node-local endpoint.
    assert server_of(root / "nodes/cp1/etc/kubernetes/admin.conf") == "https://127.0.0.1:6443"
    assert server_of(root / "kubeconfigs/admin.conf") == "https://127.0.0.1:6443"
    [worker] = yaml_docs(root / "nodes/w1" / KUBEADM / "join.yaml")
    assert worker["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "127.0.0.1:6443"
    assert not (root / "nodes/w1" / KUBEADM / "discovery.conf").exists()


def test_on_the_api_server_port_control_planes_run_no_proxy(tmp_path):
    root = build(tmp_path)
    plan = steps(root)
    assert not [s for s in plan if "haproxy" in s and not s.startswith("w1/")]
    assert "w1/loadbalancer/service-haproxy" in plan
    # the worker's proxy is up before its join, which goes through it
    join = plan["w1/workers-join/kubeadm-join"]
    assert "w1/loadbalancer/service-haproxy" in _ancestors(plan, join.id)
    for cp in ("cp2", "cp3"):
        kubeadm = plan[f"{cp}/control-plane-join/kubeadm-join"]
        uploads = {plan[n].action.path for n in kubeadm.needs if n in plan
                   and plan[n].action.kind == "upload"}
        assert f"/{KUBEADM}/discovery.conf" in uploads and f"/{KUBEADM}/join.yaml" in uploads


def test_on_another_port_the_first_control_plane_gets_the_proxy_before_init_and_the_others_after_join(
        tmp_path):
    root = build(tmp_path, lb=" { port 7443 }")
    plan = steps(root)
    for node in ("cp1", "cp2", "cp3", "w1"):
        cfg = (root / f"nodes/{node}/etc/haproxy/haproxy.cfg").read_text()
        assert "bind 127.0.0.1:7443" in cfg
    init = plan["cp1/control-plane-init/kubeadm-init"]
    assert "cp1/loadbalancer/service-haproxy" in _ancestors(plan, init.id)
    for cp in ("cp2", "cp3"):
        service = plan[f"{cp}/control-plane-join/service-haproxy"]
        assert f"{cp}/control-plane-join/kubeadm-join" in _ancestors(plan, service.id)
        assert f"{cp}/loadbalancer/service-haproxy" not in plan
        upload = plan[f"{cp}/control-plane-join/upload-etc-haproxy-haproxy.cfg"]
        assert f"{cp}/control-plane-join/kubeadm-join" in upload.needs
    assert "w1/loadbalancer/service-haproxy" in _ancestors(plan, "w1/workers-join/kubeadm-join")


def test_an_ipv6_loopback_endpoint(tmp_path):
    path = tmp_path / "lp6.kf"
    path.write_text("""cluster lp6 {
  kubernetes "1.37.2"
  endpoint "[::1]:6443"
  network { pods fd00:10:244::/56  services fd00:10:96::/112 }
  loadbalancer local-proxy
  pki { algorithm ecdsa-p256 }
  node cp1 { address fd00:77::11  role control-plane }
  node cp2 { address fd00:77::12  role control-plane }
  node cp3 { address fd00:77::13  role control-plane }
  node w1 { address fd00:77::21  role worker }
}
""")
    root = compile_file(path, tmp_path / "build", state_dir=tmp_path / "state",
                        now=FIXED_NOW).root
    cfg = (root / "nodes/w1/etc/haproxy/haproxy.cfg").read_text()
    assert "bind [::1]:6443" in cfg and "server cp1 [fd00:77::11]:6443" in cfg
    discovery = yaml.safe_load((root / "nodes/cp2" / KUBEADM / "discovery.conf").read_text())
    assert discovery["clusters"][0]["cluster"]["server"] == "https://[fd00:77::11]:6443"


def test_kubectl_reaches_the_first_control_plane_with_the_discovery_file(tmp_path):
    """The compiled discovery file works for a real client: kubectl verifies the server
    against the embedded CA (the first control plane's compiled serving certificate) and
    sends the bootstrap token."""
    kubectl = require_binary("kubectl")
    net = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}"
    root = build(tmp_path, net=net)
    [join] = yaml_docs(root / "nodes/cp2" / KUBEADM / "join.yaml")
    token = join["discovery"]["tlsBootstrapToken"]
    pki = root / "nodes/cp1/etc/kubernetes/pki"
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization", ""))
            ok = self.headers.get("Authorization") == f"Bearer {token}"
            body = json.dumps({"kind": "ConfigMap", "apiVersion": "v1",
                               "metadata": {"name": "cluster-info"}} if ok else
                              {"kind": "Status", "code": 401}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((f"{net}.11", 6443), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [kubectl, "--kubeconfig", str(root / "nodes/cp2" / KUBEADM / "discovery.conf"),
             "get", "--raw", "/api/v1/namespaces/kube-public/configmaps/cluster-info"],
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metadata"]["name"] == "cluster-info"
    assert seen and set(seen) == {f"Bearer {token}"}


def _ancestors(plan: dict, step_id: str) -> set[str]:
    seen, todo = set(), [step_id]
    while todo:
        for need in plan[todo.pop()].needs:
            if need not in seen:
                seen.add(need)
                todo.append(need)
    return seen
