"""`kubeforge --help` lists every subcommand without importing the modules behind them, and
the texts it shows are the commands' own."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from kubeforge.cli import LAZY


def test_every_lazy_text_is_its_commands_short_help():
    for name, (module, attribute, text) in LAZY.items():
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command) and command.name == name
        assert command.get_short_help_str(1000) == text, name


#: Top-level packages and kubeforge modules each command must not import: the import budget
#: that keeps `kubeforge --help` and `check` of a small file quick (bench/startup.py times them).
_EVERY = ("paramiko", "cryptography", "rich", "jinja2", "ansible", "ansible_runner",
          "kubeforge.targets", "kubeforge.cli_", "kubeforge.console")
NOT_IMPORTED = {
    "--help": (*_EVERY, "lark", "yaml", "jsonschema", "kubernetes_validate", "jsonpatch",
               "kubeforge.compiler", "kubeforge.dsl"),
    "check": (*_EVERY, "kubeforge.compiler.state", "kubeforge.compiler.pki",
              "kubeforge.compiler.inventory", "kubeforge.compiler.build"),
}
#: The second check of the same file answers its schema checks from the cache.
NOT_IMPORTED["check again"] = (*NOT_IMPORTED["check"], "jsonschema", "kubernetes_validate")


@pytest.mark.parametrize("command", sorted(NOT_IMPORTED))
def test_help_and_check_import_only_what_they_need(tmp_path, command):
    probe = ("import sys, runpy; sys.argv = ['kubeforge', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('kubeforge', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('MODULES', sorted(sys.modules), file=sys.stderr)\n")
    (tmp_path / "c.kf").write_text('cluster c {\n  kubernetes "1.37.2"\n'
                                   '  node cp1 { address 10.0.0.1  role control-plane }\n}\n')
    args = ["--help"] if command == "--help" else ["check", str(tmp_path / "c.kf")]
    env = {**os.environ, "KUBEFORGE_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(2 if command == "check again" else 1):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, timeout=120, env=env)
    assert "MODULES" in proc.stderr and (args == ["--help"] or ": ok" in proc.stderr), proc.stderr
    modules = ast.literal_eval(proc.stderr.split("MODULES ", 1)[1].strip())
    heavy = sorted(m for m in modules for prefix in NOT_IMPORTED[command]
                   if m == prefix or m.startswith(prefix + ".")
                   or (prefix.endswith("_") and m.startswith(prefix)))
    assert heavy == [], (command, heavy)


def test_help_lists_every_lazy_command():
    listed = subprocess.run([sys.executable, "-m", "kubeforge", "--help"], capture_output=True,
                            text=True, timeout=120).stdout
    for name in LAZY:
        assert f"  {name} " in listed, name


def test_rich_consoles_come_from_kubeforge_console():
    """Its broken-pipe hook is set where Console is taken from, not at the CLI's import (which
    --help and check make without rich): a module taking Console from rich itself could
    print before anything set it."""
    root = Path(__file__).resolve().parent.parent
    for path in sorted(p for d in ("kubeforge", "compiler", "dsl", "targets", "bundle")
                       for p in (root / d).rglob("*.py")):
        if path.name == "console.py" and path.parent.name == "kubeforge":
            continue
        text = path.read_text()
        assert "rich.console" not in text and "from rich import" not in text, path
