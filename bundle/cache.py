"""The bundle build cache: every built part stored under a key made of all its inputs.

``~/.cache/kubeforge/bundles`` by default (``bundles`` in ``KUBEFORGE_CACHE_DIR`` when it is
set; ``KUBEFORGE_BUNDLE_CACHE`` or ``--cache-dir`` override it), outside any repository. An
entry is a directory holding the part's files and ``entry.json`` (what the builder recorded:
hashes, versions); it is built under a temporary name and renamed into place, so an
interrupted build leaves no entry that looks complete. One ``bundle build`` at a time holds
the cache (a lock file), so two never race for a key.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from kubeforge import usercache

#: Bump when the way a part is built changes, so old entries are not reused.
BUILDER_REVISION = 1


def default_cache_dir() -> Path:
    configured = os.environ.get("KUBEFORGE_BUNDLE_CACHE")
    if configured:
        return Path(configured).expanduser()
    return usercache.cache_dir() / "bundles"


def input_key(*parts) -> str:
    """sha256 of the inputs (JSON-serialisable values), in a canonical form."""
    text = json.dumps([BUILDER_REVISION, *parts], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    ENTRY = "entry.json"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:32]

    def workdir(self, name: str) -> Path:
        """A persistent scratch directory (wrapper modules keep their go.sum here)."""
        path = self.root / "work" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def lookup(self, kind: str, key: str) -> tuple[Path, dict] | None:
        entry = self.path(kind, key)
        try:
            return entry, json.loads((entry / self.ENTRY).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def get_or_make(self, kind: str, key: str, make: Callable[[Path], dict]
                    ) -> tuple[Path, dict, bool]:
        """(entry directory, recorded data, True when it was built now). ``make`` writes the
        part's files into the directory it is given and returns what to record."""
        found = self.lookup(kind, key)
        if found:
            return (*found, False)
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        try:
            data = make(tmp)
            (tmp / self.ENTRY).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            if final.exists():  # an unreadable leftover of an older builder
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final, data, True
