"""The offline bundle the real-cluster tests install from, built once per machine.

`kubeforge bundle build` caches every component by version and inputs (Go's own build cache
underneath), so the first run on a fresh machine builds Kubernetes from the Go module proxy
and every later run finds the bundle complete and returns at once. KUBEFORGE_TEST_BUNDLE
names a bundle built elsewhere: it is checked (`kubeforge bundle check`), not rebuilt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubeforge.compiler.versions import DEFAULT_VERSION, NEWEST, RELEASES

#: The newest supported release: what a user starting a cluster today installs.
KUBERNETES = DEFAULT_VERSION
#: The newest release of the minor before: the HA cluster starts there and is upgraded.
PREVIOUS = RELEASES[NEWEST.minor - 1].newest


def _given(version: str) -> str | None:
    """KUBEFORGE_TEST_BUNDLE names the newest release's bundle, KUBEFORGE_TEST_BUNDLE_PREVIOUS
    the previous one's."""
    return os.environ.get("KUBEFORGE_TEST_BUNDLE" if version == KUBERNETES
                          else "KUBEFORGE_TEST_BUNDLE_PREVIOUS")


def bundle_dir(version: str = KUBERNETES) -> Path:
    default = Path.home() / ".cache" / "kubeforge" / "test-bundles" / f"v{version}"
    return Path(_given(version) or default)


def build_bundle(version: str = KUBERNETES) -> Path:
    out = bundle_dir(version)
    given = _given(version)
    command = ["check", str(out)] if given else \
        ["build", "--kubernetes", version, "-o", str(out)]
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "bundle", *command],
                          capture_output=True, text=True, timeout=5400)
    if proc.returncode != 0:
        pytest.fail(f"bundle {command[0]} failed ({proc.returncode}):\n{proc.stderr[-6000:]}",
                    pytrace=False)
    return out


@pytest.fixture(scope="session")
def bundle() -> Path:
    return build_bundle()


@pytest.fixture(scope="session")
def previous_bundle() -> Path:
    return build_bundle(PREVIOUS)
