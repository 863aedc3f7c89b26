"""The generated Vagrantfile: topology, sizes, boxes, providers, determinism, golden."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kubeforge.compiler.build import compile_file
from tests.conftest import EXAMPLES, FIXED_NOW, assert_golden
from tests.vagrant.vagrant_helpers import vagrantfile

GOLDENS = Path(__file__).parent / "goldens"

SIZED = """
cluster sized {
  kubernetes "1.37.2"
  %s
  node big { address 10.50.0.11  role control-plane  cpus 4  memory 8Gi }
  node w1 { address 10.50.0.21  role worker }
  node w2 { address 10.50.0.22  role worker  memory 3Gi }
}
"""


def nodes_table(text: str) -> dict[str, tuple[str, int, int]]:
    rows = re.findall(r'\{ name: "([^"]+)", ip: "([^"]+)", cpus: (\d+), memory: (\d+) \}', text)
    return {name: (ip, int(cpus), int(mib)) for name, ip, cpus, mib in rows}


def test_golden_ha_cluster():
    assert_golden(GOLDENS / "ha-cluster.Vagrantfile", vagrantfile(EXAMPLES / "ha-cluster.kf"))


def test_sizes_follow_roles_unless_declared(write_kf):
    assert nodes_table(vagrantfile(EXAMPLES / "ha-cluster.kf")) == {
        "cp1": ("10.77.0.11", 2, 2048),  # kubeadm's control-plane minimum
        "cp2": ("10.77.0.12", 2, 2048),
        "cp3": ("10.77.0.13", 2, 2048),
        "worker1": ("10.77.0.21", 1, 1024),
        "worker2": ("10.77.0.22", 1, 1024),
    }
    assert nodes_table(vagrantfile(write_kf(SIZED % ""))) == {
        "big": ("10.50.0.11", 4, 8192),  # declared
        "w1": ("10.50.0.21", 1, 1024),
        "w2": ("10.50.0.22", 1, 3072),
    }


@pytest.mark.parametrize("os_name, box", [("", "debian/bookworm64"),
                                          ("os debian12", "debian/bookworm64"),
                                          ("os ubuntu2204", "generic/ubuntu2204"),
                                          ("os ubuntu2404", "bento/ubuntu-24.04")])
def test_box_per_os(write_kf, os_name, box):
    assert f'BOX = ENV.fetch("KUBEFORGE_BOX", "{box}")' in vagrantfile(write_kf(SIZED % os_name))


def test_node_network_is_passed_to_every_provider(write_kf):
    declared = vagrantfile(write_kf(SIZED % "network { nodes 10.50.0.0/16 }"))
    assert 'NETWORK = { netmask: "255.255.0.0", subnet: "10.50.0.0/16" }.freeze' in declared
    assert "NETWORK = {}.freeze" in vagrantfile(write_kf(SIZED % ""))


def test_providers_and_no_cluster_work():
    text = vagrantfile(EXAMPLES / "ha-cluster.kf")
    for provider in ("virtualbox", "libvirt", "docker"):
        assert f'machine.vm.provider "{provider}"' in text
    assert "provision" not in text.replace("No provisioner", "")  # kubeforge deploys over SSH
    assert "--privileged" not in text.replace("never --privileged", "")
    assert "docker.privileged" not in text
    assert "docker.has_ssh = true" in text and 'docker.cmd = ["/sbin/init"]' in text
    for cap in ("NET_ADMIN", "NET_RAW", "SYS_ADMIN"):
        assert f'"--cap-add", "{cap}"' in text


def test_compile_writes_it_at_the_build_root_outside_the_plan(tmp_path):
    source = EXAMPLES / "ha-cluster.kf"
    first = compile_file(source, tmp_path / "a", state_dir=tmp_path / "state", now=FIXED_NOW)
    second = compile_file(source, tmp_path / "b", state_dir=tmp_path / "state", now=FIXED_NOW)
    text = (first.root / "Vagrantfile").read_text()
    assert text == (second.root / "Vagrantfile").read_text() == vagrantfile(source)
    plan = (first.root / "plan.json").read_text()
    assert "Vagrantfile" not in plan  # a build-local file: never uploaded to a host
    assert "Vagrantfile" in json.loads((first.root / "files.json").read_text())["files"]
