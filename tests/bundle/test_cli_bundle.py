"""`kubeforge bundle` command line: help, refusals before any build, exit codes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kubeforge.cli import main


def test_help_lists_both_commands():
    result = CliRunner().invoke(main, ["bundle", "--help"])
    assert result.exit_code == 0
    assert "build" in result.output and "check" in result.output
    build_help = CliRunner().invoke(main, ["bundle", "build", "--help"])
    assert build_help.exit_code == 0 and "[default: 1.37.2]" in build_help.output


def test_unknown_minor_is_refused_before_anything_is_built(tmp_path):
    out = tmp_path / "b"
    result = CliRunner().invoke(main, ["bundle", "build", "--kubernetes", "1.30.1", "-o", str(out),
                                       "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1
    assert "no runtime/CNI versions are known for Kubernetes 1.30" in result.stderr
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_bad_version_with_json(tmp_path):
    result = CliRunner().invoke(main, ["bundle", "build", "--kubernetes", "latest", "-o",
                                       str(tmp_path / "b"), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "ok": False, "problems": [],
        "error": "bundle: `latest` is not a Kubernetes release version; write it like 1.37.2"}


def test_out_is_required():
    result = CliRunner().invoke(main, ["bundle", "build"])
    assert result.exit_code == 2 and "--out" in result.stderr
