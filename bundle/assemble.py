"""Write a bundle directory from cached parts, so that it is never half a bundle that looks whole.

Order: the old manifest goes first (from then on the directory is visibly incomplete), then
each file that differs is copied in under a temporary name and renamed, files the new
manifest no longer names are removed, and the new manifest is written last, atomically. A
directory that already holds this exact bundle, intact, is left untouched. Files kubeforge
wrote and nobody touched since (same size, mtime and inode) are not read again; everything
else is compared by sha256 (``bundle check`` always reads everything). kubeforge writes
only into an empty directory or one it wrote before: ``.kubeforge-bundle`` marks it and lists
every file kubeforge put there, so files of an older bundle are removed even after an
interrupted build.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubeforge.bundle.check import safe_path
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.manifest import MANIFEST, Manifest, load_manifest, sealed
from kubeforge.bundle.tools import Progress

OWNER_MARK = ".kubeforge-bundle"


@dataclass(frozen=True)
class Written:
    changed: tuple[str, ...]  # bundle paths (re)written
    removed: tuple[str, ...]  # bundle paths of an older bundle removed
    up_to_date: bool  # the directory already held this bundle


def _claim(out: Path) -> dict[str, list | None]:
    """Mark ``out`` as kubeforge's; returns what kubeforge wrote there before: path -> the
    [size, mtime_ns, inode, sha256] it had when written (None: not known to be complete)."""
    out.mkdir(parents=True, exist_ok=True)
    mark = out / OWNER_MARK
    if not mark.exists():
        if any(out.iterdir()):
            raise BundleError(f"bundle: {out} is not empty and holds no kubeforge bundle; "
                              "refusing to write into it (choose an empty or new directory)")
        _mark(out, {})
        return {}
    try:
        files = json.loads(mark.read_text())["files"]
        return {str(path): stamp for path, stamp in dict(files).items()}
    except (ValueError, KeyError, TypeError):
        return {}


def _mark(out: Path, files: dict[str, list | None]) -> None:
    text = json.dumps({"written_by": "kubeforge bundle build", "files": files}, indent=1,
                      sort_keys=True) + "\n"
    tmp = out / f".{OWNER_MARK}.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / OWNER_MARK)


def _stamp(path: Path, sha256: str) -> list:
    info = os.lstat(path)
    return [info.st_size, info.st_mtime_ns, info.st_ino, sha256]


def _intact(out: Path, path: str, sha256: str, size: int, stamps: dict) -> bool:
    """Whether ``out/path`` holds content with ``sha256``: by its stat when kubeforge wrote
    it and it has not been touched since (like git's index), else by reading it."""
    dest = out / path
    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        return False
    if stamps.get(path) == [info.st_size, info.st_mtime_ns, info.st_ino, sha256]:
        return True
    return sha256_file(dest) == sha256


def _previous(out: Path) -> Manifest | None:
    """The readable manifest of the bundle in ``out`` now, if any."""
    try:
        return load_manifest(out)
    except BundleError:
        return None


def _copy_in(source: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle, open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_manifest(out: Path, manifest: Manifest) -> None:
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{MANIFEST}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def assemble(out: Path, sources: dict[str, Path], manifest: Manifest,
             progress: Progress) -> Written:
    """Make ``out`` hold exactly ``manifest``'s bundle, copying each file from ``sources``
    (bundle path -> cached file)."""
    stamps = _claim(out)
    old = _previous(out)
    keep = {entry.path for entry in manifest.files}
    if (old is not None and old.build_key == manifest.build_key == sealed(old).build_key
            and all(_intact(out, f.path, f.sha256, f.size, stamps) for f in manifest.files)):
        current = {f.path: _stamp(out / f.path, f.sha256) for f in manifest.files}
        if current != stamps:  # verified by reading: no need to read them next time
            _mark(out, current)
        return Written((), (), True)
    (out / MANIFEST).unlink(missing_ok=True)  # from here on, visibly incomplete
    owned = set(stamps) | ({f.path for f in old.files} if old else set())
    # Listed before the first copy, so an interrupted run still knows what it wrote.
    _mark(out, {path: stamps.get(path) for path in owned | keep})
    changed, written = [], {}
    for entry in manifest.files:
        dest = out / entry.path
        if _intact(out, entry.path, entry.sha256, entry.size, stamps):
            if dest.stat().st_mode & 0o7777 != entry.mode:
                os.chmod(dest, entry.mode)
        else:
            progress(f"bundle: writing {entry.path}")
            _copy_in(sources[entry.path], dest, entry.mode)
            changed.append(entry.path)
        written[entry.path] = _stamp(dest, entry.sha256)
    removed = []
    for stale in sorted(owned - keep):
        if not safe_path(stale):
            continue
        path = out / stale
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(stale)
    for leftover in out.rglob(".*.tmp"):  # of an interrupted earlier run
        leftover.unlink(missing_ok=True)
    _mark(out, written)
    _write_manifest(out, manifest)
    return Written(tuple(changed), tuple(removed), False)
