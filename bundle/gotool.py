"""The Go toolchain as a build tool: fetch modules from the module proxy, build binaries.

Every ``go build`` runs with the same environment and flag conventions (``-trimpath``, a
fixed ``-ldflags`` string, ``GOFLAGS=-mod=mod``), so the machine's shared Go build cache
serves repeated and parallel builds of the same sources, and the binaries are reproducible.
Modules come through ``GOPROXY`` (the default proxy works) and are verified against the
checksum database like any Go build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.tools import Progress, output, require, run_logged

HINT = "Go 1.26 or newer builds the bundle (https://go.dev/dl/)"


def go_version() -> str:
    """``go1.26.8``: part of every build key (another compiler makes other binaries)."""
    require("go", HINT)
    text = output(["go", "env", "GOVERSION"], what="`go env GOVERSION`", env=_env(False))
    return text.strip()


def _env(cgo: bool) -> dict[str, str]:
    # GOFLAGS replaces the caller's (which may say -mod=vendor); -buildvcs=false because a
    # wrapper module has no history, even when the cache lives inside a git work tree.
    return {"CGO_ENABLED": "1" if cgo else "0", "GOFLAGS": "-mod=mod -buildvcs=false",
            "GOTOOLCHAIN": "local", "GOWORK": "off"}


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    version: str
    time: datetime  # when the version was published (the proxy's .info)
    dir: Path  # the extracted module in the module cache (read-only)
    gomod: str  # the version's go.mod text


def download(path: str, version: str, workdir: Path) -> ModuleInfo:
    """Fetch ``path@version`` into the module cache (a no-op when it is there already)."""
    text = output(["go", "mod", "download", "-json", f"{path}@{version}"], cwd=workdir,
                  what=f"`go mod download {path}@{version}`",
                  env={**_env(False), "GOFLAGS": ""}, timeout=1800)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise BundleError(f"bundle: `go mod download {path}@{version}` printed no JSON") from None
    if data.get("Error"):
        raise BundleError(f"bundle: cannot fetch {path}@{version} from the module proxy: "
                          f"{data['Error']}")
    info = json.loads(Path(data["Info"]).read_text())
    return ModuleInfo(path=path, version=data["Version"],
                      time=datetime.fromisoformat(info["Time"].replace("Z", "+00:00")),
                      dir=Path(data["Dir"]), gomod=Path(data["GoMod"]).read_text())


def build(workdir: Path, package: str, out: Path, *, ldflags: str, tags: tuple[str, ...],
          flags: tuple[str, ...], cgo: bool, log: Path, progress: Progress,
          what: str) -> None:
    """``go build`` one main package of the module in ``workdir`` to ``out``."""
    cmd = ["go", "build", "-trimpath", *flags]
    if tags:
        cmd += ["-tags", " ".join(tags)]
    cmd += ["-ldflags", ldflags, "-o", str(out), package]
    run_logged(cmd, cwd=workdir, env=_env(cgo), log=log, progress=progress, what=what)
    if not out.is_file():
        raise BundleError(f"bundle: {what}: go build wrote no {out.name} (log {log})")
