"""End to end with Vagrant's docker provider on this machine: `kubeforge vagrant up`, then
`vagrant inventory`, then `apply --until etcd` and `verify --until etcd` against those
machines with host-key checking on, then `vagrant destroy` leaves nothing behind.

Three nodes: lb1 (external etcd member + load balancer), lb2 (load balancer), cp1 (control
plane). The host image has no Kubernetes packages, so cp1 is left out of the apply with
--limit (as in the sandbox deploy test) and its checks are not expected to pass.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from tests.conftest import HOST_CGROUPS
from tests.host_keys import tampered
from tests.vagrant.vagrant_helpers import needs_vagrant

pytestmark = [pytest.mark.e2e, needs_vagrant]

CLUSTER = "vagrant-e2e"
NODES = {"lb1": 11, "lb2": 12, "cp1": 21}
DEPLOYED = ("lb1", "lb2")


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else ""


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 no docker network uses (sandboxes of other sessions may hold some)."""
    taken = []
    for name in _docker("network", "ls", "--format", "{{.Name}}").split():
        for config in json.loads(_docker("network", "inspect", name) or "[{}]")[0].get(
                "IPAM", {}).get("Config") or []:
            if config.get("Subnet"):
                taken.append(ipaddress.ip_network(config["Subnet"], strict=False))
    for third in range(123, 160):
        net = ipaddress.ip_network(f"10.{third}.0.0/24")
        if not any(net.overlaps(t) for t in taken if t.version == 4):
            return net
    pytest.fail("no free 10.x.0.0/24 subnet for the Vagrant network")


def _source(net: ipaddress.IPv4Network) -> str:
    at = lambda host: net.network_address + host  # noqa: E731
    return f"""cluster {CLUSTER} {{
  kubernetes "1.37.2"
  cgroups {HOST_CGROUPS}
  endpoint "{at(100)}:8443"
  network {{ pods 10.244.0.0/16  services 10.96.0.0/12  nodes {net} }}
  etcd external
  install preinstalled
  loadbalancer keepalived-haproxy {{ vip {at(100)}  interface "eth1"  port 8443 }}
  pki {{ algorithm ecdsa-p256 }}
  node lb1 {{ address {at(NODES['lb1'])}  role etcd loadbalancer }}
  node lb2 {{ address {at(NODES['lb2'])}  role loadbalancer }}
  node cp1 {{ address {at(NODES['cp1'])}  role control-plane }}
}}
"""


class Run:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.timings: dict[str, float] = {}

    def kf(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "kubeforge", *args], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        self.timings[" ".join(args[:2])] = round(time.monotonic() - started, 1)
        return proc


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("vagrant-e2e")
    run = Run(root)
    net = _free_subnet()
    (root / "lab.kf").write_text(_source(net))
    up = run.kf("vagrant", "up", "lab.kf", "--provider", "docker")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield run, net
    finally:
        down = run.kf("vagrant", "destroy", "lab.kf")
        print(f"timings (s): {run.timings}")
        assert down.returncode == 0, down.stdout + down.stderr


def test_inventory_then_apply(lab):
    run, net = lab
    build = run.root / "build" / CLUSTER
    inventory, known = build / "vagrant-inventory.yaml", build / "vagrant-inventory.known_hosts"

    inv = run.kf("vagrant", "inventory", "lab.kf")
    assert inv.returncode == 0, inv.stdout + inv.stderr
    text = inventory.read_text()
    for name, host in NODES.items():  # the declared addresses, port 22
        assert f"ansible_host: {net.network_address + host}\n" in text

    # The keys in known_hosts are the machines' own: a strict client accepts them.
    for name, host in NODES.items():
        client = paramiko.SSHClient()
        client.load_host_keys(str(known))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(str(net.network_address + host), username="root", timeout=10,
                       key_filename=str(build / ".vagrant" / "kubeforge" / "id_ed25519"),
                       look_for_keys=False, allow_agent=False)
        _, out, _ = client.exec_command("hostname")
        assert out.read().decode().strip() == name
        client.close()

    deploy = ("lab.kf", "-i", str(inventory), "--known-hosts", str(known), "--until", "etcd")
    applied = run.kf("apply", *deploy, "--limit", ",".join(DEPLOYED))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = run.kf("apply", *deploy, "--limit", ",".join(DEPLOYED))
    assert again.returncode == 0 and "no changes" in again.stderr, again.stderr  # idempotent



def test_verify_passes_on_the_deployed_machines(lab):
    run, _ = lab
    build = run.root / "build" / CLUSTER
    verified = run.kf("verify", "lab.kf", "-i", str(build / "vagrant-inventory.yaml"),
                      "--known-hosts", str(build / "vagrant-inventory.known_hosts"),
                      "--until", "etcd", "-o", str(run.root / "build"), "--json")
    report = json.loads(verified.stdout)
    ours = [c for c in report["checks"] if c["node"] in DEPLOYED]  # cp1 was left out
    failed = [c for c in ours if c["status"] == "failed"]
    assert not failed, failed
    assert sum(c["status"] == "passed" for c in ours) >= 10, ours


def test_a_changed_host_key_is_refused_by_every_transport(lab, tmp_path):
    run, net = lab
    build = run.root / "build" / CLUSTER
    known = tampered(build / "vagrant-inventory.known_hosts",
                     str(net.network_address + NODES["lb1"]), tmp_path / "known_hosts")
    common = ("lab.kf", "-i", str(build / "vagrant-inventory.yaml"), "--known-hosts",
              str(known), "--limit", "lb1")
    for command in (("plan", "--probe"), ("apply", "--until", "preflight"),
                    ("apply", "--target", "ansible", "--until", "preflight"),
                    ("verify", "--preflight")):
        proc = run.kf(*command, *common)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, (command, out)
        assert "lb1: host key mismatch" in out and "Refusing to connect" in out, (command, out)


def test_destroy_leaves_nothing(lab, tmp_path):
    run, net = lab
    down = run.kf("vagrant", "destroy", "lab.kf")
    assert down.returncode == 0, down.stdout + down.stderr
    containers = _docker("ps", "-a", "--format", "{{.Names}}").split()
    assert not [c for c in containers if c.startswith(f"{CLUSTER}-")]
    networks = _docker("network", "ls", "--format", "{{.Name}}").split()
    assert f"vagrant_network_{net}" not in networks
    assert f"kubeforge-vagrant-{CLUSTER}" not in networks
