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
import hmac
import json
import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kubeforge.compiler import json_indent
from kubeforge.compiler.ir import Cluster, Program
from kubeforge.dsl.diagnostics import Diagnostic
from kubeforge.errors import KubeforgeError
from kubeforge.fileio import path_problem


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

    # String splits, not PurePosixPath: asked about every file per node of a big cluster.
    # The paths are the emitters' own, already normal (no "//" or "." parts).
    @property
    def node(self) -> str | None:
        """The node this file lands on, or None for files that stay local."""
        parts = self.path.split("/", 2)
        return parts[1] if len(parts) > 2 and parts[0] == "nodes" and parts[2] else None

    @property
    def host_path(self) -> str | None:
        """Where the file lands on its node."""
        parts = self.path.split("/", 2)
        if len(parts) > 2 and parts[0] == "nodes" and parts[2]:
            return "/" + parts[2]
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


class OutputError(KubeforgeError):
    """The build cannot be written where it was asked for (the previous one is intact)."""


#: How world-readable files name a secret's content: ``hmac-sha256:<hex>``.
KEYED = "hmac-sha256:"
#: For digests made without a state directory (tests build contexts by hand): random per
#: process, so such a digest never confirms a guess either.
_EPHEMERAL_KEY = secrets.token_bytes(32)


def content_digest(content: bytes, secret: bool, key: bytes | None) -> str:
    """What plan.json and files.json (both 0644) say about a file's content: its SHA-256,
    or for a secret, HMAC-SHA256 under the state directory's digest key. A plain hash of a
    secret would let anyone who can read the build confirm a guessed password by hashing
    guesses; the keyed one still changes whenever the content does."""
    if not secret:
        return hashlib.sha256(content).hexdigest()
    return KEYED + hmac.new(key or _EPHEMERAL_KEY, content, hashlib.sha256).hexdigest()


def digest_matches(content: bytes, digest: str, key: bytes | None) -> bool:
    """Whether ``content`` is what :func:`content_digest` described as ``digest``."""
    if digest.startswith(KEYED):
        if key is None:
            return False
        mac = hmac.new(key, content, hashlib.sha256).hexdigest()
        return hmac.compare_digest(KEYED + mac, digest)
    return hashlib.sha256(content).hexdigest() == digest


def write_artifacts(root: Path, artifacts: list[Artifact],
                    digest_key: bytes | None = None) -> dict[str, Any]:
    """Make ``root`` hold exactly ``artifacts`` plus ``files.json`` (paths, modes, digests).

    The build is written to a new directory next to ``root`` that then replaces it whole:
    after any failure (a full disk, something in the way) the previous build is intact, and
    nothing an earlier build wrote survives unless this one writes it too (the directory of
    a node that was renamed). Files kubeforge did not write, such as Vagrant's ``.vagrant/``
    or ``vagrant-inventory.yaml``, move into the new build. A build that holds exactly these
    files already is left as it is."""
    seen: dict[str, Artifact] = {}
    for art in artifacts:
        if art.path in seen and seen[art.path].content != art.content:
            raise ValueError(f"two emitters disagree about {art.path}")
        seen[art.path] = art
    index = {
        "files": {
            p: {"mode": f"{(0o600 if a.secret else a.mode):04o}", "owner": a.owner,
                "sha256": content_digest(a.content, a.secret, digest_key), "secret": a.secret}
            for p, a in sorted(seen.items())
        }
    }
    files = {p: (a.content, 0o600 if a.secret else a.mode) for p, a in seen.items()}
    files[INDEX] = ((json_indent.dumps(index) + "\n").encode(), 0o644)
    root = Path(os.path.realpath(root))  # a symlinked build directory is replaced where it is
    if _holds_already(root, files):
        _remove_stale(root)
        return index
    try:
        previous = _previous_build(root)
        new = _new_directory(root)
    except OSError as err:
        problem = path_problem(root.parent, want="dir")  # "is a regular file, not ..."
        why = f"{root.parent} {problem}" if problem and problem != "does not exist" \
            else _reason(err)
        raise OutputError(f"cannot write the build to {root}: {why}") from None
    try:
        made: set[Path] = {new}
        for rel, (content, mode) in sorted(files.items()):
            _place(root, new, rel, content, mode, previous is not None, made)
        if previous is not None:
            _carry_foreign(root, new, previous)
        _swap(root, new)
    except (OSError, OutputError) as err:
        shutil.rmtree(new, ignore_errors=True)
        why = str(err) if isinstance(err, OutputError) else _reason(err)
        raise OutputError(f"cannot write the build to {root}: {why}; the previous build "
                          "is unchanged") from None
    return index


INDEX = "files.json"


def _reason(err: OSError) -> str:
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    return f"{err.strerror or err}{where}"


def _previous_build(root: Path) -> set[str] | None:
    """The files the build at ``root`` was made of; None when there is none. A directory
    that is not empty and has no index is not taken over: it is not known to be ours."""
    if not os.path.lexists(root):
        return None
    if not root.is_dir():
        raise OutputError(f"{root} exists and is not a directory; move it out of the way")
    try:
        data = json.loads((root / INDEX).read_text())
        return set(data["files"])
    except (OSError, ValueError, KeyError, TypeError):
        if any(root.iterdir()):
            raise OutputError(f"{root} is not empty and holds no readable {INDEX}, so it is "
                              "not a kubeforge build; move it away or choose another -o") from None
        return set()


def _holds_already(root: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Whether the build at ``root`` is exactly ``files`` already: the same index (so the
    same paths, and nothing else of ours), every file there with these bytes and mode. A
    re-compile of an unchanged file then writes nothing: making a new build of links and
    removing the old one is most of the time of writing a big build (12,000 files)."""
    try:
        if (root / INDEX).read_bytes() != files[INDEX][0]:
            return False
        for rel, (content, mode) in files.items():
            st = os.lstat(root / rel)
            if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o777 != mode \
                    or st.st_size != len(content) or (root / rel).read_bytes() != content:
                return False
    except OSError:
        return False
    return True


def _remove_stale(root: Path) -> None:
    for stale in [*root.parent.glob(f".{root.name}.new-*"), *root.parent.glob(f".{root.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a compile that was killed


def _new_directory(root: Path) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    while True:
        new = root.parent / f".{root.name}.new-{secrets.token_hex(4)}"
        try:
            new.mkdir()  # the umask's mode, like any directory the build holds
            return new
        except FileExistsError:
            continue


def _place(root: Path, new: Path, rel: str, content: bytes, mode: int, reuse: bool,
           made: set[Path]) -> None:
    """Write one file into the new build; an unchanged file of the old build is linked
    instead, which keeps its timestamp and costs no space (files are never changed in
    place, so sharing them is safe). ``made``: the directories of the new build so far (a
    build of 1,000 nodes has 12,000 files in 3,000 directories: one mkdir each, not one
    per file)."""
    target = new / rel
    if target.parent not in made:
        target.parent.mkdir(parents=True, exist_ok=True)
        made.add(target.parent)
    old = root / rel
    if reuse and rel != INDEX:
        try:
            st = os.lstat(old)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 == mode \
                    and st.st_size == len(content) and old.read_bytes() == content:
                os.link(old, target)
                return
        except OSError:
            pass  # not there, or cannot be linked: write it
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)
        fh.write(content)


def _carry_foreign(root: Path, new: Path, previous: set[str]) -> None:
    """Link what the old build holds but kubeforge never wrote into the new one."""
    ours = previous | {INDEX}
    our_dirs = {d for rel in ours for d in _parents(rel)[:-1]}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root).as_posix()
        for name in list(dirnames):
            rel = name if here == "." else f"{here}/{name}"
            if rel not in our_dirs or os.path.islink(os.path.join(dirpath, name)):
                dirnames.remove(name)  # not ours: carried whole, not walked
                _carry(Path(dirpath, name), new / rel, rel)
        for name in filenames:
            rel = name if here == "." else f"{here}/{name}"
            if rel not in ours:
                _carry(Path(dirpath, name), new / rel, rel)


def _parents(rel: str) -> list[str]:
    """``a/b/c`` -> ``a``, ``a/b``, ``a/b/c``."""
    parts = PurePosixPath(rel).parts
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def _carry(source: Path, target: Path, rel: str) -> None:
    if os.path.lexists(target):
        raise OutputError(f"{source} (not written by kubeforge) is in the way of the new "
                          f"build's {rel}; move it away")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _swap(root: Path, new: Path) -> None:
    if not os.path.lexists(root):
        os.rename(new, root)
        return
    old = root.parent / f".{root.name}.old-{secrets.token_hex(4)}"
    os.rename(root, old)
    try:
        os.rename(new, root)
    except OSError:
        os.rename(old, root)
        raise
    shutil.rmtree(old, ignore_errors=True)
