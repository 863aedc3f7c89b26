"""The real ``kubeadm`` of a Kubernetes version, and that release's sources, for tests.

kubeadm is built exactly as ``kubeforge bundle build`` builds it: the same wrapper-module
recipe (:func:`kubeforge.bundle.recipes.kubernetes`, only the ``kubeadm`` binary) through the
same Go module proxy, into the same cache (``KUBEFORGE_BUNDLE_CACHE`` or
``~/.cache/kubeforge/bundles``). So the newest release's kubeadm is one cache entry shared with
the bundle the real-cluster tests build, and every other minor's is built once per machine
(one ``go build`` of ``k8s.io/kubernetes/cmd/kubeadm``, CGO off, ``-trimpath``; a few minutes
on 2 cores, see the README). Needs ``go`` on PATH and the module proxy on first use only.

A build holds the cache's lock (as a bundle build does), so parallel test workers and a
concurrent ``bundle build`` never build the same entry twice; a cached binary is used without
waiting for the lock.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kubeforge.bundle import recipes
from kubeforge.bundle.cache import Cache, default_cache_dir
from kubeforge.bundle.components import build_go, go_binary_key
from kubeforge.bundle.gomod import parse_gomod
from kubeforge.bundle.gotool import ModuleInfo, download, go_version
from kubeforge.bundle.versions import parse_kubernetes
from kubeforge.compiler import versions

KUBERNETES = "k8s.io/kubernetes"


def binary_releases() -> list[versions.Release]:
    """The rows whose own kubeadm the tests build and run: the minors upstream still supports
    (a cold build is minutes of CPU each, README "Tests"); with ``KUBEFORGE_KUBEADM_ALL=1``
    every supported minor. The others are checked from their source
    (:mod:`tests.support.kubeadm_source`)."""
    every = os.environ.get("KUBEFORGE_KUBEADM_ALL") == "1"
    return [row for minor, row in sorted(versions.RELEASES.items())
            if every or versions.end_of_support(row.newest) is None]


def _cache() -> Cache:
    return Cache(default_cache_dir())


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def module(path: str, version: str) -> ModuleInfo:
    """``path@version`` from the module proxy (the Go module cache after the first time)."""
    return download(path, version, _cache().workdir("download"))


def module_source(path: str, version: str) -> Path:
    """The unpacked Go module ``path@version`` (read-only)."""
    return module(path, version).dir


def kubernetes_source(version: str) -> Path:
    """``k8s.io/kubernetes`` of ``version`` ("1.35.4" or "v1.35.4"): the sources and test
    data of exactly that release."""
    return module_source(KUBERNETES, parse_kubernetes(version).tag)


def kubeadm(version: str) -> Path:
    """The kubeadm binary of ``version`` ("1.35.4" or "v1.35.4"), built if not cached."""
    release = parse_kubernetes(version)
    source = module(KUBERNETES, release.tag)
    recipe = recipes.kubernetes(release, parse_gomod(source.gomod, KUBERNETES), source.time)
    toolchain = {"go": go_version()}
    cache = _cache()
    found = cache.lookup("bin", go_binary_key(recipe, "kubeadm", toolchain))
    if found:
        return found[0] / "kubeadm"
    with cache.locked():
        built = build_go(cache, recipe, toolchain, _progress, only=("kubeadm",))
    return built["kubeadm"].path


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.kubeadm_build 1.35.4 ...``: build (or find) and print."""
    for version in (argv if argv is not None else sys.argv[1:]):
        print(kubeadm(version), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
