"""Serialised text kept between compiles, found again by the value it was made from.

Most of a big cluster's compile is PyYAML writing documents that the previous compile wrote
already: every host's task files, every workload's manifest, every node's kubeadm config.
:func:`text` runs ``make(doc)`` for a pure, module-level serialiser ``make`` (a YAML dumper)
unless the memo of the running compile holds its result for the same function and the same
value of ``doc``.

The key is a hash of everything the text depends on:

* ``doc`` pickled: types, values, order and sharing (a dict met twice is a YAML alias) all
  show in the bytes, and unpickling gives back an equal value, so equal bytes mean what
  ``make`` reads is equal. A value that cannot be pickled is never memoised. Equal values
  that pickle differently (a string shared or not) only miss.
* ``make``'s module and name, and a hash of the source of every kubeforge module and of the
  interpreter's and PyYAML's versions (with or without libyaml): a change to any code gives
  every key anew, so no text outlives the code that wrote it.

The memo lives in the state directory (``cache/text``, 0600: kubeadm configs hold the
bootstrap token), is read when a compile starts and written when it ends, holding exactly
the texts that compile used; an unchanged re-compile reads it and writes nothing. A file
that is missing, corrupt or made by other code is an empty memo; deleting it costs one
slower compile.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import importlib.util
import pickle
import struct
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from kubeforge.errors import StateError

PATH = "cache/text"
_MAGIC = b"kubeforge text memo 1\n"
#: The packages whose modules the key covers (pyproject's package-dir, data files aside).
PACKAGES = ("kubeforge", "kubeforge.dsl", "kubeforge.compiler", "kubeforge.compiler.emit",
            "kubeforge.targets", "kubeforge.bundle")
_RECORD = struct.Struct("<16sI")  # key, length of the UTF-8 text that follows

_ACTIVE: contextvars.ContextVar["Memo | None"] = contextvars.ContextVar("text_memo",
                                                                       default=None)


@functools.lru_cache(maxsize=1)
def code_version() -> bytes:
    """A hash of every kubeforge source file and of the versions of what runs them."""
    import yaml

    digest = hashlib.sha256()
    digest.update(f"{sys.version}\0{yaml.__version__}\0{yaml.__with_libyaml__}\0".encode())
    if yaml.__with_libyaml__:
        from yaml import _yaml

        digest.update(_yaml.get_version_string().encode())
    roots = {Path(p) for name in PACKAGES
             for p in importlib.util.find_spec(name).submodule_search_locations}
    for root in sorted(roots):
        for source in sorted(root.glob("*.py")):
            digest.update(f"{source.relative_to(root.parent)}\0".encode())
            digest.update(source.read_bytes())
    return digest.digest()


class Memo:
    """The texts of the previous compile (``found``: key -> where its UTF-8 bytes are in
    ``blob``, the file as read, so each is decoded only when asked for) and the ones this
    compile used (key -> its UTF-8 bytes, or their place in ``blob``), which are what is
    written back."""

    def __init__(self, found: dict[bytes, tuple[int, int]], blob: bytes, salt: bytes) -> None:
        self.found = found
        self.blob = memoryview(blob)  # slices of it are views, not copies
        self.used: dict[bytes, bytes | memoryview] = {}
        self.salt = salt
        self.damaged = False

    def key(self, make: Callable[[Any], str], doc: Any) -> bytes | None:
        try:
            data = pickle.dumps(doc, protocol=5)
        except Exception:  # noqa: BLE001 - anything pickle refuses is simply not kept
            return None
        digest = hashlib.blake2b(self.salt, digest_size=16)
        digest.update(f"{make.__module__}:{make.__qualname__}\0".encode())
        digest.update(data)
        return digest.digest()

    def text(self, make: Callable[[Any], str], doc: Any) -> str:
        key = self.key(make, doc)
        if key is None:
            return make(doc)
        raw = self.used.get(key)
        if raw is None:
            where = self.found.get(key)
            if where is not None:
                raw = self.blob[where[0]:where[0] + where[1]]
                try:
                    done = str(raw, "utf-8")
                    self.used[key] = raw
                    return done
                except UnicodeDecodeError:  # a damaged text: made again, and written
                    self.damaged = True
            done = make(doc)
            self.used[key] = done.encode()
            return done
        return str(raw, "utf-8")

    @property
    def changed(self) -> bool:
        return self.damaged or self.used.keys() != self.found.keys()


def text(make: Callable[[Any], str], doc: Any) -> str:
    """``make(doc)``, or the text it made for an equal ``doc`` before. ``make`` must be a
    module-level function whose result depends on ``doc`` and its own code alone."""
    memo = _ACTIVE.get()
    if memo is None:
        return make(doc)
    if "<" in make.__qualname__:  # a lambda or closure: what it captured is not in the key
        raise TypeError(f"text_memo needs a module-level function, not {make.__qualname__}")
    return memo.text(make, doc)


@contextlib.contextmanager
def kept_in(state) -> Iterator[Memo]:
    """A memo for what runs inside, read from the state directory ``state``
    (:class:`~kubeforge.compiler.state.StateDir`) and written back when it ends without an
    error."""
    salt = code_version()
    memo = Memo(*_read(state, salt), salt)
    token = _ACTIVE.set(memo)
    try:
        yield memo
    finally:
        _ACTIVE.reset(token)
    if memo.changed:
        _write(state, memo)


def _read(state, salt: bytes) -> tuple[dict[bytes, tuple[int, int]], bytes]:
    """Where each text is in the file, and the file; nothing for a file that is missing,
    damaged or made by other code."""
    try:
        data = state.read(PATH)
    except StateError:
        return {}, b""
    head = _MAGIC + salt
    if data is None or not data.startswith(head):
        return {}, b""
    found: dict[bytes, tuple[int, int]] = {}
    at, end = len(head), len(data)
    try:
        while at < end:
            key, size = _RECORD.unpack_from(data, at)
            at += _RECORD.size
            if at + size > end:
                return {}, b""
            found[key] = (at, size)
            at += size
    except struct.error:
        return {}, b""
    return found, data


def _write(state, memo: Memo) -> None:
    parts = [_MAGIC, memo.salt]
    for key, raw in memo.used.items():
        parts += (_RECORD.pack(key, len(raw)), raw)
    try:
        state.write(PATH, b"".join(parts))
    except StateError:
        pass  # a memo that cannot be kept only makes the next compile slower
