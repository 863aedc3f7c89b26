"""Running the bundle's own programs in tests: built by the bundle's Go recipes, started as
real processes on loopback ports, asked over HTTP."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from kubeforge.bundle import recipes
from kubeforge.bundle.cache import Cache
from kubeforge.bundle.components import build_go
from kubeforge.bundle.gotool import go_version


def build_programs(cache_dir: Path) -> dict[str, Path]:
    """echo and guestbook-frontend, built as `bundle build` builds them (Go's own build
    cache makes a rebuild quick)."""
    if shutil.which("go") is None:
        pytest.skip("`go` is not installed: the bundle's programs are built with Go")
    cache = Cache(cache_dir)
    built = {}
    for recipe in (recipes.echo(), recipes.guestbook()):
        built.update(build_go(cache, recipe, {"go": go_version()}, lambda _line: None))
    return {name: b.path for name, b in built.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, f"exited {proc.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"nothing listens on {port}: {log.read_text()[-2000:]}"
            time.sleep(0.1)


@contextmanager
def process(cmd: list[str], port: int, log: Path, env: dict | None = None, **popen):
    """Run ``cmd`` until the block ends; it must listen on ``port`` first."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, **popen)
    try:
        _wait_listening(port, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def frontend(binary: Path, tmp: Path, master: int, replica: int):
    """The guestbook frontend, its redis hosts given as Kubernetes' service variables."""
    port = free_port()
    env = {"GET_HOSTS_FROM": "env", "REDIS_MASTER_SERVICE_HOST": "127.0.0.1",
           "REDIS_MASTER_SERVICE_PORT": str(master), "REDIS_SLAVE_SERVICE_HOST": "127.0.0.1",
           "REDIS_SLAVE_SERVICE_PORT": str(replica)}
    with process([str(binary), "-listen", f"127.0.0.1:{port}"], port,
                 tmp / f"frontend-{port}.log", env):
        yield f"http://127.0.0.1:{port}"


def get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body), also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()
