"""`kubeforge etcd`: its refusals (from the command line, from source text) and the backup's
member fallback and fetch with fake sessions (a fake SFTP that serves files of this machine).
The real snapshot, fetch and restore run in tests/k8s/ha/test_day2_etcd.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubeforge.compiler.lower import load_program
from kubeforge.errors import UsageError
from kubeforge.targets.base import CommandOutput, HostSpec, TargetError
from kubeforge.targets.etcd_ops import BOLT_MAGIC, Hosts, backup, check_snapshot_file

SOURCE = """cluster c {
  kubernetes "1.37.2"
  endpoint "10.0.0.100:6443"
  install preinstalled
  node cp1 { address 10.0.0.1  role control-plane }
  node cp2 { address 10.0.0.2  role control-plane }
  node cp3 { address 10.0.0.3  role control-plane }
}
"""
INVENTORY = "all:\n  hosts:\n" + "".join(
    f"    cp{i}: {{ansible_host: 127.0.0.1, ansible_port: 1}}\n" for i in (1, 2, 3))


def _etcd(tmp_path, *args):
    (tmp_path / "c.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    return subprocess.run([sys.executable, "-m", "kubeforge", "etcd", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _snapshot_file(path: Path, body: bytes = b"") -> Path:
    path.write_bytes(b"\0" * 16 + BOLT_MAGIC + b"\0" * 12 + body)
    return path


def test_restore_without_yes_and_without_a_terminal_refuses(tmp_path):
    snap = _snapshot_file(tmp_path / "s.db")
    proc = _etcd(tmp_path, "restore", "c.kf", "-i", "inv.yaml", str(snap))
    assert proc.returncode == 2, proc.stderr
    assert "replaces the cluster's data; pass --yes to confirm" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("content, message", [
    (None, "snapshot missing.db: No such file or directory"),
    (b"just some text, no database", "is not an etcd snapshot (no bbolt header)"),
])
def test_restore_refuses_what_is_no_snapshot_before_any_host(tmp_path, content, message):
    name = "missing.db" if content is None else "bad.db"
    if content is not None:
        (tmp_path / name).write_bytes(content)
    proc = _etcd(tmp_path, "restore", "c.kf", "-i", "inv.yaml", name, "--yes")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_backup_limit_without_a_member_is_a_usage_error(tmp_path):
    (tmp_path / "known_hosts").write_text("")
    proc = _etcd(tmp_path, "backup", "c.kf", "-i", "inv.yaml", "--limit", "nobody",
                 "--known-hosts", "known_hosts")
    assert proc.returncode == 2, proc.stderr
    assert "--limit nobody: no etcd member among them (members: cp1, cp2, cp3)" in proc.stderr


def test_check_snapshot_file_returns_its_sha256(tmp_path):
    snap = _snapshot_file(tmp_path / "s.db", b"payload")
    assert check_snapshot_file(snap) == hashlib.sha256(snap.read_bytes()).hexdigest()
    with pytest.raises(UsageError):
        check_snapshot_file(tmp_path)


# ---------------------------------------------------------------- backup with fakes


class FakeSftp:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def getfo(self, remote, out) -> None:
        out.write(self.files[remote])

    def close(self) -> None:
        pass


class FakeSession:
    """A member whose snapshot fails (``broken``) or writes ``data`` at a remote path."""

    def __init__(self, name: str, data: bytes, broken: bool, report_sha: str | None = None):
        self.host = HostSpec(name, "10.0.0.1")
        self.data, self.broken, self.report_sha = data, broken, report_sha
        self.files: dict[str, bytes] = {}
        self.scripts: list[str] = []

    def run(self, script: str, *, timeout: float, stdin: bytes | None = None) -> CommandOutput:
        self.scripts.append(script)
        if script.startswith("sh -s --"):
            assert stdin is not None and b"snapshot save" in stdin
            if self.broken:
                return CommandOutput(1, b"", b"Error: context deadline exceeded\n", 0.1)
            path = f"/var/lib/kubeforge/etcd-backup/etcd-{self.host.name}-1.db"
            self.files[path] = self.data
            sha = self.report_sha or hashlib.sha256(self.data).hexdigest()
            line = json.dumps({"member": self.host.name, "path": path, "size": len(self.data),
                               "sha256": sha, "revision": 77})
            return CommandOutput(0, b"Snapshot saved\n" + line.encode() + b"\n", b"", 0.1)
        if script.startswith("rm -f "):
            self.files.pop(script.split()[-1], None)
        return CommandOutput(0, b"", b"", 0.0)

    def sftp(self):
        return FakeSftp(self.files)


class FakeTarget:
    def __init__(self, sessions: dict[str, FakeSession]) -> None:
        self.sessions = sessions

    def open(self, spec: HostSpec) -> FakeSession:
        return self.sessions[spec.name]

    def close(self) -> None:
        pass


def _cluster(tmp_path):
    (tmp_path / "c.kf").write_text(SOURCE)
    return load_program(tmp_path / "c.kf")[0].cluster


def _hosts(sessions):
    return Hosts(FakeTarget(sessions), {n: s.host for n, s in sessions.items()})


def test_backup_asks_the_next_member_and_fetches_a_private_checked_copy(tmp_path):
    sessions = {"cp1": FakeSession("cp1", b"", broken=True),
                "cp2": FakeSession("cp2", b"etcd-bytes" * 100, broken=False),
                "cp3": FakeSession("cp3", b"never", broken=False)}
    said = []
    snap = backup(_cluster(tmp_path), _hosts(sessions), tmp_path / "out", said.append)
    assert snap.member == "cp2" and snap.revision == 77
    assert snap.path == tmp_path / "out" / "c-etcd-cp2-1.db"
    assert snap.path.read_bytes() == b"etcd-bytes" * 100
    assert snap.path.stat().st_mode & 0o777 == 0o600
    assert any("cp1: snapshot failed" in line and "deadline" in line for line in said)
    assert sessions["cp2"].files == {}  # the member's copy is removed once fetched
    assert sessions["cp3"].scripts == []


def test_a_fetch_that_does_not_match_the_reported_sha256_is_not_kept(tmp_path):
    sessions = {n: FakeSession(n, b"data", broken=False, report_sha="0" * 64)
                for n in ("cp1", "cp2", "cp3")}
    with pytest.raises(TargetError, match="no etcd member could take a snapshot.*arrived with "
                                          "sha256"):
        backup(_cluster(tmp_path), _hosts(sessions), tmp_path / "out", lambda _: None)
    assert list((tmp_path / "out").iterdir()) == []
