"""known_hosts through paramiko: trust on first use records a host key against a real SSH
handshake (a paramiko server on a local port), keeps what the file held, and the recorded
key is then required; the files kubeforge writes parse back with paramiko's HostKeys."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from kubeforge.targets import known_hosts
from kubeforge.targets.base import HostSpec, SshOptions, TargetError
from kubeforge.targets.sandbox_files import client_key
from kubeforge.targets.ssh import SshTarget
from tests.deploy.ssh_server import SshServer


_KEYS: dict[str, Path] = {}


def client_key_path(name: str) -> Path:
    import tempfile

    if name not in _KEYS:
        _KEYS[name] = client_key(Path(tempfile.mkdtemp()))[0]
    return _KEYS[name]


@pytest.fixture
def server():
    srv = SshServer(paramiko.Ed25519Key.from_private_key_file(str(client_key_path("host"))))
    yield srv
    srv.close()


def host(port: int) -> HostSpec:
    return HostSpec("n1", "127.0.0.1", port, "root", str(client_key_path("client")))


def test_trust_on_first_use_appends_with_paramiko_and_keeps_the_file(server, tmp_path):
    path = tmp_path / "known_hosts"
    other = client_key(client_key_path("old").parent)[1].split()[:2]
    hashed = paramiko.HostKeys.hash_host("elsewhere.example")
    existing = f"# managed by hand\n{hashed} {' '.join(other)}\n"
    path.write_text(existing)
    target = SshTarget(SshOptions(known_hosts=path, trust_on_first_use=True))
    target.open(host(server.port))
    target.close()
    text = path.read_text()
    assert text.startswith(existing)  # comments and markers stay
    name = known_hosts.known_name("127.0.0.1", server.port)
    assert name == f"[127.0.0.1]:{server.port}"
    recorded = paramiko.HostKeys(str(path)).lookup(name)
    assert recorded is not None and recorded["ssh-ed25519"] == server.host_key
    # Now the key is known: no trust-on-first-use needed, and a different key is refused.
    strict = SshTarget(SshOptions(known_hosts=path))
    strict.open(host(server.port))
    strict.close()
    impostor = SshServer(paramiko.Ed25519Key.from_private_key_file(str(client_key_path("other"))))
    try:
        path.write_text(path.read_text().replace(str(server.port), str(impostor.port)))
        with pytest.raises(TargetError, match="host key mismatch"):
            SshTarget(SshOptions(known_hosts=path)).open(host(impostor.port))
    finally:
        impostor.close()


def test_a_known_hosts_paramiko_cannot_read_is_a_clear_error(server, tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("@cert-authority *.example ssh-ed25519 AAAA\n")
    with pytest.raises(TargetError, match=r"known_hosts .* line 1"):
        SshTarget(SshOptions(known_hosts=path)).open(host(server.port))


def test_an_unknown_host_key_is_refused_without_trust_on_first_use(server, tmp_path):
    path = tmp_path / "known_hosts"
    with pytest.raises(TargetError, match="is not in"):
        SshTarget(SshOptions(known_hosts=path)).open(host(server.port))
    assert not path.exists()


def test_entries_text_parses_back(tmp_path):
    key = paramiko.Ed25519Key.from_private_key_file(str(client_key_path("host")))
    path = tmp_path / "known_hosts"
    path.write_text(known_hosts.entries_text([("10.0.0.1", key), ("[fd00::1]:2222", key)]))
    keys = paramiko.HostKeys(str(path))
    assert keys.lookup("10.0.0.1")["ssh-ed25519"] == key
    assert keys.lookup("[fd00::1]:2222")["ssh-ed25519"] == key
