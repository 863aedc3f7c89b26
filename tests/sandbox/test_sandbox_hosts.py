"""Sandbox hosts for real: docker containers with systemd and sshd on an internal network.

A sandbox of its own (own directory, name and subnet) so that `down` here never touches the
session's shared `sandbox` fixture or a developer's sandbox. The tests run in file order: the
last ones take the sandbox down and up again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from kubeforge.targets import sandbox_daemon, sandbox_docker
from kubeforge.targets.sandbox import Sandbox
from kubeforge.targets.sandbox_run import out, run

from kubeforge.cli import main

paramiko = pytest.importorskip("paramiko")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="sandbox hosts need root (dockerd, iptables)"),
]

NAME, SUBNET, HOSTS = "kfsbxtest", "10.77.9.0/24", 3


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    box = Sandbox(tmp_path_factory.mktemp("sandbox"), subnet=SUBNET, name=NAME)
    box.up(HOSTS)
    yield box
    box.down()


def connect(host, known_hosts):
    """paramiko with nothing but the given known_hosts: unknown or changed keys are refused."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host.address, port=host.port, username=host.user,
                   key_filename=str(host.key_path), look_for_keys=False, allow_agent=False,
                   timeout=5, banner_timeout=5, auth_timeout=5)
    return client


def sh(client, command: str, timeout: float = 20) -> tuple[int, str]:
    _, stdout, _ = client.exec_command(command, timeout=timeout)
    text = stdout.read().decode().strip()
    return stdout.channel.recv_exit_status(), text


def test_files_and_modes(box):
    assert box.dir.stat().st_mode & 0o777 == 0o700
    assert box.key_path.stat().st_mode & 0o777 == 0o600
    state = json.loads(box.state_path.read_text())
    assert sorted(state["containers"]) == [f"{NAME}-node{i}" for i in range(1, HOSTS + 1)]
    assert state["network"]["name"] == f"{NAME}-sandbox" and state["iptables"]
    assert "started" in state["dockerd"] and "pid" in state["dockerd"]


def test_ssh_into_every_host_with_only_known_hosts_and_key(box):
    seen = {}
    for host in box.hosts():
        with connect(host, box.known_hosts) as client:
            _, hostname = sh(client, "hostname")
            _, running = sh(client, "systemctl is-system-running --wait")
            code, sshd = sh(client, "systemctl is-active sshd")
            _, addresses = sh(client, "ip -4 -o addr show dev eth0")
            _, settings = sh(client, "sshd -T")
        assert hostname == host.name
        assert running in ("running", "degraded")
        assert (code, sshd) == (0, "active")
        assert f" {host.address}/" in addresses
        assert {"passwordauthentication no", "kbdinteractiveauthentication no",
                "pubkeyauthentication yes"} <= set(settings.splitlines())
        seen[host.name] = host.address
    assert len(seen) == HOSTS and len(set(seen.values())) == HOSTS


def test_every_host_has_its_own_host_keys_and_the_image_none(box):
    lines = box.known_hosts.read_text().splitlines()
    ed25519 = [line.split()[2] for line in lines if line.split()[1] == "ssh-ed25519"]
    assert len(ed25519) == HOSTS and len(set(ed25519)) == HOSTS
    image = json.loads(box.state_path.read_text())["image"]
    baked = out(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                 "ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l"], timeout=60)
    assert baked == "0"


def test_tampered_and_missing_known_hosts_are_refused(box, tmp_path):
    node1, node2 = box.hosts()[:2]
    lines = box.known_hosts.read_text().splitlines()
    key_of = {line.split()[0]: line.split()[2] for line in lines if "ssh-ed25519" in line}
    tampered = tmp_path / "tampered"
    tampered.write_text(f"{node1.address} ssh-ed25519 {key_of[node2.address]}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(node1, tampered)
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(node1, empty)


def test_no_route_off_the_machine(box):
    with connect(box.hosts()[0], box.known_hosts) as client:
        _, default = sh(client, "ip route show default; ip -6 route show default")
        # A routing-table lookup only: no packet is sent to the documentation address.
        code, _ = sh(client, "ip -4 route get 192.0.2.1")
    assert default == "" and code != 0


RECEIVE = ("python3 -c \"import socket,struct; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
           "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('224.0.0.18',5999));"
           "s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,"
           "struct.pack('4s4s',socket.inet_aton('224.0.0.18'),socket.inet_aton('{addr}')));"
           "s.settimeout(3); print(s.recv(64).decode())\"")
SEND = ("python3 -c \"import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        "s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,1);"
        # No default route: the interface must be named, as keepalived does.
        "s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton('{addr}'));"
        "[s.sendto(b'vrrp-probe',('224.0.0.18',5999)) for _ in range(5)]\"")


def multicast_arrives(sender, receiver, known_hosts) -> bool:
    """A datagram to VRRP's group 224.0.0.18 from one host reaches another: what docker's
    isolation chain drops without the sandbox's DOCKER-USER rule."""
    with connect(receiver, known_hosts) as rx, connect(sender, known_hosts) as tx:
        _, stdout, _ = rx.exec_command(RECEIVE.format(addr=receiver.address), timeout=10)
        time.sleep(0.8)  # let the receiver join the group
        sh(tx, SEND.format(addr=sender.address))
        return stdout.read().decode().strip() == "vrrp-probe"


def test_vrrp_multicast_between_hosts(box):
    rule = json.loads(box.state_path.read_text())["iptables"][0]
    assert sandbox_docker.rule_present(rule)
    node1, node2 = box.hosts()[:2]
    assert multicast_arrives(node1, node2, box.known_hosts)
    sandbox_docker.delete_rule(rule)
    try:  # the rule is what makes it work
        assert not multicast_arrives(node1, node2, box.known_hosts)
    finally:
        sandbox_docker.add_rule(rule)


def test_up_again_reuses_and_repairs(box):
    known = box.known_hosts.read_text()
    victim = box.hosts()[-1]
    run(["docker", "stop", "-t", "5", victim.container], timeout=30)
    result = CliRunner().invoke(main, ["sandbox", "up", "-n", str(HOSTS), "--dir", str(box.dir),
                                       "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [h["address"] for h in summary["hosts"]] == [h.address for h in box.hosts()]
    assert summary["image_build_seconds"] is None
    assert box.known_hosts.read_text() == known  # same hosts, same keys
    status = CliRunner().invoke(main, ["sandbox", "status", "--dir", str(box.dir), "--json"])
    assert all(row["sshd"] for row in json.loads(status.output)["hosts"])


def sandbox_leftovers(box) -> list[str]:
    found = out(["docker", "ps", "-a", "--filter", f"label=kubeforge.sandbox={NAME}",
                 "--format", "{{.Names}}"], timeout=30).split()
    found += out(["docker", "network", "ls", "--filter", f"label=kubeforge.sandbox={NAME}",
                  "--format", "{{.Name}}"], timeout=30).split()
    rules = run(["iptables", "-S"], timeout=15).stdout.decode()
    return found + [line for line in rules.splitlines() if f"kubeforge-sandbox {NAME}" in line]


def test_down_leaves_nothing_and_up_again_uses_the_cached_image(box):
    state = json.loads(box.state_path.read_text())
    lines = box.down()
    assert not box.state_path.exists() and not box.inventory.exists()
    if sandbox_daemon.daemon_answers():
        assert sandbox_leftovers(box) == []
    if state["dockerd"]["started"] and any(line.startswith("dockerd: stopped") for line in lines):
        assert not sandbox_daemon._alive(state["dockerd"]["pid"])
        for name, change in state["dockerd"]["changed"].items():
            if name.startswith("net."):
                path = Path("/proc/sys") / name.replace(".", "/")
                assert path.read_text().strip() == change["before"]
    assert str(box.dir) not in (sandbox_daemon._load() or {}).get("users", [])

    started = time.monotonic()
    box.up(HOSTS)
    again = json.loads(box.state_path.read_text())
    assert again["image"] == state["image"] and "image_build_seconds" not in again
    assert time.monotonic() - started < 60
