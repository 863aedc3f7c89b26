"""The daemon bookkeeping: a kubeforge-started dockerd is stopped by its last user only, and the
chains it made are removed, while everything that existed before stays."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from kubeforge.targets import sandbox_daemon


@pytest.fixture
def fake_dockerd(tmp_path, monkeypatch):
    """A harmless process whose name is `dockerd`, recorded as started by kubeforge."""
    program = tmp_path / "dockerd"
    shutil.copy(shutil.which("sleep"), program)
    proc = subprocess.Popen([str(program), "600"])
    monkeypatch.setattr(sandbox_daemon, "RECORD", tmp_path / "dockerd.json")
    restored = []
    monkeypatch.setattr(sandbox_daemon, "_restore", restored.append)
    real_run = sandbox_daemon.run

    def run(cmd, **kwargs):  # no foreign containers on this pretend daemon
        if cmd[:2] == ["docker", "ps"]:
            return subprocess.CompletedProcess(cmd, 0, b"", b"")
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(sandbox_daemon, "run", run)
    sandbox_daemon._save({"pid": proc.pid, "users": ["/a", "/b"], "before": {"x": 1}, "log": ""})
    yield proc, restored
    proc.kill()
    proc.wait()


def test_daemon_is_stopped_by_its_last_user_only(fake_dockerd):
    proc, restored = fake_dockerd
    assert "still used by 1" in sandbox_daemon.release("/a")
    assert sandbox_daemon._alive(proc.pid) and restored == []
    assert "not started by kubeforge" in sandbox_daemon.release("/elsewhere")
    assert sandbox_daemon.release("/b").startswith("dockerd: stopped")
    assert not sandbox_daemon._alive(proc.pid) and restored == [{"x": 1}]
    assert not sandbox_daemon.RECORD.exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables"), reason="needs root and iptables")
def test_restore_removes_only_chains_made_since(monkeypatch):
    before = sandbox_daemon.machine_settings()
    chain = f"KFTEST-{os.getpid()}"
    sandbox_daemon.run(["iptables", "-N", chain])
    sandbox_daemon.run(["iptables", "-A", "FORWARD", "-j", chain])
    try:
        sandbox_daemon._restore(before)
        after = sandbox_daemon.machine_settings()
        assert after == before
    finally:
        sandbox_daemon.run(["iptables", "-D", "FORWARD", "-j", chain], check=False)
        sandbox_daemon.run(["iptables", "-X", chain], check=False)
