"""Write a bundle directory from cached parts, so that it is never half a bundle that looks whole.

Order: the old manifest goes first (from then on the directory is visibly incomplete), then
each file that differs is copied in under a temporary name and renamed, files the new
manifest no longer names are removed, and the new manifest is written last, atomically. A
directory that already holds this exact bundle, intact, is left untouched. kubeforge writes
only into an empty directory or one it wrote before: ``.kubeforge-bundle`` marks it and lists
every file kubeforge put there, so files of an older bundle are removed even after an
interrupted build.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubeforge.bundle.check import bundle_problems, safe_path
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.manifest import MANIFEST, Manifest
from kubeforge.bundle.tools import Progress

OWNER_MARK = ".kubeforge-bundle"


@dataclass(frozen=True)
class Written:
    changed: tuple[str, ...]  # bundle paths (re)written
    removed: tuple[str, ...]  # bundle paths of an older bundle removed
    up_to_date: bool  # the directory already held this bundle


def _claim(out: Path) -> set[str]:
    """Mark ``out`` as kubeforge's; returns the files kubeforge wrote there before."""
    out.mkdir(parents=True, exist_ok=True)
    mark = out / OWNER_MARK
    if not mark.exists():
        if any(out.iterdir()):
            raise BundleError(f"bundle: {out} is not empty and holds no kubeforge bundle; "
                              "refusing to write into it (choose an empty or new directory)")
        _mark(out, set())
        return set()
    try:
        return set(json.loads(mark.read_text())["files"])
    except (ValueError, KeyError, TypeError):
        return set()


def _mark(out: Path, files: set[str]) -> None:
    text = json.dumps({"written_by": "kubeforge bundle build", "files": sorted(files)},
                      indent=2) + "\n"
    tmp = out / f".{OWNER_MARK}.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / OWNER_MARK)


def _previous(out: Path) -> tuple[Manifest | None, list[str]]:
    """The bundle in ``out`` now (None if there is no readable one) and its problems."""
    if not (out / MANIFEST).exists():
        return None, ["no manifest"]
    try:
        return bundle_problems(out)
    except BundleError as err:
        return None, [str(err)]


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
    owned = _claim(out)
    old, problems = _previous(out)
    if old is not None and not problems and old.build_key == manifest.build_key:
        return Written((), (), True)
    (out / MANIFEST).unlink(missing_ok=True)  # from here on, visibly incomplete
    keep = {entry.path for entry in manifest.files}
    owned |= {f.path for f in old.files} if old else set()
    _mark(out, owned | keep)  # before the first copy: an interrupt leaves them listed
    changed = []
    for entry in manifest.files:
        dest = out / entry.path
        if (dest.is_file() and not dest.is_symlink() and dest.stat().st_size == entry.size
                and sha256_file(dest) == entry.sha256):
            if dest.stat().st_mode & 0o7777 != entry.mode:
                os.chmod(dest, entry.mode)
            continue
        progress(f"bundle: writing {entry.path}")
        _copy_in(sources[entry.path], dest, entry.mode)
        changed.append(entry.path)
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
    _mark(out, keep)
    _write_manifest(out, manifest)
    return Written(tuple(changed), tuple(removed), False)
