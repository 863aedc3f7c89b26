"""Build artifacts and the context every emitter receives.

An emitter is a function ``emit(ctx: BuildContext) -> list[Artifact]``. Paths are relative to
``<out>/<cluster>/``; a file that lands on a host lives under ``nodes/<node>/`` followed by its
absolute path on that host (``nodes/cp1/etc/kubernetes/pki/ca.crt``). Emitters are pure: no
SSH, no wall clock except ``ctx.now``, and no reading of the environment except where the
language says so (secret sources).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kubeforge.compiler.ir import Cluster, Program
from kubeforge.dsl.diagnostics import Diagnostic


@dataclass(frozen=True)
class Artifact:
    path: str  # POSIX, relative to the cluster's build directory
    content: bytes
    mode: int = 0o644
    secret: bool = False  # never shown in plans or logs; written 0600
    owner: str = "root:root"

    def __post_init__(self) -> None:
        p = PurePosixPath(self.path)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"artifact path must be relative and inside the build: {self.path}")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def node(self) -> str | None:
        """The node this file lands on, or None for files that stay local."""
        parts = PurePosixPath(self.path).parts
        return parts[1] if len(parts) > 2 and parts[0] == "nodes" else None

    @property
    def host_path(self) -> str | None:
        """Where the file lands on its node."""
        parts = PurePosixPath(self.path).parts
        if len(parts) > 2 and parts[0] == "nodes":
            return "/" + "/".join(parts[2:])
        return None


def node_file(node: str, host_path: str, content: bytes | str, mode: int = 0o644,
              secret: bool = False, owner: str = "root:root") -> Artifact:
    """An artifact that will be placed on ``node`` at ``host_path``."""
    if isinstance(content, str):
        content = content.encode()
    return Artifact(f"nodes/{node}{host_path}", content, mode, secret, owner)


@dataclass
class BuildContext:
    program: Program
    state_dir: Path
    now: dt.datetime
    base_dir: Path = Path(".")
    #: Values one emitter computes for later ones (e.g. "pki" -> the PKI bundle).
    shared: dict[str, Any] = field(default_factory=dict)
    #: Artifacts emitted so far, in emitter order (the plan emitter reads them).
    artifacts: list[Artifact] = field(default_factory=list)
    #: Warnings only an emitter can see (they depend on the state directory).
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def cluster(self) -> Cluster:
        assert self.program.cluster is not None
        return self.program.cluster


def write_atomic(path: Path, content: bytes, mode: int) -> bool:
    """Write ``content`` to ``path`` via a temp file and rename; return False if unchanged."""
    try:
        if path.read_bytes() == content and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True


def write_artifacts(root: Path, artifacts: list[Artifact]) -> dict[str, Any]:
    """Write every artifact under ``root``, remove stale files kubeforge wrote before, and
    record paths, modes and hashes in ``files.json`` (secrets by hash only)."""
    seen: dict[str, Artifact] = {}
    for art in artifacts:
        if art.path in seen and seen[art.path].content != art.content:
            raise ValueError(f"two emitters disagree about {art.path}")
        seen[art.path] = art
    root.mkdir(parents=True, exist_ok=True)
    index_path = root / "files.json"
    previous: set[str] = set()
    if index_path.exists():
        try:
            previous = set(json.loads(index_path.read_text())["files"])
        except (ValueError, KeyError):
            previous = set()
    for art in seen.values():
        mode = 0o600 if art.secret else art.mode
        write_atomic(root / art.path, art.content, mode)
    for stale in sorted(previous - set(seen)):
        target = root / stale
        if target.is_file():
            target.unlink()
    index = {
        "files": {
            p: {"mode": f"{(0o600 if a.secret else a.mode):04o}", "owner": a.owner,
                "sha256": a.sha256, "secret": a.secret}
            for p, a in sorted(seen.items())
        }
    }
    write_atomic(index_path, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode(), 0o644)
    return index
