"""`kubeforge --help` lists every subcommand without importing the modules behind them, and
the texts it shows are the commands' own."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from kubeforge.cli import LAZY


def test_every_lazy_text_is_its_commands_short_help():
    for name, (module, attribute, text) in LAZY.items():
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command) and command.name == name
        assert command.get_short_help_str(1000) == text, name


def test_help_and_check_import_no_transport_or_sandbox_code(tmp_path):
    probe = ("import sys, runpy; sys.argv = ['kubeforge', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('kubeforge', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'paramiko' or "
             "m.startswith(('kubeforge.targets', 'kubeforge.cli_')))\n"
             "print('HEAVY', heavy, file=sys.stderr)\n")
    (tmp_path / "c.kf").write_text('cluster c {\n  kubernetes "1.37.2"\n'
                                   '  node cp1 { address 10.0.0.1  role control-plane }\n}\n')
    for args in (["--help"], ["check", str(tmp_path / "c.kf")]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, timeout=120)
        assert "HEAVY []" in proc.stderr, (args, proc.stderr[-2000:])
    listed = subprocess.run([sys.executable, "-m", "kubeforge", "--help"], capture_output=True,
                            text=True, timeout=120).stdout
    for name in LAZY:
        assert f"  {name} " in listed, name
