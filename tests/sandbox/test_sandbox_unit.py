"""Sandbox pieces that need no docker: mirrors, image tag, files, errors."""

from __future__ import annotations

import io
import ipaddress
import tarfile

import pytest
import yaml
from click.testing import CliRunner
from kubeforge.targets import sandbox_daemon, sandbox_image
from kubeforge.targets.sandbox import Sandbox, SandboxHost, cluster_subnet
from kubeforge.targets.sandbox_files import (
    authorized_keys_tar,
    client_key,
    inventory_text,
    known_hosts_text,
)
from kubeforge.targets.sandbox_run import MissingToolError, SandboxError

from kubeforge.cli import main


def test_debian_mirrors_from_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n")
    (tmp_path / "sources.list.d" / "vendor.list").write_text(
        "deb https://vendor.example/apt cloud-sdk-bookworm main\n")
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.example/debian bookworm main contrib\n")
    assert sandbox_image.debian_mirrors(tmp_path) == [
        "deb http://other.example/debian bookworm main contrib",
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main",
    ]


def test_no_debian_mirror_is_a_clear_error(tmp_path):
    (tmp_path / "sources.list").write_text("deb https://vendor.example/apt stable main\n")
    with pytest.raises(SandboxError, match="no Debian bookworm mirror"):
        sandbox_image.debian_mirrors(tmp_path)


def test_image_tag_follows_the_recipe(monkeypatch):
    tag = sandbox_image.image_tag()
    assert tag == sandbox_image.image_tag() and tag.startswith("kubeforge-sandbox:")
    monkeypatch.setattr(sandbox_image, "PACKAGES", sandbox_image.PACKAGES + ",vim")
    assert sandbox_image.image_tag() != tag


def test_image_recipe_bakes_no_host_keys_and_disables_deployed_services():
    hook = sandbox_image.CUSTOMIZE
    assert 'rm -f "$root"/etc/ssh/ssh_host_*' in hook
    assert "PasswordAuthentication no" in hook and "ssh-keygen -A" in hook
    for unit in ("etcd.service", "haproxy.service", "keepalived.service", "containerd.service"):
        assert unit in hook.split("systemctl disable")[1].splitlines()[0]


def test_client_key_is_private_and_reused(tmp_path):
    path, line = client_key(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600 and line.startswith("ssh-ed25519 ")
    assert client_key(tmp_path) == (path, line)


def test_authorized_keys_tar_modes():
    with tarfile.open(fileobj=io.BytesIO(authorized_keys_tar("ssh-ed25519 AAAA x\n"))) as tar:
        modes = {m.name: (m.mode, m.uid) for m in tar.getmembers()}
    assert modes == {".ssh": (0o700, 0), ".ssh/authorized_keys": (0o600, 0)}


def test_inventory_and_known_hosts_text(tmp_path):
    hosts = [SandboxHost("node1", "10.77.0.11", 22, "root", tmp_path / "k", "kubeforge-node1")]
    inventory = yaml.safe_load(inventory_text(hosts, tmp_path / "k", tmp_path / "kh"))
    assert inventory["all"]["hosts"] == {"node1": {
        "ansible_host": "10.77.0.11", "ansible_port": 22, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(tmp_path / "k")}}
    assert "children" not in inventory["all"]  # `up -n` hosts have no roles
    assert inventory["all"]["vars"]["ansible_host_key_checking"] is True
    assert f"UserKnownHostsFile={tmp_path / 'kh'} " in inventory["all"]["vars"]["ansible_ssh_args"]
    key = client_key(tmp_path)[1].split()[1]  # a real ed25519 public key
    text = known_hosts_text({"10.77.0.11": [f"ssh-ed25519 {key} root@node1"]})
    assert text == f"10.77.0.11 ssh-ed25519 {key}\n"
    with pytest.raises(ValueError, match="unreadable host key"):
        known_hosts_text({"10.77.0.11": ["ssh-ed25519 AAAAkey root@node1"]})


def test_a_cluster_files_hosts_get_a_grouped_inventory_apply_takes(tmp_path):
    """`sandbox up FILE`: the hosts are the file's nodes, by name and address, and the
    inventory puts them in their roles' groups, so the deploy loader maps every node."""
    from kubeforge.compiler.lower import load_program
    from kubeforge.compiler.plan import Plan
    from kubeforge.compiler.build import compile_file
    from kubeforge.targets.deploy import map_hosts
    from tests.conftest import EXAMPLES

    for example in ("sandbox.kf", "ha-cluster.kf"):
        cluster = load_program(EXAMPLES / example)[0].cluster
        assert cluster_subnet(cluster) == "10.77.0.0/24"
        hosts = [SandboxHost(n.name, str(n.address), 22, "root", tmp_path / "k",
                             f"kubeforge-{n.name}", n.roles) for n in cluster.nodes]
        path = tmp_path / "inventory.yaml"
        path.write_text(inventory_text(hosts, tmp_path / "k", tmp_path / "known_hosts"))
        result = compile_file(EXAMPLES / example, tmp_path / "build", state_dir=tmp_path / example)
        plan = Plan.from_json((result.root / "plan.json").read_text())
        mapped, former = map_hosts(plan, path)
        assert former == {}
        assert {n: h.address for n, h in mapped.items()} == \
            {n.name: str(n.address) for n in cluster.nodes}
        assert all(h.key_file == str(tmp_path / "k") for h in mapped.values())
    groups = yaml.safe_load(path.read_text())["all"]["children"]
    assert groups == {"control_plane": {"hosts": {"cp1": None, "cp2": None, "cp3": None}},
                      "workers": {"hosts": {"worker1": None, "worker2": None}},
                      "etcd": {"children": {"control_plane": {}}},  # stacked
                      "k8s_cluster": {"children": {"control_plane": {}, "workers": {}}}}


@pytest.mark.parametrize("network, address, subnet", [
    ("nodes 10.77.0.0/24", "10.77.0.1", "10.77.0.0/24"),  # docker's gateway
    ("nodes 10.77.0.0/24", "10.77.0.255", "10.77.0.0/24"),
    ("pods 10.244.0.0/16", "10.50.3.0", "10.50.3.0/24"),  # the assumed /24's network address
])
def test_an_address_the_sandbox_cannot_give_a_container_is_refused(write_kf, network, address,
                                                                    subnet):
    from kubeforge.compiler.lower import load_program

    ok = str(ipaddress.ip_network(subnet).network_address + 11)
    path = write_kf(f'cluster c {{\n  kubernetes "1.37.2"\n  network {{ {network} }}\n'
                    f'  node a {{ address {ok}  role control-plane worker }}\n'
                    f'  node b {{ address {address}  role worker }}\n}}\n')
    cluster = load_program(path)[0].cluster
    with pytest.raises(SandboxError, match=f"node b has {address}, which {subnet} keeps"):
        cluster_subnet(cluster)


def test_sandbox_up_file_refuses_count_and_subnet(tmp_path):
    from tests.conftest import EXAMPLES

    result = CliRunner().invoke(main, ["sandbox", "up", str(EXAMPLES / "sandbox.kf"), "-n", "2",
                                       "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "-n and --subnet are for a sandbox without FILE" in \
        result.output


def test_addresses_start_at_11_and_stay_in_the_subnet(tmp_path):
    box = Sandbox(tmp_path, subnet="10.77.3.0/28")
    assert box.address(1) == "10.77.3.11" and box.address(4) == "10.77.3.14"
    with pytest.raises(SandboxError, match="no room"):
        box.address(5)


def test_missing_docker_is_one_line_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox_daemon, "have", lambda program: False)
    monkeypatch.setattr(sandbox_daemon.os, "geteuid", lambda: 1000)
    with pytest.raises(MissingToolError, match="apt-get install -y docker.io mmdebstrap"):
        sandbox_daemon.ensure_tools(("dockerd", "mmdebstrap"))
    monkeypatch.setattr(sandbox_daemon, "daemon_answers", lambda: False)
    monkeypatch.setattr(sandbox_daemon, "locked", lambda name: _NoLock())
    result = CliRunner().invoke(main, ["sandbox", "up", "-n", "1", "--dir", str(tmp_path / "s")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "sandbox: dockerd, docker, mmdebstrap missing; "
        "install them with: apt-get install -y docker.io mmdebstrap")


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
