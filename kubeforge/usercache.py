"""Files kubeforge keeps between runs to start faster (the stored parser, schema-check
results), under ``$KUBEFORGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/kubeforge``
(``~/.cache/kubeforge``). Everything here can be deleted at any time: a file that is missing,
unreadable or not this user's own is simply made again."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("KUBEFORGE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kubeforge"


def read_own(path: Path) -> bytes | None:
    """The file's bytes when this user wrote it and no one else can change it, else None."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return None
            return f.read()
    except OSError:
        return None


def write_own(path: Path, data: bytes, *, keep: int = 4) -> None:
    """Replace the file whole (0600); a cache that cannot be written is only slower. ``path``
    is named ``KIND-HASH.SUFFIX`` (40 hex digits): files of its kind (older grammars, other
    installs) are removed past the ``keep`` newest."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        kind = re.compile(re.escape(path.name[:-len(path.suffix) - 41]) + "-[0-9a-f]{40}"
                          + re.escape(path.suffix))
        kin = sorted((p for p in path.parent.iterdir() if kind.fullmatch(p.name)),
                     key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in kin[keep:]:
            old.unlink()
    except OSError:
        pass
