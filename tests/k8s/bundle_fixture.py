"""The offline bundle the real-cluster tests install from, built once per machine.

`kubeforge bundle build` caches every component by version and inputs (Go's own build cache
underneath), so the first run on a fresh machine builds Kubernetes from the Go module proxy
and every later run finds the bundle complete and returns at once. KUBEFORGE_TEST_BUNDLE
points at another directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KUBERNETES = "1.37.2"


def bundle_dir(version: str = KUBERNETES) -> Path:
    default = Path.home() / ".cache" / "kubeforge" / "test-bundles" / f"v{version}"
    return Path(os.environ.get("KUBEFORGE_TEST_BUNDLE") or default)


def build_bundle(version: str = KUBERNETES) -> Path:
    out = bundle_dir(version)
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "bundle", "build",
                           "--kubernetes", version, "-o", str(out)],
                          capture_output=True, text=True, timeout=5400)
    if proc.returncode != 0:
        pytest.fail(f"bundle build failed ({proc.returncode}):\n{proc.stderr[-6000:]}",
                    pytrace=False)
    return out


@pytest.fixture(scope="session")
def bundle() -> Path:
    return build_bundle()
