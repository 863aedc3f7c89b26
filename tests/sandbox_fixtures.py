"""pytest plugin: the `sandbox` fixture, six sandbox hosts shared by one test session.

Tests that use it must be marked ``e2e`` (so ``-m "not e2e"`` never starts docker). The hosts
come up once per session, reusing a sandbox that already runs in the directory; a sandbox the
session created is removed at its end unless KUBEFORGE_SANDBOX_KEEP=1. With pytest-xdist every
worker is a session of its own: they register in a shared file and the last one out tears
down. KUBEFORGE_SANDBOX_DIR picks the directory (default .kubeforge/sandbox in the repo).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

HOSTS = 6
REPO = Path(__file__).resolve().parent.parent


def _sandbox_dir() -> Path:
    return Path(os.environ.get("KUBEFORGE_SANDBOX_DIR") or REPO / ".kubeforge" / "sandbox")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _sessions(box, change) -> dict:
    """Read, change and write the record of the sessions using ``box`` (under a lock)."""
    from kubeforge.targets.sandbox_run import locked

    path = box.dir / "fixture-sessions.json"
    with locked(f"fixture-{box.name}"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {"created": False, "pids": []}
        record["pids"] = [p for p in record["pids"] if _pid_alive(p)]
        change(record)
        box.dir.mkdir(parents=True, exist_ok=True)
        if record["pids"]:
            path.write_text(json.dumps(record))
        else:
            path.unlink(missing_ok=True)
        return dict(record)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if "sandbox" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None:
        pytest.fail(f"{item.nodeid} uses the `sandbox` fixture but is not marked e2e", pytrace=False)


@pytest.fixture(scope="session")
def sandbox():
    """A :class:`kubeforge.targets.sandbox.Sandbox` with at least six hosts whose sshd answers."""
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root (dockerd, iptables)")
    from kubeforge.targets.sandbox import Sandbox

    box = Sandbox(_sandbox_dir())

    def join(record):
        if not record["pids"]:  # first session in: it owns the sandbox unless one already ran
            record["created"] = not any(row["sshd"] for row in box.status())
        record["pids"].append(os.getpid())

    _sessions(box, join)
    try:
        box.up(max(HOSTS, len(box.hosts())))
        yield box
    finally:
        def leave(record):
            record["pids"].remove(os.getpid())

        record = _sessions(box, leave)
        if not record["pids"] and record["created"] and os.environ.get("KUBEFORGE_SANDBOX_KEEP") != "1":
            box.down()


@pytest.fixture
def shared_sandbox_paused():
    """For a test that brings up a sandbox of its own on the shared subnet (the README's path,
    10.77.0.0/24): the shared sandbox, if it runs, goes down first and comes back afterwards
    with as many hosts (new host keys, same files). e2e runs are one at a time (flock), so no
    other test uses it meanwhile."""
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root (dockerd, iptables)")
    from kubeforge.targets.sandbox import Sandbox

    box = Sandbox(_sandbox_dir())
    count = len(box.hosts())
    running = count and any(row["sshd"] for row in box.status())
    if running:
        box.down()
    try:
        yield
    finally:
        if running:
            box.up(max(HOSTS, count))
