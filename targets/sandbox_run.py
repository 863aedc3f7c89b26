"""Process helpers shared by the sandbox modules: every command has a timeout and fails as a
:class:`SandboxError` naming the command and its last stderr line, never as a traceback."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

from kubeforge.errors import KubeforgeError

# Machine-wide coordination (tmpfs: a reboot forgets daemons that no longer run anyway).
RUN_DIR = Path("/run/kubeforge-sandbox")


class SandboxError(KubeforgeError):
    """The sandbox could not be brought up, inspected or removed."""


class MissingToolError(SandboxError):
    """A required program is absent and could not be installed."""


def run(cmd: list[str], *, timeout: float = 60, check: bool = True, input: bytes | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing output; a non-zero exit (with ``check``) or a timeout raises."""
    shown = " ".join(cmd[:4])
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, check=False,
                              env={**os.environ, **env} if env else None)
    except FileNotFoundError:
        raise MissingToolError(f"sandbox: `{cmd[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"sandbox: `{shown}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines() or ["(no stderr)"]
        raise SandboxError(f"sandbox: `{shown}` failed (exit {proc.returncode}): {lines[-1]}")
    return proc


def out(cmd: list[str], **kwargs) -> str:
    """The stripped stdout of a successful command."""
    return run(cmd, **kwargs).stdout.decode(errors="replace").strip()


def have(program: str) -> bool:
    return shutil.which(program) is not None


@contextmanager
def locked(name: str):
    """Hold an exclusive machine-wide lock: concurrent test sessions share one dockerd, one
    image cache and one iptables table, so their ups and downs must not interleave."""
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(RUN_DIR / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
