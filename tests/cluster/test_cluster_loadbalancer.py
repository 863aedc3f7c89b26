"""API load balancer files: haproxy and keepalived accept them, placement and static pods."""

from __future__ import annotations

import http.server
import random
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from cluster_helpers import (
    CONTROL_PLANES,
    LB_NODES,
    VIP,
    WORKERS,
    compile_cluster,
    host_interface,
    make_cluster,
    node,
    require_binary,
)
from kubeforge.compiler.emit.loadbalancer import (
    CHECK_SCRIPT,
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    LOCAL_PROXY_HEALTH_PORT,
    MANIFESTS_DIR,
    STAGING_DIR,
)
from kubeforge.dsl.diagnostics import DiagnosticError


def haproxy_check(path) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("haproxy"), "-c", "-f", str(path)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("lb_mode, node", [("keepalived-haproxy", "cp1"), ("local-proxy", "w1")])
def test_haproxy_accepts_config(tmp_path, lb_mode, node):
    built = compile_cluster(make_cluster(lb_mode=lb_mode), tmp_path)
    result = haproxy_check(built.path(node, HAPROXY_CFG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_haproxy_rejects_a_broken_config(tmp_path):
    """The check above is meaningful: haproxy -c does fail on a bad keyword."""
    built = compile_cluster(make_cluster(), tmp_path)
    cfg = built.path("cp1", HAPROXY_CFG)
    cfg.write_text(cfg.read_text().replace("balance roundrobin", "balance roundrobinn"))
    assert haproxy_check(cfg).returncode != 0


def test_haproxy_backends_and_checks(tmp_path):
    built = compile_cluster(make_cluster(), tmp_path)
    cfg = built.text("cp2", HAPROXY_CFG)
    assert "bind *:8443" in cfg
    servers = re.findall(r"^\s+server (\S+) (\S+) check verify none$", cfg, re.MULTILINE)
    assert servers == [(n.name, f"{n.address}:6443") for n in CONTROL_PLANES]
    assert "http-check connect ssl" in cfg and "http-check send meth GET uri /healthz" in cfg
    assert "mode tcp" in cfg
    assert "\n    daemon" not in cfg


def test_local_proxy_on_every_non_control_plane_node(tmp_path):
    built = compile_cluster(make_cluster(lb_mode="local-proxy"), tmp_path)
    for w in WORKERS:
        cfg = built.text(w.name, HAPROXY_CFG)
        assert "bind 127.0.0.1:6443" in cfg and "monitor-uri /healthz" in cfg
        assert cfg.count("check verify none") == len(CONTROL_PLANES)
    for cp in CONTROL_PLANES:
        assert HAPROXY_CFG not in built.node_paths(cp.name)
    plan = built.ctx.shared["loadbalancer"]
    assert plan.nodes == ("w1", "w2") and plan.services == ("haproxy",)


def keepalived_test(built, node: str, tmp_path) -> subprocess.CompletedProcess:
    """``keepalived -t`` on a node's compiled config. keepalived refuses interfaces this
    machine lacks and check scripts it cannot find, so the copy names a local interface and
    the compiled check script's place in the build tree; nothing else changes."""
    conf = built.text(node, KEEPALIVED_CONF)
    conf = conf.replace(f"interface {built.cluster.loadbalancer.interface}\n",
                        f"interface {host_interface()}\n")
    conf = conf.replace(f'"{CHECK_SCRIPT}"', f'"{built.path(node, CHECK_SCRIPT)}"')
    path = tmp_path / f"{node}-keepalived.conf"
    path.write_text(conf)
    return subprocess.run([require_binary("keepalived"), "-t", "-f", str(path)],
                          capture_output=True, text=True, check=False)


def test_keepalived_accepts_config(tmp_path):
    built = compile_cluster(make_cluster(), tmp_path)
    for cp in CONTROL_PLANES:
        result = keepalived_test(built, cp.name, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_keepalived_rejects_a_broken_config(tmp_path):
    built = compile_cluster(make_cluster(), tmp_path)
    conf = built.path("cp1", KEEPALIVED_CONF)
    conf.write_text(conf.read_text().replace("virtual_router_id", "virtual_router_idd"))
    assert keepalived_test(built, "cp1", tmp_path).returncode != 0


def vrrp(text: str) -> dict[str, str]:
    keys = ("state", "priority", "weight", "virtual_router_id", "interface", "unicast_src_ip")
    return {k: re.search(rf"^\s+{k} (\S+)$", text, re.MULTILINE).group(1) for k in keys}


def test_keepalived_priorities_and_failover_arithmetic(tmp_path):
    built = compile_cluster(make_cluster(), tmp_path)
    settings = [vrrp(built.text(n.name, KEEPALIVED_CONF)) for n in CONTROL_PLANES]
    assert [s["state"] for s in settings] == ["MASTER", "BACKUP", "BACKUP"]
    priorities = [int(s["priority"]) for s in settings]
    assert priorities == sorted(priorities, reverse=True) and len(set(priorities)) == 3
    assert {s["virtual_router_id"] for s in settings} == {"51"}
    assert {s["interface"] for s in settings} == {"eth1"}
    # a node whose check fails ranks below every healthy one
    failed = [p + int(s["weight"]) for p, s in zip(priorities, settings)]
    assert max(failed) < min(priorities)
    conf = built.text("cp2", KEEPALIVED_CONF)
    assert VIP in conf and "10.0.0.11\n" in conf and "10.0.0.13\n" in conf


def test_check_script(tmp_path):
    built = compile_cluster(make_cluster(), tmp_path)
    art = built.artifact(f"nodes/cp1{CHECK_SCRIPT}")
    assert art.mode == 0o755
    script = art.content.decode()
    assert script.startswith("#!/bin/sh\n")
    assert "https://127.0.0.1:8443/healthz" in script
    syntax = subprocess.run(["sh", "-n", str(built.path("cp1", CHECK_SCRIPT))], check=False)
    assert syntax.returncode == 0


def test_dedicated_loadbalancer_nodes_take_the_role(tmp_path):
    nodes = CONTROL_PLANES + WORKERS + LB_NODES
    built = compile_cluster(make_cluster(nodes=nodes), tmp_path)
    assert built.ctx.shared["loadbalancer"].nodes == ("lb1", "lb2")
    assert "bind *:6443" in built.text("lb1", HAPROXY_CFG)
    for cp in CONTROL_PLANES:
        assert KEEPALIVED_CONF not in built.node_paths(cp.name)
    assert vrrp(built.text("lb1", KEEPALIVED_CONF))["state"] == "MASTER"


def staged(built, node: str) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text())
            for p in sorted(built.path(node, STAGING_DIR).glob("*.yaml"))}


def test_static_pods_are_staged_never_in_the_manifests_dir(tmp_path):
    built = compile_cluster(make_cluster(deploy_as="static-pods"), tmp_path)
    assert not any(a.host_path and a.host_path.startswith(MANIFESTS_DIR + "/")
                   for a in built.ctx.artifacts)
    pods = staged(built, "cp2")
    assert set(pods) == {"haproxy.yaml", "keepalived.yaml"}
    keepalived = pods["keepalived.yaml"]["spec"]
    assert keepalived["hostNetwork"] is True
    assert set(keepalived["containers"][0]["securityContext"]["capabilities"]["add"]) == {
        "NET_ADMIN", "NET_BROADCAST", "NET_RAW"}
    assert {v["hostPath"]["path"] for v in keepalived["volumes"]} == {KEEPALIVED_CONF,
                                                                       CHECK_SCRIPT}
    plan = built.ctx.shared["loadbalancer"]
    when = {(p.node, p.target.rsplit("/", 1)[1]): p.when for p in plan.static_pods}
    assert when[("cp1", "haproxy.yaml")] == "before-init"
    assert when[("cp2", "keepalived.yaml")] == "after-join"
    assert plan.services == ()
    # the files the pods mount are still written where they are mounted from
    assert HAPROXY_CFG in built.node_paths("cp3")


def test_kube_vip_uses_super_admin_only_during_init(tmp_path):
    built = compile_cluster(make_cluster("1.33.5", lb_mode="kube-vip", lb_port=6443), tmp_path)
    plan = built.ctx.shared["loadbalancer"]

    def kubeconfig(pod):
        return pod["spec"]["volumes"][0]["hostPath"]["path"]

    first = staged(built, "cp1")
    assert kubeconfig(first["kube-vip.init.yaml"]) == "/etc/kubernetes/super-admin.conf"
    assert kubeconfig(first["kube-vip.yaml"]) == "/etc/kubernetes/admin.conf"
    assert set(staged(built, "cp2")) == {"kube-vip.yaml"}
    env = {e["name"]: e.get("value") for e in first["kube-vip.yaml"]["spec"]["containers"][0]["env"]}
    assert env["address"] == VIP and env["vip_interface"] == "eth1" and env["port"] == "6443"
    steps = [(p.node, p.staged.rsplit("/", 1)[1], p.when) for p in plan.static_pods]
    assert steps == [("cp1", "kube-vip.init.yaml", "before-init"),
                     ("cp1", "kube-vip.yaml", "after-init"),
                     ("cp2", "kube-vip.yaml", "after-join"),
                     ("cp3", "kube-vip.yaml", "after-join")]
    assert {p.target for p in plan.static_pods} == {f"{MANIFESTS_DIR}/kube-vip.yaml"}


def test_external_load_balancer_emits_nothing(tmp_path):
    built = compile_cluster(make_cluster(lb_mode="external"), tmp_path)
    assert not any(a.host_path and ("haproxy" in a.host_path or "keepalived" in a.host_path
                                    or STAGING_DIR in a.host_path)
                   for a in built.ctx.artifacts)
    assert built.ctx.shared["loadbalancer"].nodes == ()


@pytest.mark.parametrize("cluster_args", [
    {"deploy_as": "static-pods", "nodes": CONTROL_PLANES + WORKERS + LB_NODES},
    {"lb_mode": "local-proxy", "deploy_as": "static-pods"},
])
def test_impossible_static_pod_setups_are_diagnosed(tmp_path, cluster_args):
    with pytest.raises(DiagnosticError) as err:
        compile_cluster(make_cluster(**cluster_args), tmp_path)
    assert err.value.diagnostics[0].code == "E121"


# ---------------------------------------------------------------------------- real haproxy


class FakeApiServer:
    """An HTTPS server with a control plane's compiled serving certificate: /healthz answers
    200 (or 500 when ``healthy`` is false), anything else names the server."""

    def __init__(self, name: str, address: str, cert: Path, key: Path, healthy: bool) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ok = self.path != "/healthz" or outer.healthy
                body = (b"ok" if self.path == "/healthz" else name.encode()) if ok else b"sick"
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.healthy = healthy
        self.server = http.server.ThreadingHTTPServer((address, 6443), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        # haproxy's checks hang up without a TLS close_notify; that is not a test failure
        self.server.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


@pytest.mark.e2e
def test_local_proxy_balances_over_healthy_api_servers_only(tmp_path):
    """haproxy runs the compiled local-proxy config unchanged: its TLS /healthz checks take
    the sick API server out and clients only ever reach the healthy ones."""
    haproxy = require_binary("haproxy")
    net = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}"
    cps = tuple(node(f"cp{i}", f"{net}.1{i}", "control-plane") for i in (1, 2, 3))
    port = _free_port()
    cluster = make_cluster(lb_mode="local-proxy", lb_port=port, endpoint_port=port,
                           nodes=cps + (node("w1", f"{net}.21", "worker"),))
    built = compile_cluster(cluster, tmp_path)
    servers = [FakeApiServer(cp.name, str(cp.address),
                             built.path(cp.name, "/etc/kubernetes/pki/apiserver.crt"),
                             built.path(cp.name, "/etc/kubernetes/pki/apiserver.key"),
                             healthy=cp.name != "cp2") for cp in cps]
    proc = subprocess.Popen([haproxy, "-db", "-f", str(built.path("w1", HAPROXY_CFG))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # `fall 2` checks every 5s: cp2 is out after about 10s; until then it may answer
        deadline = time.monotonic() + 30
        recent: list[str] = []
        while time.monotonic() < deadline and (len(recent) < 12 or "cp2" in recent[-12:]):
            time.sleep(0.25)
            status, body = _get(f"https://127.0.0.1:{port}/who")
            recent.append(body if status == 200 else f"HTTP {status}")
        assert set(recent[-12:]) == {"cp1", "cp3"}, recent
        with urllib.request.urlopen(f"http://127.0.0.1:{LOCAL_PROXY_HEALTH_PORT}/healthz",
                                    timeout=2) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=10)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
        for server in servers:
            server.close()
    assert "cp2" in output  # haproxy logged the server going down
