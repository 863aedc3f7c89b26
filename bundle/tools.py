"""Running the build tools (go, gcc, mmdebstrap, kubeadm): logged, with progress heartbeats,
and failing as a :class:`BundleError` that names the command, its last output and its log."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from kubeforge.bundle.errors import BundleError

Progress = Callable[[str], None]
HEARTBEAT = 60.0  # seconds between "still building" lines during long steps


def require(program: str, hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise BundleError(f"bundle: `{program}` is not on PATH; {hint}")
    return path


def run_logged(cmd: list[str], *, log: Path, cwd: Path | None = None,
               env: dict[str, str] | None = None, progress: Progress | None = None,
               what: str = "", timeout: float = 4 * 3600) -> None:
    """Run ``cmd`` with its output appended to ``log``; print a heartbeat every minute."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "ab") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n".encode())
        sink.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    env={**os.environ, **env} if env else None)
        except FileNotFoundError:
            raise BundleError(f"bundle: `{cmd[0]}` is not installed") from None
        try:
            while True:
                try:
                    proc.wait(timeout=HEARTBEAT)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > timeout:
                        proc.kill()
                        proc.wait()
                        raise BundleError(f"bundle: {what or cmd[0]} did not finish within "
                                          f"{timeout / 60:.0f} min (log {log})") from None
                    if progress:
                        progress(f"  ... {what or cmd[0]}: {elapsed / 60:.0f} min so far")
        except BaseException:
            if proc.poll() is None:  # interrupted: leave no builder behind
                proc.kill()
                proc.wait()
            raise
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        shown = "\n".join(f"    {line}" for line in tail)
        raise BundleError(f"bundle: {what or cmd[0]} failed (exit {proc.returncode}); "
                          f"last lines of {log}:\n{shown}")


def output(cmd: list[str], *, what: str, env: dict[str, str] | None = None,
           cwd: Path | None = None, timeout: float = 600) -> str:
    """The stdout of a short command that must succeed."""
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd,
                              stdin=subprocess.DEVNULL,
                              env={**os.environ, **env} if env else None)
    except FileNotFoundError:
        raise BundleError(f"bundle: `{cmd[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise BundleError(f"bundle: {what} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        raise BundleError(f"bundle: {what} failed (exit {proc.returncode}): {last}")
    return proc.stdout.decode(errors="replace")
