"""The example inventories load as cluster nodes."""

from __future__ import annotations

import subprocess
import sys

from kubeforge.compiler.lower import load_program
from tests.conftest import REPO

PROD = """cluster prod {
  kubernetes "1.33.4"
  endpoint "10.20.0.100:6443"
  network { nodes 10.20.0.0/24 }
  etcd external
  loadbalancer keepalived-haproxy { vip 10.20.0.100  interface "eth0" }
  nodes from "%s"
}
"""


def test_production_inventory(tmp_path):
    path = tmp_path / "prod.kf"
    path.write_text(PROD % (REPO / "inventories" / "production.yaml"))
    program, _ = load_program(path)
    c = program.cluster
    assert [n.name for n in c.control_planes] == ["cp1", "cp2", "cp3"]
    assert [n.name for n in c.etcd_nodes] == ["etcd1", "etcd2", "etcd3"]
    assert [n.name for n in c.loadbalancer_nodes] == ["lb1", "lb2"]
    assert c.loadbalancer.port == 6443  # dedicated load balancers may take the API port
    assert {n.ssh_user for n in c.nodes} == {None}  # group vars stay with the inventory


def test_vagrant_inventory(tmp_path):
    path = tmp_path / "lab.kf"
    path.write_text(PROD.replace("10.20.0", "10.77.0").replace("external", "stacked")
                    .replace(":6443", ":8443") % (REPO / "inventories" / "vagrant.yaml"))
    program, _ = load_program(path)
    assert len(program.cluster.nodes) == 5


def test_vagrant_inventory_matches_the_ha_cluster_example_it_claims_to(tmp_path):
    """Same node names, roles and addresses as examples/ha-cluster.kf: plan says nothing."""
    inventory = REPO / "inventories" / "vagrant.yaml"
    declared = load_program(REPO / "examples" / "ha-cluster.kf")[0].cluster
    path = tmp_path / "lab.kf"
    path.write_text(PROD.replace("10.20.0", "10.77.0").replace("external", "stacked")
                    .replace(":6443", ":8443") % inventory)
    listed = load_program(path)[0].cluster
    assert [(n.name, n.address, n.roles) for n in listed.nodes] == \
        [(n.name, n.address, n.roles) for n in declared.nodes]
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "plan",
                           str(REPO / "examples" / "ha-cluster.kf"), "-i", str(inventory),
                           "-o", str(tmp_path / "build"), "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_plan_warns_when_the_inventory_reaches_a_node_elsewhere(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text((REPO / "inventories" / "vagrant.yaml").read_text()
                         .replace("10.77.0.12", "192.168.56.12"))
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "plan",
                           str(REPO / "examples" / "ha-cluster.kf"), "-i", str(inventory),
                           "-o", str(tmp_path / "build"), "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, proc.stderr
    assert "cp2 is reached at 192.168.56.12 but declared at 10.77.0.12" in warnings[0]
    assert "certificates carry the declared address" in warnings[0]
