"""Build (once) and cache the real ``kubeadm`` of a Kubernetes version, for tests.

``k8s.io/kubernetes`` cannot be ``go build``-ed as a dependency directly: its go.mod replaces
every staging module (``k8s.io/api``, ``k8s.io/client-go``, ...) with a path inside its own
repository. A tiny wrapper module requires ``k8s.io/kubernetes vX.Y.Z`` and repeats that
replace block with the published staging versions (``v0.Y.Z``), read from the version's own
go.mod on the Go module proxy. The binary is stamped like a release build, so
``kubeadm version -o short`` prints ``vX.Y.Z``.

Cache: ``$KUBEFORGE_CACHE`` or ``~/.cache/kubeforge``, then ``kubeadm/<vX.Y.Z>/kubeadm`` plus
the wrapper module and the build log beside it. A file lock makes parallel test workers build
each version once. Needs ``go`` on PATH and the module proxy (``GOPROXY``) on first use only.

Self-contained on purpose: ``kubeforge.bundle`` (``kubeforge bundle build``) generates the same
wrapper modules for the product; this helper can later call that package instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

PROXY = os.environ.get("KUBEFORGE_GOPROXY_URL", "https://proxy.golang.org")
#: Staging modules that are examples, not part of any binary; the wrapper leaves them out.
SKIPPED_STAGING = frozenset({"k8s.io/sample-cli-plugin", "k8s.io/sample-controller"})
BUILD_DATE = "2026-01-01T00:00:00Z"  # fixed, so a rebuild is byte-identical
_REPLACE_LINE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/\1\s*$")
_VERSION = re.compile(r"^v?1\.(\d+)\.(\d+)$")


class KubeadmBuildError(RuntimeError):
    pass


def cache_root() -> Path:
    root = os.environ.get("KUBEFORGE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "kubeforge"


def _split(version: str) -> tuple[str, int, int]:
    match = _VERSION.match(version)
    if not match:
        raise KubeadmBuildError(f"{version!r} is not a 1.Y.Z Kubernetes release")
    minor, patch = int(match[1]), int(match[2])
    return f"v1.{minor}.{patch}", minor, patch


def fetch_kubernetes_gomod(version: str) -> str:
    """The go.mod of ``k8s.io/kubernetes@version`` as the module proxy serves it."""
    tag, _, _ = _split(version)
    url = f"{PROXY}/k8s.io/kubernetes/@v/{tag}.mod"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read().decode()
    except OSError as err:
        raise KubeadmBuildError(f"cannot read {url}: {err}") from err


def wrapper_gomod(version: str, kubernetes_gomod: str) -> str:
    """The wrapper module's go.mod: require kubernetes, pin every staging module it replaces."""
    tag, minor, patch = _split(version)
    staging = sorted(m[1] for line in kubernetes_gomod.splitlines()
                     if (m := _REPLACE_LINE.match(line)) and m[1] not in SKIPPED_STAGING)
    if not staging:
        raise KubeadmBuildError(f"k8s.io/kubernetes {tag}: go.mod has no staging replace block")
    # Same language version and GODEBUG defaults as the upstream module builds with.
    header = [line for line in kubernetes_gomod.splitlines()
              if line.startswith(("go ", "godebug "))]
    lines = ["module kubeforge.local/kubeadm-build", "", *header, "",
             f"require k8s.io/kubernetes {tag}", "", "replace ("]
    lines += [f"\t{mod} => {mod} v0.{minor}.{patch}" for mod in staging]
    lines += [")", ""]
    return "\n".join(lines)


def ldflags(version: str) -> str:
    """Release-like version stamp (what hack/lib/version.sh sets), minus VCS data."""
    tag, minor, _ = _split(version)
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={tag}", f"-X {pkg}.gitMajor=1",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean",
                  f"-X {pkg}.buildDate={BUILD_DATE}"]
    return " ".join(flags)


def binary_version(path: Path) -> str | None:
    try:
        out = subprocess.run([str(path), "version", "-o", "short"], capture_output=True,
                             text=True, timeout=60, check=False)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def build_kubeadm(version: str, out_dir: Path) -> Path:
    """Build kubeadm ``version`` into ``out_dir`` (wrapper module and log kept there)."""
    tag, _, _ = _split(version)
    if shutil.which("go") is None:
        raise KubeadmBuildError("building kubeadm needs the Go toolchain (`go`) on PATH")
    module = out_dir / "module"
    module.mkdir(parents=True, exist_ok=True)
    (module / "go.mod").write_text(wrapper_gomod(tag, fetch_kubernetes_gomod(tag)))
    target = out_dir / "kubeadm"
    partial = out_dir / "kubeadm.partial"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    cmd = ["go", "build", "-trimpath", "-ldflags", ldflags(tag), "-o", str(partial),
           "k8s.io/kubernetes/cmd/kubeadm"]
    log = out_dir / "build.log"
    with log.open("w") as handle:
        handle.write(" ".join(cmd) + "\n")
        handle.flush()
        result = subprocess.run(cmd, cwd=module, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        raise KubeadmBuildError(f"building kubeadm {tag} failed (log {log}):\n{tail}")
    got = binary_version(partial)
    if got != tag:
        raise KubeadmBuildError(f"built kubeadm reports version {got!r}, expected {tag}")
    partial.replace(target)  # atomic: a half-built binary is never taken for a cached one
    return target


def kubeadm(version: str) -> Path:
    """The cached kubeadm binary of ``version`` ("1.35.4" or "v1.35.4"), built if missing."""
    tag, _, _ = _split(version)
    out_dir = cache_root() / "kubeadm" / tag
    target = out_dir / "kubeadm"
    if target.exists() and binary_version(target) == tag:
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building the same version
        if target.exists() and binary_version(target) == tag:
            return target
        return build_kubeadm(tag, out_dir)


def module_source(module: str, version: str) -> Path:
    """The unpacked Go module ``module@version`` (downloaded into the Go module cache once)."""
    if shutil.which("go") is None:
        raise KubeadmBuildError(f"reading {module} needs the Go toolchain (`go`) on PATH")
    out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"],
                         capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False,
                         env={**os.environ, "GOFLAGS": "-mod=mod"})
    try:
        info = json.loads(out.stdout)
    except ValueError:
        info = {}
    if out.returncode != 0 or "Dir" not in info:
        raise KubeadmBuildError(f"go mod download {module}@{version} failed: "
                                f"{info.get('Error') or out.stderr.strip()}")
    return Path(info["Dir"])


def kubernetes_source(version: str) -> Path:
    """``k8s.io/kubernetes`` of ``version``: the sources and test data of exactly that
    release."""
    return module_source("k8s.io/kubernetes", _split(version)[0])


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.kubeadm_build 1.35.4 ...``: build and print the paths."""
    import sys

    for version in (argv if argv is not None else sys.argv[1:]):
        print(kubeadm(version), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

