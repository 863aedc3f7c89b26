"""From `vagrant ssh-config` and host keys to an inventory the deploy commands accept."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kubeforge.compiler.inventory import load_inventory
from tests.ssh_command import first_option, ssh_command
from kubeforge.targets.vagrant import Machine, VagrantError
from kubeforge.targets.vagrant_inventory import (Endpoint, endpoints_for, host_keys,
                                                 inventory_text, known_hosts_text,
                                                 parse_host_keys, ssh_endpoints)

SOURCE = """
cluster lab {
  kubernetes "1.37.2"
  endpoint "10.60.0.100:8443"
  etcd external
  loadbalancer keepalived-haproxy { vip 10.60.0.100  interface "eth1"  port 8443 }
  node lb1 { address 10.60.0.11  role etcd loadbalancer }
  node lb2 { address 10.60.0.12  role loadbalancer }
  node cp1 { address 10.60.0.21  role control-plane worker }
}
"""

SSH_CONFIG = """Host lb1
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  IdentityFile /b/.vagrant/machines/lb1/virtualbox/private_key
  IdentitiesOnly yes

Host lb2
  HostName 127.0.0.1
  User vagrant
  Port 2200
  IdentityFile /b/.vagrant/machines/lb2/virtualbox/private_key

Host cp1
  HostName 192.168.121.7
  User vagrant
  Port 22
  IdentityFile /b/.vagrant/machines/cp1/libvirt/private_key
"""


def public_line() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def cluster(load):
    return load(SOURCE).cluster


def test_ssh_config_endpoints():
    found = ssh_endpoints(SSH_CONFIG, ["lb1", "lb2", "cp1"])
    assert found["lb1"] == Endpoint("127.0.0.1", 2222, "vagrant",
                                    "/b/.vagrant/machines/lb1/virtualbox/private_key")
    assert found["lb2"].known_name == "[127.0.0.1]:2200"
    assert found["cp1"].known_name == "192.168.121.7"
    with pytest.raises(VagrantError, match="nothing usable about w9"):
        ssh_endpoints(SSH_CONFIG, ["w9"])


def test_docker_machines_are_reached_on_their_declared_address(cluster):
    ssh = ssh_endpoints(SSH_CONFIG, ["lb1", "lb2", "cp1"])
    machines = [Machine("lb1", "docker", "running"), Machine("lb2", "docker", "running"),
                Machine("cp1", "virtualbox", "running")]
    chosen = endpoints_for(cluster, machines, ssh)
    assert (chosen["lb1"].host, chosen["lb1"].port) == ("10.60.0.11", 22)
    assert chosen["lb1"].key_file == ssh["lb1"].key_file
    assert chosen["cp1"] == ssh["cp1"]  # other providers: where vagrant ssh-config says


def test_inventory_round_trips_through_the_deploy_loader(cluster, tmp_path):
    ssh = ssh_endpoints(SSH_CONFIG, ["lb1", "lb2", "cp1"])
    path = tmp_path / "inv.yaml"
    path.write_text(inventory_text(cluster, ssh, tmp_path / "inv.known_hosts"))
    hosts = {h.name: h for h in load_inventory(path).hosts}
    assert set(hosts) == {"lb1", "lb2", "cp1"}
    assert set(hosts["lb1"].roles) == {"etcd", "loadbalancer"}
    assert set(hosts["cp1"].roles) == {"control-plane", "worker"}
    settings = hosts["lb2"].settings()
    assert settings["port"] == 2200 and settings["user"] == "vagrant"
    assert settings["become"] is True  # not root: sudo
    ssh_args = dict(hosts["lb2"].vars)["ansible_ssh_args"]
    assert f"UserKnownHostsFile={tmp_path / 'inv.known_hosts'}" in ssh_args
    assert "StrictHostKeyChecking=yes" in ssh_args
    assert dict(hosts["lb2"].vars)["ansible_host_key_checking"] is True
    # What plain ansible makes of it, even where host key checking was turned off.
    command = ssh_command(path, "lb2", {"ANSIBLE_HOST_KEY_CHECKING": "False"})
    assert first_option(command, "StrictHostKeyChecking") == "yes"
    assert first_option(command, "UserKnownHostsFile") == str(tmp_path / "inv.known_hosts")


def test_known_hosts_uses_the_inventory_names_and_real_keys():
    key = public_line()
    keys = parse_host_keys("lb1", f"{key} root@lb1\r\n\nConnection to 127.0.0.1 closed.\n")
    assert keys == [key]
    text = known_hosts_text({"lb1": Endpoint("127.0.0.1", 2222, "root", "k"),
                             "lb2": Endpoint("10.60.0.12", 22, "root", "k")},
                            {"lb1": keys, "lb2": keys})
    assert text == f"[127.0.0.1]:2222 {key}\n10.60.0.12 {key}\n"


@pytest.mark.parametrize("output", ["", "cat: No such file or directory\n",
                                    "ssh-ed25519 not-base64!\n"])
def test_host_keys_must_be_real(output):
    with pytest.raises(VagrantError, match="lb1"):
        parse_host_keys("lb1", output)


def test_keys_read_over_vagrant_ssh_need_trust_on_first_use(tmp_path):
    """`vagrant ssh` checks no host key: reading keys that way is trust on first use."""
    with pytest.raises(VagrantError, match="--trust-on-first-use") as info:
        host_keys(tmp_path, [Machine("cp1", "virtualbox", "running"),
                             Machine("lb1", "docker", "running")])
    assert "cp1" in str(info.value) and "lb1" not in str(info.value)
