"""The console script: exit codes, JSON output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

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
