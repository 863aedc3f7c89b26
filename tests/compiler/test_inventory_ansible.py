"""Inventories are read as Ansible reads them, and checked like source values.

`ansible-inventory --list` (ansible-core's own command) and kubeforge must see the same hosts,
groups and variables in inventories that use host ranges, group_vars/host_vars, child groups,
directories of inventories, an inventory plugin and Kubespray's group names; compiling a
cluster from them gives the nodes those groups and variables say. What Ansible lets pass
silently (a key given twice, one host with two addresses) and values kubeforge cannot use
(`Worker_2`, `kubeforge_cpus: many`) are errors with the file and line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.inventory import load_inventory
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.conftest import FIXED_NOW

HERE = Path(__file__).parent / "inventories"
SOURCES = ["kubespray/hosts.yaml", "ini-ranges/hosts", "mixed-dir", "constructed"]


def ansible_inventory(source: Path) -> dict:
    tool = Path(sys.executable).with_name("ansible-inventory")
    program = str(tool) if tool.exists() else shutil.which("ansible-inventory")
    if program is None:
        pytest.skip("ansible-inventory is not installed")
    result = subprocess.run([program, "-i", str(source), "--list"], capture_output=True,
                            text=True, check=True, cwd=source.parent)
    return json.loads(result.stdout)


@pytest.mark.parametrize("source", SOURCES)
def test_kubeforge_reads_what_ansible_inventory_lists(source):
    path = HERE / source
    listed = ansible_inventory(path)
    ours = load_inventory(path)
    assert {h.name: dict(h.vars) for h in ours.hosts} == listed["_meta"]["hostvars"]
    for group, body in listed.items():
        if group == "_meta":
            continue
        if group != "all":  # the listing shows hosts of `all` alone under `ungrouped`
            assert sorted(ours.groups[group].hosts) == sorted(body.get("hosts", [])), group
        assert sorted(ours.groups[group].children) == sorted(body.get("children", [])), group
    assert {g for g in ours.groups if ours.groups[g].hosts or ours.groups[g].children} \
        == {g for g in listed if g != "_meta"}


CLUSTER = """cluster lab {
  kubernetes "1.37.2"
  endpoint "%(net)s.100:8443"
  loadbalancer keepalived-haproxy { vip %(net)s.100  interface "eth0"  port 8443 }
  pki { algorithm ecdsa-p256 }
  nodes from "%(inventory)s"
}
"""


def compile_with(tmp_path, inventory: Path, net: str):
    source = tmp_path / "lab.kf"
    source.write_text(CLUSTER % {"net": net, "inventory": inventory})
    return compile_file(source, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW)


def test_a_kubespray_inventory_compiles_unchanged(tmp_path):
    result = compile_with(tmp_path, HERE / "kubespray/hosts.yaml", "10.77.0")
    cluster = result.program.cluster
    assert [n.name for n in cluster.control_planes] == ["cp1", "cp2", "cp3"]
    assert [n.name for n in cluster.workers] == ["node1", "node2"]
    assert "bastion" not in [n.name for n in cluster.nodes]  # only in its own group
    assert all(not n.is_etcd for n in cluster.nodes)  # etcd group = stacked members
    node1 = next(n for n in cluster.nodes if n.name == "node1")
    assert (node1.cpus, node1.memory_mib) == (4, 4096)
    assert node1.labels == (("managed", "true"), ("tier", "1"))
    vagrantfile = (result.root / "Vagrantfile").read_text()
    assert 'name: "node1", ip: "10.77.0.21", cpus: 4, memory: 4096' in vagrantfile
    join = (result.root / "nodes/node1/etc/kubernetes/kubeadm/join.yaml").read_text()
    assert "managed=true,tier=1" in join


def test_an_ini_inventory_with_ranges_and_host_vars(tmp_path):
    cluster = compile_with(tmp_path, HERE / "ini-ranges/hosts", "10.78.0").program.cluster
    assert {n.name: str(n.address) for n in cluster.control_planes} == {
        "cp1": "10.78.0.11", "cp2": "10.78.0.12", "cp3": "10.78.0.13"}
    assert next(n for n in cluster.nodes if n.name == "w1").cpus == 2


@pytest.mark.parametrize("source, net", [("mixed-dir", "10.79.0"), ("constructed", "10.80.0")])
def test_directories_and_plugins(tmp_path, source, net):
    cluster = compile_with(tmp_path, HERE / source, net).program.cluster
    assert len(cluster.control_planes) == 3 and len(cluster.workers) >= 1


def test_calico_route_reflectors_are_ignored_with_a_warning(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(HERE / "kubespray", inv)
    hosts = inv / "hosts.yaml"
    hosts.write_text(hosts.read_text().replace(
        "    calico_rr:\n      hosts: {}", "    calico_rr:\n      hosts:\n        rr1: {ansible_host: 10.77.0.40}"))
    result = compile_with(tmp_path, hosts, "10.77.0")
    assert "rr1" not in [n.name for n in result.program.cluster.nodes]
    [warning] = [w for w in result.warnings if w.code == "W109"]
    assert "calico_rr" in warning.message and "rr1" in warning.message


# ------------------------------------------------------------------------------ errors


def inventory_error(tmp_path, text: str, name: str = "inv.yaml", net: str = "10.77.0") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DiagnosticError) as info:
        compile_with(tmp_path, path, net)
    [diag] = [d for d in info.value.diagnostics if d.code == "E118"]
    return diag.message + " | " + str(diag.hint)


YAML_HEAD = "all:\n  children:\n    control_plane:\n      hosts:\n        cp1: {ansible_host: 10.77.0.11}\n"


@pytest.mark.parametrize("text, expected", [
    (YAML_HEAD + "    workers:\n      hosts:\n        w1: {ansible_host: 10.77.0.21}\n"
                 "        w1: {ansible_host: 10.77.0.22}\n",
     "inv.yaml:9: `w1` is given twice in one mapping (first at line 8)"),
    (YAML_HEAD + "    workers:\n      hosts:\n        cp1: {ansible_host: 10.77.0.12}\n",
     "inv.yaml:8: host `cp1` has ansible_host '10.77.0.11' at"),
    (YAML_HEAD + "    workers:\n      hosts:\n        Worker_2: {ansible_host: 10.77.0.22}\n",
     "inv.yaml:8: host name `Worker_2` is not a valid node name"),
    (YAML_HEAD + "    workers:\n      hosts:\n        w1: {ansible_host: 10.77.0.21, "
                 "kubeforge_cpus: many}\n", "kubeforge_cpus must be a whole number"),
    (YAML_HEAD + "    workers:\n      hosts:\n        w1: {ansible_host: 10.77.0.21, "
                 "kubeforge_memory: 4096}\n", "kubeforge_memory must be a quantity"),
    (YAML_HEAD + "    workers:\n      hosts:\n        w1: {ansible_host: 10.77.0.21, "
                 "kubeforge_memry: 4Gi}\n", "unknown variable `kubeforge_memry`"),
    (YAML_HEAD + "    workers:\n      hosts:\n        w1: {ansible_host: api.example}\n",
     "ansible_host `api.example` is not an IP address"),
    (YAML_HEAD + "  hosts:\n    w9: {ansible_host: 10.77.0.29}\n",
     "host `w9` is in none of the groups"),
    (YAML_HEAD + "    etcd:\n      hosts:\n        w1: {ansible_host: 10.77.0.21}\n"
                 "    workers:\n      hosts:\n        w1:\n", "never reached"),
    ("all:\n  children: [oops\n", "inv.yaml:3: `"),
])
def test_inventory_values_are_checked(tmp_path, text, expected):
    if expected == "never reached":  # an etcd member that is no control plane, stacked
        path = tmp_path / "inv.yaml"
        path.write_text(text)
        with pytest.raises(DiagnosticError) as info:
            compile_with(tmp_path, path, "10.77.0")
        assert any(d.code == "E112" and "etcd is stacked" in d.message
                   for d in info.value.diagnostics)
        return
    message = inventory_error(tmp_path, text)
    assert expected in message, message


def test_a_file_ansible_cannot_parse_is_an_error_with_its_words(tmp_path):
    message = inventory_error(tmp_path, "[workers\nw1 ansible_host=10.77.0.21\n",
                              name="hosts")
    assert "Ansible cannot parse" in message and "/hosts` as an inventory" in message


def test_inventory_labels_keep_true_as_text(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text(YAML_HEAD.replace("cp1: {ansible_host: 10.77.0.11}",
                                      "cp1: {ansible_host: 10.77.0.11, "
                                      "kubeforge_labels: {gpu: true, zone: 7}}"))
    result = compile_with(tmp_path, path, "10.77.0")
    init = (result.root / "nodes/cp1/etc/kubernetes/kubeadm/init.yaml").read_text()
    assert "gpu=true,zone=7" in init and "True" not in init


# ------------------------------------------------------------------------------ written


def test_generated_inventories_have_kubespray_umbrella_and_stacked_etcd_groups(tmp_path):
    result = compile_with(tmp_path, HERE / "kubespray/hosts.yaml", "10.77.0")
    written = result.root / "ansible/inventory.yaml"
    doc = yaml.safe_load(written.read_text())["all"]["children"]
    assert doc["etcd"] == {"children": {"control_plane": {}}}
    assert doc["k8s_cluster"] == {"children": {"control_plane": {}, "workers": {}}}
    listed = ansible_inventory(written)
    assert sorted(listed["k8s_cluster"]["children"]) == ["control_plane", "workers"]
    again = load_inventory(written)
    roles = {h.name: set(h.roles) for h in again.hosts}
    assert roles["cp1"] == {"control-plane", "etcd"} and roles["node1"] == {"worker"}


def test_dual_stack_nodes_from_an_inventory(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  children:\n    control_plane:\n      hosts:\n"
                   "        cp1: {ansible_host: 10.78.0.11, "
                   "kubeforge_addresses: [10.78.0.11, 'fd00:78::11']}\n")
    source = tmp_path / "ds.kf"
    source.write_text('cluster ds {\n  kubernetes "1.37.2"\n'
                      "  network { pods 10.244.0.0/16 fd00:10:244::/56  "
                      "services 10.96.0.0/12 fd00:10:96::/112 }\n"
                      "  pki { algorithm ecdsa-p256 }\n"
                      f'  nodes from "{inv}"\n}}\n')
    root = compile_file(source, tmp_path / "build", state_dir=tmp_path / "state",
                        now=FIXED_NOW).root
    init = (root / "nodes/cp1/etc/kubernetes/kubeadm/init.yaml").read_text()
    assert "value: 10.78.0.11,fd00:78::11" in init
    inv.write_text(inv.read_text().replace(", kubeforge_addresses: [10.78.0.11, 'fd00:78::11']", ""))
    with pytest.raises(DiagnosticError, match="has no IPv6 address"):
        compile_file(source, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW)
