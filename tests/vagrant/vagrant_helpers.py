"""Helpers for the Vagrant tests: the rendered Vagrantfile of a source file, and `vagrant`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kubeforge.compiler.emit import vagrant as emitter
from kubeforge.compiler.lower import load_program

needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None,
                                   reason="vagrant is not installed (.ci/run installs it)")


def vagrantfile(source: Path) -> str:
    program, _ = load_program(source)
    return emitter.render(program.cluster)


def run_vagrant(root: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "VAGRANT_NO_COLOR": "1", **(env or {})})
