"""The example inventories load as cluster nodes."""

from __future__ import annotations

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
    path.write_text(PROD.replace("10.20.0", "192.168.56").replace("external", "stacked")
                    .replace(":6443", ":8443") % (REPO / "inventories" / "vagrant.yaml"))
    program, _ = load_program(path)
    assert len(program.cluster.nodes) == 5
