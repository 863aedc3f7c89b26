"""The console script: exit codes, JSON output, no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kubeforge.cli import main
from tests.conftest import EXAMPLES


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_subcommands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("check", "compile", "fmt"):
        assert name in result.output


def test_check_ok():
    result = run("check", str(EXAMPLES / "guestbook.kf"))
    assert result.exit_code == 0


def test_check_invalid_exit_1(tmp_path):
    bad = tmp_path / "bad.kf"
    bad.write_text("namespace a { deployment b { replica 3 } }\n")
    result = run("check", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:1:30: error[E001]: unknown keyword `replica`" in result.output
    assert "did you mean `replicas`?" in result.output
    assert "Traceback" not in result.output


def test_check_json(tmp_path):
    bad = tmp_path / "bad.kf"
    bad.write_text("namespace a { deployment b { replica 3 } }\n")
    result = run("check", "--json", str(bad))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["diagnostics"][0]["code"] == "E001"
    assert data["diagnostics"][0]["line"] == 1


def test_missing_file_is_usage_error(tmp_path):
    result = run("check", str(tmp_path / "nope.kf"))
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_bad_flag_is_usage_error():
    assert run("check", "--frobnicate", "x").exit_code == 2


def test_fmt_check(tmp_path):
    ugly = tmp_path / "u.kf"
    ugly.write_text("namespace a{}\n")
    assert run("fmt", "--check", str(ugly)).exit_code == 1
    assert run("fmt", "-w", str(ugly)).exit_code == 0
    assert ugly.read_text() == "namespace a {}\n"
    assert run("fmt", "--check", str(ugly)).exit_code == 0


def test_compile_writes_manifests(tmp_path):
    result = run("compile", str(EXAMPLES / "guestbook.kf"), "-o", str(tmp_path / "out"),
                 "--state-dir", str(tmp_path / "state"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "manifests/10-default.yaml" in data["files"]
    assert (tmp_path / "out" / "guestbook-lab" / "manifests" / "10-default.yaml").is_file()


def test_compile_twice_is_byte_identical(tmp_path):
    args = [str(EXAMPLES / "guestbook.kf"), "-o", str(tmp_path / "out"), "--state-dir",
            str(tmp_path / "state")]
    assert run("compile", *args).exit_code == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert run("compile", *args).exit_code == 0
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert before == after


def test_console_script_runs_as_a_process(tmp_path):
    bad = tmp_path / "bad.kf"
    bad.write_bytes(b"\xff\xfe not utf-8")
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "check", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_check_reports_a_bad_patch_at_its_line(tmp_path):
    path = tmp_path / "app.kf"
    path.write_text('namespace a {\n  deployment web {\n    image "nginx"\n    patch """\n'
                    '      spec:\n        replicas: many\n    """\n  }\n}\n')
    result = run("check", str(path))
    assert result.exit_code == 1
    assert f"{path}:6:9: error[E130]: the patched deployment `web` is invalid" in result.output
    assert "spec.replicas" in result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "compile",
                           str(EXAMPLES / "ha-cluster.kf"), "-o", str(root / "build"),
                           "--state-dir", str(root / "state")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return root / "build" / "ha-lab"


@pytest.mark.parametrize("args", [
    ("certs", "check-expiration", "{build}"),
    ("rbac", "can-i", "{multi}", "get", "pods", "--as", "alice"),
    ("rbac", "who-can", "{multi}", "get", "secrets", "-n", "team-a"),
    ("rbac", "matrix", "{multi}"),
    ("compile", "{ha}", "-o", "{tmp}/b", "--state-dir", "{tmp}/s", "--json"),
    ("fmt", "{ha}"),
], ids=lambda a: " ".join(a[:2]))
def test_a_reader_that_goes_away_ends_the_command_quietly(built, tmp_path, args):
    """`kubeforge ... | head`: the reader closes the pipe; no traceback, no exit code that
    means failure or a bug, just the SIGPIPE death every Unix filter dies."""
    names = {"build": built, "multi": EXAMPLES / "multi-team.kf", "ha": EXAMPLES / "ha-cluster.kf",
             "tmp": tmp_path}
    read, write = os.pipe()
    os.close(read)  # gone before the first byte: every write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "kubeforge",
                               *(a.format(**names) for a in args)],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == -signal.SIGPIPE, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
