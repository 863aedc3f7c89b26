"""Shared test helpers: write a source file, load or compile it, compare with goldens."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import settings

from kubeforge.compiler.lower import load_program
from kubeforge.dsl.diagnostics import DiagnosticError

pytest_plugins = ["tests.sandbox_fixtures"]

# No per-example deadline: it is a timing assert, and the unit tests run beside the
# end-to-end tests (.ci/run), where a first example that imports a module can take 300 ms.
settings.register_profile("kubeforge", deadline=None)
settings.load_profile("kubeforge")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FIXED_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
UPDATE_GOLDENS = os.environ.get("KUBEFORGE_UPDATE_GOLDENS") == "1"
#: The cgroup version of this machine, which sandbox hosts (containers) share: end-to-end
#: clusters declare it (`cgroups v1` keeps 1.35+ kubelets and kubeforge's preflight working).
HOST_CGROUPS = "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1"

CLUSTER = """
cluster lab {
  kubernetes "1.37.2"
  node cp1 { address 192.168.56.11  role control-plane worker }
}
"""


def assert_golden(path: Path, actual: str) -> None:
    """Compare with a golden file; KUBEFORGE_UPDATE_GOLDENS=1 rewrites it instead."""
    if UPDATE_GOLDENS or not path.exists():
        if not UPDATE_GOLDENS:
            pytest.fail(f"golden {path} is missing; run with KUBEFORGE_UPDATE_GOLDENS=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    expected = path.read_text()
    assert actual == expected, f"{path} differs; run with KUBEFORGE_UPDATE_GOLDENS=1 if intended"


@pytest.fixture
def write_kf(tmp_path):
    def write(text: str, name: str = "main.kf") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture
def load(write_kf):
    """Load source text (a cluster block is added unless the text has one)."""
    def run(text: str, *, with_cluster: bool = True):
        source = text if ("cluster " in text or not with_cluster) else CLUSTER + text
        program, _ = load_program(write_kf(source))
        return program
    return run


@pytest.fixture
def diagnose(write_kf):
    """The diagnostics of source text that must be invalid."""
    def run(text: str, *, with_cluster: bool = True):
        source = text if ("cluster " in text or not with_cluster) else CLUSTER + text
        with pytest.raises(DiagnosticError) as info:
            load_program(write_kf(source))
        return info.value
    return run
