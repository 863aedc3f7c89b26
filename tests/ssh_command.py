"""The ssh command line Ansible really runs for a host of an inventory.

``ansible HOST -m ping -vvv`` logs each ssh command it executes ("SSH: EXEC ssh ..."); the
host need not answer (a refused connection still shows the command). OpenSSH keeps the first
value given for an option, so :func:`first_option` is what ssh will use.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ANSIBLE = Path(sys.executable).parent / "ansible"


def ssh_command(inventory: Path, host: str, env: dict[str, str] | None = None,
                config: Path | None = None) -> list[str]:
    environ = {**os.environ, "ANSIBLE_TIMEOUT": "2", "ANSIBLE_NOCOLOR": "1", **(env or {})}
    environ.pop("ANSIBLE_CONFIG", None)
    if config is not None:
        environ["ANSIBLE_CONFIG"] = str(config)
    proc = subprocess.run([str(ANSIBLE), "-i", str(inventory), host, "-m", "ping", "-vvv"],
                          capture_output=True, text=True, timeout=120, env=environ,
                          cwd=inventory.parent)
    for line in (proc.stdout + proc.stderr).splitlines():
        if "SSH: EXEC " in line:
            return shlex.split(line.split("SSH: EXEC ", 1)[1])
    raise AssertionError(f"ansible ran no ssh command:\n{proc.stdout}\n{proc.stderr}")


def first_option(argv: list[str], name: str) -> str | None:
    """The value ssh takes for ``-o NAME=...`` (the first one given), unquoted."""
    for flag, value in zip(argv, argv[1:]):
        if flag == "-o" and value.split("=", 1)[0].lower() == name.lower():
            return value.split("=", 1)[1].strip('"')
    return None
