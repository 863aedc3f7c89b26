"""The bundle's own programs, built by the bundle's Go recipes and run for real: the
guestbook frontend against a real redis master and replica on localhost (Debian's
redis-server, with the redis images' own configuration file), and the echo server's /lookup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from kubeforge.bundle import recipes
from kubeforge.bundle.guestbook import data_sources
from tests.bundle.app_helpers import free_port, frontend, get, process

pytestmark = pytest.mark.slow


def _redis(tmp: Path, name: str, *args: str):
    """redis-server with the redis images' /etc/redis.conf, on loopback only."""
    port = free_port()
    data = tmp / name
    data.mkdir()
    cmd = ["redis-server", str(data_sources()["redis.conf"]), "--port", str(port),
           "--bind", "127.0.0.1", "--dir", str(data), "--save", "", *args]
    return port, process(cmd, port, tmp / f"{name}.log")


def _cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


@pytest.fixture
def redis_pair(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("`redis-server` is not installed (apt-get install redis-server)")
    master, master_proc = _redis(tmp_path, "master")
    with master_proc:
        replica, replica_proc = _redis(tmp_path, "replica", "--replicaof", "127.0.0.1",
                                       str(master))
        with replica_proc:
            yield master, replica


def test_set_then_get_through_master_and_replica(programs, redis_pair, tmp_path):
    master, replica = redis_pair
    value = 'hello,world,he said "hi" \u2603'
    with frontend(programs["guestbook-frontend"], tmp_path, master, replica) as url:
        query = urllib.parse.urlencode({"cmd": "set", "key": "messages", "value": value})
        status, kind, body = get(f"{url}/guestbook.php?{query}")
        assert (status, kind, body) == (200, "application/json", b'{"message": "Updated"}')
        assert _cli(master, "get", "messages") == value
        deadline = time.monotonic() + 120  # the replica's first full sync takes a few seconds
        while _cli(replica, "get", "messages") != value:
            assert time.monotonic() < deadline, _cli(replica, "info", "replication")
            time.sleep(0.2)
        status, kind, body = get(f"{url}/guestbook.php?cmd=get&key=messages")
        assert (status, kind) == (200, "application/json")
        assert json.loads(body) == {"data": value}
        assert body.startswith(b'{"data": "hello,world,he said \\"hi\\" ')
        assert get(f"{url}/guestbook.php?cmd=get&key=nothing")[2] == b'{"data": ""}'


def test_get_reads_the_replica_host_and_set_writes_the_master(programs, tmp_path):
    """Two unrelated servers as "master" and "replica": each request goes to its own."""
    if shutil.which("redis-server") is None:
        pytest.skip("`redis-server` is not installed (apt-get install redis-server)")
    master, master_proc = _redis(tmp_path, "master")
    other, other_proc = _redis(tmp_path, "other")
    with master_proc, other_proc, frontend(programs["guestbook-frontend"], tmp_path,
                                           master, other) as url:
        assert get(f"{url}/guestbook.php?cmd=set&key=k&value=written")[0] == 200
        assert _cli(master, "get", "k") == "written" and _cli(other, "get", "k") == ""
        assert get(f"{url}/guestbook.php?cmd=get&key=k")[2] == b'{"data": ""}'
        _cli(other, "set", "k", "from the replica host")
        # Like upstream, any cmd but "set" reads.
        assert get(f"{url}/guestbook.php?cmd=read&key=k")[2] == b'{"data": "from the replica host"}'


def test_pages_errors_and_default_hosts(programs, tmp_path):
    closed = free_port()  # nothing listens there
    with frontend(programs["guestbook-frontend"], tmp_path, closed, closed) as url:
        status, kind, body = get(f"{url}/guestbook.php?cmd=set&key=k&value=v")
        assert status == 502 and kind == "application/json"
        assert f"127.0.0.1:{closed}" in json.loads(body)["error"]
        status, kind, page = get(f"{url}/")
        assert (status, kind) == (200, "text/html; charset=utf-8")
        assert b'call("cmd=get&key=messages")' in page and b"<script>" in page
        assert get(f"{url}/nothing-here")[0] == 404
        status, _, info = get(f"{url}/guestbook.php")
        assert status == 200 and f"master: 127.0.0.1:{closed}".encode() in info
    port = free_port()
    binary = programs["guestbook-frontend"]
    with process([str(binary), "-listen", f"127.0.0.1:{port}"], port, tmp_path / "dns.log",
                  env={}):
        info = get(f"http://127.0.0.1:{port}/guestbook.php")[2].decode()
    # GET_HOSTS_FROM unset (the example says dns): the Services' names, port 6379.
    assert info == (f"guestbook-frontend {recipes.GUESTBOOK_VERSION}\n"
                    "master: redis-master:6379\nreplica: redis-slave:6379\n")
    # The v5 image's environment: its release in the page and in every answer's header.
    with process([str(binary), "-listen", f"127.0.0.1:{port}"], port, tmp_path / "v5.log",
                  env={"GUESTBOOK_RELEASE": "v5"}):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/guestbook.php", timeout=10) as answer:
            assert answer.headers["X-Guestbook-Release"] == "v5"
            assert answer.read().decode().splitlines()[:2] == [
                f"guestbook-frontend {recipes.GUESTBOOK_VERSION}", "release: v5"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            assert answer.headers["X-Guestbook-Release"] == "v5"
    version = subprocess.run([str(binary), "-version"], capture_output=True, text=True,
                             check=True).stdout
    assert version == f"guestbook-frontend {recipes.GUESTBOOK_VERSION}\n"


def test_echo_lookup_resolves_names(programs, tmp_path):
    port = free_port()
    echo = programs["echo"]
    with process([str(echo), "-listen", f"127.0.0.1:{port}"], port, tmp_path / "echo.log"):
        url = f"http://127.0.0.1:{port}/lookup"
        status, kind, body = get(f"{url}?host=localhost")
        assert (status, kind) == (200, "application/json")
        answer = json.loads(body)
        assert answer["host"] == "localhost" and "127.0.0.1" in answer["addresses"]
        status, _, body = get(f"{url}?host=not%20a%20name!")
        assert status == 404
        assert json.loads(body) == {"host": "not a name!", "addresses": [],
                                    "error": "lookup not a name!: no such host"}
        status, _, body = get(url)
        assert status == 400 and "host" in json.loads(body)["error"]
        assert json.loads(get(f"http://127.0.0.1:{port}/x?y=1")[2])["path"] == "/x"
    version = subprocess.run([str(echo), "-version"], capture_output=True, text=True, check=True)
    assert version.stdout == f"echo {recipes.ECHO_VERSION}\n"


def test_frontend_drains_and_exits_cleanly_on_sigterm(programs, tmp_path):
    """A replaced pod gets SIGTERM: the frontend stops accepting, finishes what it serves and
    exits 0 (log.Fatal's exit 1 would have reset every request in flight)."""
    import signal

    port = free_port()
    with process([str(programs["guestbook-frontend"]), "-listen", f"127.0.0.1:{port}"], port,
                 tmp_path / "term.log", env={}) as proc:
        assert get(f"http://127.0.0.1:{port}/guestbook.php")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "term.log").read_text()
