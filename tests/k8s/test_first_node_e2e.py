"""A first real Kubernetes node, end to end: an offline bundle built from the Go module proxy,
a one-node cluster applied with `install bundle` to a sandbox host, real `kubeadm init` with
kubeforge's own PKI, kubeconfigs and kubeadm config, then what a user checks: the node Ready
(flannel up), every kube-system pod Running, CoreDNS answering a lookup from a pod, a
Deployment from an image in the bundle Available and answering through its Service, the
generated verify suite passing for every phase, and a second apply changing nothing.

The test brings up its own sandbox (name ``kf-node``, subnet 10.79.0.0/24) so the cluster's
kubelet, iptables rules and images never meet the hosts other e2e tests share.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.host_shell import HostShell
from tests.k8s.bundle_fixture import KUBERNETES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SUBNET = "10.79.0.0/24"
ADDRESS = "10.79.0.11"


def source(bundle: Path) -> str:
    return f"""# One control plane that also runs workloads, from an offline bundle.
cluster first {{
  kubernetes "{KUBERNETES}"
  endpoint "{ADDRESS}:6443"
  network {{ pods 10.244.0.0/16  services 10.96.0.0/12  nodes {SUBNET} }}
  cni flannel
  etcd stacked
  loadbalancer external
  install bundle path "{bundle}"
  cgroups v1        # this machine's kernel mounts cgroup v1
  hosts containers  # sandbox hosts are containers sharing the machine's kernel
  node node1 {{ address {ADDRESS}  role control-plane worker }}
}}

namespace demo {{
  deployment echo {{
    image "kubeforge.local/echo:{{echo}}"
    replicas 2
    port http 8080
    probe http "/healthz" port http
  }}
  service echo -> echo port http 80 to http
}}
"""


class Node:
    def __init__(self, box, root: Path, bundle: Path, echo_tag: str) -> None:
        self.box, self.root = box, root
        self.kf = root / "first.kf"
        self.kf.write_text(source(bundle).replace("{echo}", echo_tag))
        self.inv = root / "inventory.yaml"
        self.inv.write_text(
            "all:\n  vars:\n    ansible_user: root\n"
            f"    ansible_ssh_private_key_file: {box.key_path}\n"
            f"  children:\n    control_plane:\n      hosts:\n        node1: {{ansible_host: {ADDRESS}}}\n")
        self.ssh = HostShell(box)
        self.outputs: list[str] = []

    def kubeforge(self, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "kubeforge", *args], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def on_host(self, *args: str) -> subprocess.CompletedProcess:
        return self.kubeforge(*args, str(self.kf), "-i", str(self.inv),
                              "--known-hosts", str(self.box.known_hosts))

    def kubectl(self, command: str) -> tuple[int, str]:
        return self.ssh("node1", f"kubectl --kubeconfig /etc/kubernetes/admin.conf {command}")


@pytest.fixture(scope="module")
def node(bundle, tmp_path_factory):
    from kubeforge.bundle.manifest import load_manifest
    from kubeforge.targets.sandbox import Sandbox

    root = tmp_path_factory.mktemp("first-node")
    box = Sandbox(root / "sandbox", name="kf-node", subnet=SUBNET)
    box.up(1)
    echo = load_manifest(bundle).image("kubeforge.local/echo").tag
    n = Node(box, root, bundle, echo)
    try:
        yield n
    finally:
        n.ssh.close()
        box.down()


def test_apply_brings_up_a_real_node(node):
    proc = node.on_host("apply")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_the_node_is_ready_and_kube_system_runs(node):
    code, out = node.kubectl("get nodes -o json")
    assert code == 0, out
    (item,) = json.loads(out)["items"]
    ready = {c["type"]: c["status"] for c in item["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert item["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES}"
    deadline = time.monotonic() + 300
    while True:
        code, out = node.kubectl("get pods -A -o json")
        pods = json.loads(out)["items"]
        phases = {p["metadata"]["name"]: p["status"].get("phase") for p in pods
                  if p["metadata"]["namespace"] in ("kube-system", "kube-flannel")}
        if phases and all(v == "Running" for v in phases.values()) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert phases and all(v == "Running" for v in phases.values()), phases
    names = " ".join(phases)
    for component in ("etcd-node1", "kube-apiserver-node1", "kube-controller-manager-node1",
                      "kube-scheduler-node1", "kube-proxy-", "coredns-", "kube-flannel-ds-"):
        assert component in names, phases


def test_no_image_was_pulled(node):
    """Every image came from the bundle: containerd lists only pinned, imported images."""
    code, out = node.ssh("node1", "ctr -n k8s.io images ls | grep -v '^REF' | grep -v '^sha256:'"
                                  " | grep -vc 'io.cri-containerd.pinned=pinned'")
    assert out.strip() == "0", out


def test_a_deployment_from_the_bundle_is_available_and_served(node):
    code, out = node.kubectl("-n demo rollout status deployment/echo --timeout=300s")
    assert code == 0, out
    code, out = node.kubectl("-n demo get endpointslices -o json")
    addresses = [a for s in json.loads(out)["items"] for e in s.get("endpoints") or []
                 for a in e["addresses"]]
    assert len(addresses) == 2, out
    # Pod IPs are routed to the host over flannel's bridge: ask each replica directly.
    seen = set()
    for ip in addresses:
        code, body = node.ssh("node1", f"curl -s --max-time 5 http://{ip}:8080/")
        assert code == 0, body
        seen.add(json.loads(body)["hostname"])
    assert len(seen) == 2


DNS_QUERY = r"""
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x4b46, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(q, (server, 53)); r = s.recv(512)
count = struct.unpack(">H", r[6:8])[0]
print(".".join(str(b) for b in r[-4:]) if count and r[3] & 0xF == 0 else "NXDOMAIN/none")
"""


def test_coredns_answers_a_lookup(node):
    """Each CoreDNS replica resolves the API server's Service name to its ClusterIP."""
    code, out = node.kubectl("-n kube-system get pods -l k8s-app=kube-dns "
                             "-o jsonpath='{.items[*].status.podIP}'")
    servers = out.split()
    assert code == 0 and len(servers) == 2, out
    for server in servers:
        code, answer = node.ssh("node1", f"python3 -c {shlex.quote(DNS_QUERY)} "
                                         f"kubernetes.default.svc.cluster.local {server}")
        assert code == 0 and answer.strip() == "10.96.0.1", answer


def test_verify_passes_for_every_phase(node):
    proc = node.on_host("verify")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_a_second_apply_changes_nothing(node):
    proc = node.on_host("apply")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "no changes" in proc.stderr, proc.stderr[-4000:]
    plan = json.loads(node.on_host("plan", "--json").stdout)
    assert plan["changes"] == 0, plan


def test_kubeadm_certs_check_expiration_reads_kubeforges_pki(node):
    """kubeadm's own view of the PKI kubeforge made: every certificate and CA present,
    none expired, all from kubeforge's CAs (kubeadm generated nothing at init)."""
    code, out = node.ssh("node1", "kubeadm certs check-expiration 2>&1")
    assert code == 0, out
    for name in ("admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
                 "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
                 "front-proxy-client", "scheduler.conf", "super-admin.conf"):
        assert f"\n{name} " in out, out
    assert "invalid" not in out.lower() and "<invalid>" not in out, out
    code, issuer = node.ssh("node1", "openssl x509 -noout -issuer -in /etc/kubernetes/pki/apiserver.crt")
    assert code == 0 and "kubernetes" in issuer.lower(), issuer


def test_default_rbac_is_the_real_api_servers(node):
    """kubeforge's default RBAC for this release (compiler/data, generated from the release's
    bootstrap-policy source) against the roles and bindings the running API server and
    `kubeadm init` created: every role kubeforge models exists with exactly its rules
    (aggregated roles: the aggregation selectors, their rules are the controller's), every
    default binding binds the same subjects to the same role."""
    from kubeforge.compiler.rbac_defaults import (_rule, builtin_bindings,
                                                  builtin_cluster_roles, system_cluster_roles)

    code, out = node.kubectl("get clusterroles -o json")
    assert code == 0, out
    live = {r["metadata"]["name"]: r for r in json.loads(out)["items"]}
    roles = [*builtin_cluster_roles(KUBERNETES), *system_cluster_roles(KUBERNETES)]
    for role in roles:
        assert role.name in live, role.name
        selectors = (live[role.name].get("aggregationRule") or {}).get("clusterRoleSelectors")
        assert bool(role.aggregate_from) == bool(selectors), role.name
        if not role.aggregate_from:
            have = tuple(_rule(r) for r in live[role.name].get("rules") or ())
            assert role.rules == have, role.name
    code, out = node.kubectl("get clusterrolebindings -o json")
    assert code == 0, out
    bound = {b["metadata"]["name"]: b for b in json.loads(out)["items"]}
    bindings = builtin_bindings(KUBERNETES)
    assert {"kubeadm:cluster-admins", "kubeadm:apiserver-kubelet-client"} <= \
        {b.name for b in bindings}
    for binding in bindings:
        assert binding.name in bound, binding.name
        ref = bound[binding.name]["roleRef"]
        assert (binding.role_ref.kind, binding.role_ref.name) == (ref["kind"], ref["name"])
        assert [(s.kind, s.name) for s in binding.subjects] == \
            [(s["kind"], s["name"]) for s in bound[binding.name]["subjects"]], binding.name


def test_every_example_is_accepted_by_the_real_api_server(node):
    """`kubectl apply --dry-run=server` of every example's manifests (workloads and RBAC):
    the API server's own validation and admission, not a schema copy. Namespaces are created
    for real first, since a dry run cannot place objects in a namespace that does not exist."""
    import yaml

    from kubeforge.compiler.emit.manifests import manifest_artifacts
    from kubeforge.compiler.emit.rbac import manifests as rbac_manifests
    from kubeforge.compiler.lower import load_program
    from tests.conftest import EXAMPLES

    checked = 0
    for path in sorted(EXAMPLES.glob("*.kf")):
        program, _ = load_program(path)
        docs = [d for a in manifest_artifacts(program) for d in yaml.safe_load_all(a.content)]
        docs += rbac_manifests(program)
        docs = [d for d in docs if d]
        namespaces = [d for d in docs if d["kind"] == "Namespace"]
        text = yaml.safe_dump_all(docs, sort_keys=False)
        script = ""
        if namespaces:
            script += ("kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f - <<'KF_NS'\n"
                       + yaml.safe_dump_all(namespaces) + "KF_NS\n")
        script += ("kubectl --kubeconfig /etc/kubernetes/admin.conf apply --dry-run=server "
                   "--server-side --field-manager=kubeforge-dry-run -f - <<'KF_DOCS'\n"
                   + text + "KF_DOCS\n")
        code, out = node.ssh("node1", script + " 2>&1")
        assert code == 0, f"{path.name}:\n{out}"
        checked += len(docs)
    assert checked > 50
