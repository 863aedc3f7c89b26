"""Big files' syntax trees kept in kubeforge's cache directory, found again by their text.

Parsing is most of checking a big file (a 2 MB fleet: 1.6 s), and the same text is parsed
again by every `check` and `compile` until it is edited; reading back the stored tree takes a
third of that. A tree is stored under a hash of everything parsing reads: the text, the file
name (every span holds it), the parser's own code and grammar, Lark's and Python's versions.
Only a file that parsed without a diagnostic is stored, only a big one (below MIN_CHARS
parsing costs less than a file read), and only when its text is parsed a second time. Like the rest of the cache directory, a stored tree that
is missing, unreadable or not this user's own is simply made again.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import sys
from pathlib import Path

from kubeforge import usercache
from kubeforge.dsl.ast import Module

MIN_CHARS = 100_000
FORMAT = "1"


@functools.lru_cache(maxsize=1)
def _code() -> bytes:
    import lark

    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0{lark.__version__}\0".encode())
    here = Path(__file__).parent
    for source in sorted([*here.glob("*.py"), *here.glob("*.lark")]):
        digest.update(f"{source.name}\0".encode() + source.read_bytes())
    return digest.digest()


def _path(text: str, filename: str, kind: str = "parse", suffix: str = ".pickle") -> Path:
    digest = hashlib.sha256(_code())
    digest.update(filename.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return usercache.cache_dir() / f"{kind}-{digest.hexdigest()[:40]}{suffix}"


def load(text: str, filename: str) -> Module | None:
    if len(text) < MIN_CHARS:
        return None
    try:
        with usercache.open_own(_path(text, filename)) as f:
            # From the file: 18 MB of bytes for a fleet's tree held beside it was most of
            # what reading it back cost in memory.
            module = pickle.load(f) if f is not None else None
    except Exception:  # noqa: BLE001 - truncated, or from other code: parse again
        return None
    return module if isinstance(module, Module) and module.path == filename else None


def store(text: str, filename: str, module: Module) -> None:
    """Keep the tree of a text parsed for the second time: storing one costs about two
    thirds of a parse, which a text checked once and then edited would never get back."""
    if len(text) < MIN_CHARS:
        return
    seen = _path(text, filename, "parsed", ".seen")
    if usercache.read_own(seen) is None:
        usercache.write_own(seen, b"")
        return
    usercache.write_own(_path(text, filename), pickle.dumps(module, protocol=5))
