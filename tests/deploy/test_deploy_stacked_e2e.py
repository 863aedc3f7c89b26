"""End to end, stacked topology: three control planes (etcd on each, keepalived + haproxy in
front) and a worker, applied on sandbox hosts up to the kubeadm phases. Sandbox hosts have
no Kubernetes packages, so the run must stop cleanly before them, and a run that goes on
must fail there with a message that names the missing program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HOST_CGROUPS
from tests.deploy.host_shell import HostShell
from tests.support.clean_hosts import cold

pytestmark = pytest.mark.e2e

CPS = ("node1", "node2", "node3")


class Stacked:
    def __init__(self, box, root: Path) -> None:
        self.box = box
        self.root = root
        self.hosts = {h.name: h for h in box.hosts()}
        prefix = ".".join(self.hosts["node1"].address.split(".")[:3])
        self.vip = f"{prefix}.101"
        self.kf = root / "stacked.kf"
        self.inv = root / "inventory.yaml"
        self.kf.write_text(f"""cluster stacked {{
  kubernetes "1.37.2"
  cgroups {HOST_CGROUPS}
  endpoint "{self.vip}:8443"
  network {{ nodes {prefix}.0/24 }}
  etcd stacked
  install preinstalled
  loadbalancer keepalived-haproxy {{ vip {self.vip}  interface "eth0"  router_id 61 }}
  pki {{ algorithm ecdsa-p256 }}
  nodes from "inventory.yaml"
}}
""")
        a = {n: h.address for n, h in self.hosts.items()}
        self.inv.write_text(
            "all:\n  vars:\n    ansible_user: root\n"
            f"    ansible_ssh_private_key_file: {box.key_path}\n  children:\n"
            "    control_plane:\n      hosts:\n"
            + "".join(f"        {n}: {{ansible_host: {a[n]}}}\n" for n in CPS)
            + f"    workers:\n      hosts:\n        node6: {{ansible_host: {a['node6']}}}\n")
        self.ssh = HostShell(box)

    def apply(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kubeforge", "apply", str(self.kf), "-i", str(self.inv),
             "--known-hosts", str(self.box.known_hosts), *extra],
            cwd=self.root, capture_output=True, text=True, timeout=300)



@pytest.fixture(scope="module")
def stacked(sandbox, tmp_path_factory):
    s = Stacked(sandbox, tmp_path_factory.mktemp("stacked"))
    # Other e2e modules deploy onto the same hosts: start from clean ones.
    for name in (*CPS, "node6"):
        s.ssh(name, cold(("/var/lib/etcd/member", "/etc/kubernetes", "/etc/default/etcd",
                          "/etc/systemd/system/etcd.service", "/etc/haproxy/haproxy.cfg",
                          "/etc/keepalived/keepalived.conf",
                          "/etc/keepalived/check_apiserver.sh"),
                         ("etcd", "haproxy", "keepalived")))
    proc = s.apply("--until", "etcd")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield s
    for name in (*CPS, "node6"):
        s.ssh(name, "systemctl disable --now haproxy keepalived 2>/dev/null; true")
    s.ssh.close()


def test_control_planes_hold_the_shared_pki_and_workers_none(stacked):
    for name in CPS:
        rc, out = stacked.ssh(name, "stat -c '%a %U:%G %n' /etc/kubernetes/pki/ca.key "
                                    "/etc/kubernetes/pki/sa.key /etc/kubernetes/pki/etcd/ca.key "
                                    "/etc/kubernetes/pki/apiserver.crt")
        assert rc == 0, out
        lines = out.splitlines()
        assert lines[0] == "600 root:root /etc/kubernetes/pki/ca.key"
        assert lines[3] == "644 root:root /etc/kubernetes/pki/apiserver.crt"
        rc, san = stacked.ssh(name, "openssl x509 -noout -ext subjectAltName "
                                    "-in /etc/kubernetes/pki/apiserver.crt")
        assert stacked.vip in san and stacked.hosts[name].address in san
    # A worker gets no PKI (TLS bootstrap); kubeadm configs land only in the kubeadm phases.
    rc, _ = stacked.ssh("node6", "test -e /etc/kubernetes/pki || test -e /etc/kubernetes/kubeadm")
    assert rc != 0
    rc, _ = stacked.ssh("node1", "test -e /etc/kubernetes/kubeadm")
    assert rc != 0


def test_load_balancer_and_runtime_run_on_every_control_plane(stacked):
    for name in CPS:
        rc, out = stacked.ssh(name, "systemctl is-active haproxy keepalived containerd")
        assert out.split() == ["active", "active", "active"], (name, out)
    # The VIP answers on the haproxy port (there is no API server behind it yet).
    rc, out = stacked.ssh("node6", f"timeout 5 bash -c ': </dev/tcp/{stacked.vip}/8443' && echo ok")
    assert out.strip() == "ok"
    holders = [n for n in CPS if stacked.vip in stacked.ssh(n, "ip -4 addr show eth0")[1]]
    assert len(holders) == 1


def test_reapply_changes_nothing(stacked):
    proc = stacked.apply("--until", "etcd")
    assert proc.returncode == 0 and "no changes" in proc.stdout + proc.stderr


def test_kubeadm_phases_fail_with_a_clear_message(stacked):
    proc = stacked.apply("--until", "control-plane-init")
    assert proc.returncode == 1
    assert "kubeadm is not installed on node1" in proc.stdout + proc.stderr
    # Nothing kubeadm would write appeared.
    rc, _ = stacked.ssh("node1", "test -e /etc/kubernetes/manifests/kube-apiserver.yaml")
    assert rc != 0
