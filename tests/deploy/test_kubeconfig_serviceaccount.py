"""`kubeforge kubeconfig serviceaccount` from source text: the declared account is required,
the TokenRequest runs as `kubectl create token` on the applier (a fake session here; the
real API server answers in tests/k8s/ha/test_day2_tokens.py), the kubeconfig is written 0600
for the endpoint and the build's CA, and the token reaches stdout only with `-o -`."""

from __future__ import annotations

import base64
import json
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from kubeforge import cli_applier
from kubeforge.cli import main

SOURCE = """cluster c {
  kubernetes "1.37.2"
  endpoint "10.0.0.100:8443"
  loadbalancer keepalived-haproxy { vip 10.0.0.100  interface "eth0"  port 8443 }
  node cp1 { address 10.0.0.11  role control-plane worker }
}
namespace a { serviceaccount ci { bind view } }
namespace b { serviceaccount ci {}  serviceaccount deploy {} }
"""
EXP = 1_900_000_000  # 2030-03-17T17:46:40Z


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


JWT = f"{_b64({'alg': 'RS256', 'kid': 'k'})}.{_b64({'exp': EXP, 'sub': 'x'})}.c2lnbmF0dXJl"


@dataclass
class Out:
    exit_code: int
    stdout: bytes
    stderr: bytes


class FakeSession:
    def __init__(self, answer: Out) -> None:
        self.answer, self.scripts = answer, []

    def run(self, script: str, timeout: float = 60) -> Out:
        self.scripts.append(script)
        return self.answer


@pytest.fixture
def applier(tmp_path, monkeypatch):
    """The applier cp1 as a fake session; the build is real (compiled by the command)."""
    (tmp_path / "c.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text("all:\n  hosts:\n    cp1: {ansible_host: 127.0.0.1}\n")
    monkeypatch.chdir(tmp_path)
    session = FakeSession(Out(0, (JWT + "\n").encode(), b""))
    closed = []

    def open_applier(file, inventory, build_dir, state_dir, *ssh):
        from kubeforge.cli_deploy import _prepare

        dep = _prepare(file, inventory, build_dir, state_dir)
        return SimpleNamespace(close=lambda: closed.append(True)), session, "cp1", dep

    monkeypatch.setattr(cli_applier, "open_applier", open_applier)
    session.closed = closed
    return session


def run(*args: str):
    return CliRunner().invoke(main, ["kubeconfig", "serviceaccount", "c.kf", *args,
                                     "-i", "inv.yaml"])


def test_writes_a_kubeconfig_with_the_requested_token(applier, tmp_path):
    result = run("ci", "-n", "a", "--ttl", "2h", "-o", "out/ci.conf")
    assert result.exit_code == 0, result.output
    assert applier.scripts == [shlex.join((
        "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "-n", "a", "create", "token",
        "ci", "--duration=7200s"))]
    assert applier.closed == [True]
    assert JWT not in result.stdout and JWT not in result.stderr
    assert "user system:serviceaccount:a:ci, expires 2030-03-17 17:46:40Z" in result.stderr
    out = tmp_path / "out/ci.conf"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    conf = yaml.safe_load(out.read_text())
    assert conf["users"] == [{"name": "system:serviceaccount:a:ci", "user": {"token": JWT}}]
    cluster = conf["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.100:8443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == \
        (tmp_path / "build/c/pki/ca.crt").read_bytes()


def test_dash_prints_the_kubeconfig_and_only_then(applier, tmp_path):
    result = run("deploy", "--ttl", "10m", "-o", "-")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["users"][0]["user"]["token"] == JWT
    assert applier.scripts[0].endswith("-n b create token deploy --duration=600s")
    default = run("deploy")
    assert default.exit_code == 0 and default.stdout == ""
    assert (tmp_path / "deploy.kubeconfig").exists()


def test_a_cluster_refusal_is_exit_1_with_its_message(applier, tmp_path):
    applier.answer = Out(1, b"", b'error: failed to create token: serviceaccounts "ci" not found')
    result = run("ci", "-n", "a")
    assert result.exit_code == 1
    assert 'cp1: error: failed to create token: serviceaccounts "ci" not found (has ' \
        "`kubeforge apply` created it?)" in result.stderr
    assert not (tmp_path / "ci.kubeconfig").exists()


def test_an_answer_that_is_no_token_is_never_shown(applier, tmp_path):
    applier.answer = Out(0, b"s3cr3t-but-not-a-jwt\n", b"")
    result = run("ci", "-n", "a")
    assert result.exit_code == 1 and "s3cr3t" not in result.output
    assert "not a service-account token" in result.stderr


@pytest.mark.parametrize("args, message", [
    (("ci",), "service account ci is declared in namespaces a, b: pick one with -n"),
    (("ci", "-n", "c"), "declares no service account ci in namespace c; it declares a/ci, "
                        "b/ci, b/deploy"),
    (("web",), "declares no service account web; it declares"),
    (("ci", "-n", "a", "--ttl", "5m"), "the TokenRequest API refuses tokens shorter than 10m"),
    (("ci", "-n", "a", "--ttl", "soon"), "`soon` is not a duration"),
])
def test_usage_errors_before_any_connection(applier, args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert applier.scripts == []


def test_an_unreachable_applier_is_one_clear_line(tmp_path):
    """No fake: the command compiles, then fails to reach cp1 (port 1 refuses at once)."""
    (tmp_path / "c.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text(
        "all:\n  hosts:\n    cp1: {ansible_host: 127.0.0.1, ansible_port: 1}\n")
    (tmp_path / "known_hosts").write_text("")
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "kubeconfig", "serviceaccount",
                           "c.kf", "deploy", "-i", "inv.yaml", "--known-hosts", "known_hosts"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "cp1: cannot connect to 127.0.0.1:1" in proc.stderr
    assert not (tmp_path / "deploy.kubeconfig").exists()


def test_the_file_comes_first(applier):
    result = CliRunner().invoke(main, ["kubeconfig", "serviceaccount", "ci", "-n", "a", "c.kf",
                                       "-i", "inv.yaml"])
    assert result.exit_code == 2 and "`c.kf` is one: the file comes first" in result.output
    assert applier.scripts == []
