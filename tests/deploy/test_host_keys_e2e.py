"""End to end on a sandbox host: every transport that reaches hosts over SSH (the ssh target's
apply, `plan --probe`, the ansible target, `verify` and the testinfra suite it runs) refuses a
host whose key differs from known_hosts and one whose key is not there, and records an
unknown key only with --trust-on-first-use (a changed key never).

The Vagrant transport has the same test in tests/vagrant/test_vagrant_e2e.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.deploy.test_deploy_e2e import Cluster
from tests.host_keys import keys_of, tampered, without

pytestmark = pytest.mark.e2e

HOST = "node1"
TRANSPORTS = {
    "ssh": ("apply", "--until", "preflight"),
    "ansible": ("apply", "--target", "ansible", "--until", "preflight"),
    "probe": ("plan", "--probe"),
    "verify": ("verify", "--preflight"),
}


@pytest.fixture(scope="module")
def lab(sandbox, tmp_path_factory):
    c = Cluster(sandbox, tmp_path_factory.mktemp("hostkeys"))
    yield c
    c.ssh.close()


def kf(lab: Cluster, transport: str, known, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "kubeforge", *TRANSPORTS[transport], str(lab.kf),
           "-i", str(lab.inv), "--known-hosts", str(known), "--limit", HOST, *extra]
    return subprocess.run(cmd, cwd=lab.root, capture_output=True, text=True, timeout=900)


def address(lab: Cluster) -> str:
    return lab.hosts[HOST].address


@pytest.mark.parametrize("tofu", [(), ("--trust-on-first-use",)], ids=["strict", "tofu"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_changed_host_key_is_refused(lab, tmp_path, transport, tofu):
    known = tampered(lab.box.known_hosts, address(lab), tmp_path / "known_hosts")
    before = known.read_text()
    proc = kf(lab, transport, known, *tofu)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"{HOST}: host key mismatch" in out and "Refusing to connect" in out, out
    assert known.read_text() == before  # trust on first use never replaces a key


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unknown_host_key_is_refused_unless_trusted_on_first_use(lab, tmp_path, transport):
    known = without(lab.box.known_hosts, address(lab), tmp_path / "known_hosts")
    proc = kf(lab, transport, known)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"not in {known}" in out and "--trust-on-first-use" in out, out
    assert not keys_of(known, address(lab))

    proc = kf(lab, transport, known, "--trust-on-first-use")
    out = proc.stdout + proc.stderr
    assert "host key" not in out, out
    recorded = keys_of(known, address(lab))
    assert recorded and recorded <= keys_of(lab.box.known_hosts, address(lab)), recorded
    # What was recorded is what the next strict run checks against.
    proc = kf(lab, transport, known)
    assert "host key" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_generated_testinfra_suite_refuses_a_changed_key_itself(lab, tmp_path):
    """Without kubeforge verify in front (plain pytest, as the suite's docstring shows)."""
    kf(lab, "ssh", lab.box.known_hosts)  # compiles build/ (verify/ among it)
    node = lab.hosts[HOST]

    def suite(known) -> subprocess.CompletedProcess:
        config = tmp_path / f"ssh_config-{known.name}"
        config.write_text(f"Host {HOST}\n  HostName {node.address}\n  User root\n"
                          f"  IdentityFile {lab.box.key_path}\n  UserKnownHostsFile {known}\n")
        return subprocess.run(
            [sys.executable, "-m", "pytest", str(lab.build / "verify"), "-q", "-p",
             "no:cacheprovider", f"--hosts=paramiko://{HOST}", f"--ssh-config={config}",
             "--kf-preflight", "-k", HOST], cwd=tmp_path, capture_output=True, text=True,
            timeout=900)

    good = suite(lab.box.known_hosts)
    assert " passed" in good.stdout.splitlines()[-1], good.stdout[-3000:]
    bad = suite(tampered(lab.box.known_hosts, node.address, tmp_path / "tampered"))
    assert bad.returncode != 0 and " passed" not in bad.stdout.splitlines()[-1], bad.stdout[-3000:]
    assert "BadHostKeyException" in bad.stdout, bad.stdout[-3000:]
    unknown = suite(without(lab.box.known_hosts, node.address, tmp_path / "unknown"))
    assert " passed" not in unknown.stdout.splitlines()[-1], unknown.stdout[-3000:]
    assert "not found in known_hosts" in unknown.stdout, unknown.stdout[-3000:]


@pytest.mark.parametrize("transport", ["ansible", "probe"])
def test_through_a_jump_host_both_keys_are_checked(lab, tmp_path, transport):
    """The jump host's key is checked against the same file, before anything runs (ansible
    tunnels with a ProxyCommand ssh as strict, since ProxyJump would ignore the command
    line's options, but that ssh's refusal cannot reach ansible's output)."""
    jump = lab.hosts["node6"]
    via = ("--jump", f"root@{jump.address}", "--jump-key", str(lab.box.key_path))
    proc = kf(lab, transport, lab.box.known_hosts, *via)
    assert "host key" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    known = tampered(lab.box.known_hosts, jump.address, tmp_path / "known_hosts")
    proc = kf(lab, transport, known, *via)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"jump host {jump.address}: host key mismatch" in out, out
