"""Compile an example for another Kubernetes version (and key algorithm), from its source.

The example's text is copied with its `kubernetes "..."` (and `algorithm ...`) replaced, next
to a copy of the files and imported workloads it reads, and compiled by the real front end
into ``out``. A bundle is built for one version only, so `install bundle path "..."` becomes
`install preinstalled` (the kubeadm configs then differ only in imagePullPolicy, Never with a
bundle).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from kubeforge.compiler.build import BuildResult, compile_file
from tests.conftest import EXAMPLES, FIXED_NOW

EXAMPLE_FILES = tuple(sorted(EXAMPLES.glob("*.kf")))


def example_source(example: Path, version: str, algorithm: str | None = None) -> str:
    text, count = re.subn(r'kubernetes\s+"[^"]+"', f'kubernetes "{version}"',
                          example.read_text())
    assert count == 1, f"{example} has no single `kubernetes` statement"
    text = re.sub(r'install\s+bundle\s+path\s+"[^"]*"', "install preinstalled", text)
    if algorithm is not None:
        text, count = re.subn(r"\balgorithm\s+[a-z0-9-]+", f"algorithm {algorithm}", text)
        assert count == 1, f"{example} has no single pki `algorithm`"
    return text


def compile_example(example: Path, out: Path, version: str,
                    algorithm: str | None = None) -> BuildResult:
    """Compile ``example`` for ``version`` into ``out/build`` (state in ``out/state``)."""
    out.mkdir(parents=True, exist_ok=True)
    source = out / example.name
    source.write_text(example_source(example, version, algorithm))
    # What examples read beside them: files/ (configs, keys) and apps/ (imported workloads,
    # version-free, so copied as they are).
    for folder in ("files", "apps"):
        if (example.parent / folder).is_dir() and not (out / folder).exists():
            shutil.copytree(example.parent / folder, out / folder)
    return compile_file(source, out / "build", state_dir=out / "state", now=FIXED_NOW)
