"""Schema-check results kept between runs, so checking objects already checked needs neither
jsonschema (whose import alone was the largest part of a small file's `check`) nor the
minor's schema files.

A result is stored under a hash of the object's ``repr`` (every key in order, every value
with its type: what the check and its messages depend on) and the minor. The file holding
them is named by a hash of what the check is made of: :mod:`api_schema`'s source and the
installed jsonschema, referencing and kubernetes-validate (each package's location, size
and modification time) and Python's version, so an upgrade or a changed check starts an
empty file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

from kubeforge import usercache
from kubeforge.compiler import api_schema

#: Results kept in one file; past this it keeps only the current run's (all of them).
LIMIT = 20_000
_PACKAGES = ("jsonschema", "referencing", "kubernetes_validate")


@functools.lru_cache(maxsize=None)
def cache_file() -> Path:
    parts = [sys.version, Path(api_schema.__file__).read_text(encoding="utf-8")]
    for name in _PACKAGES:
        spec = find_spec(name)
        origin = spec.origin if spec else None
        st = os.stat(origin) if origin else None
        parts.append(f"{name}:{origin}:{st and st.st_size}:{st and st.st_mtime_ns}")
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]
    return usercache.cache_dir() / f"schema-checks-{key}.json"


class CheckCache:
    """``check(obj, minor)`` answers from the file when it can; ``save()`` keeps new ones."""

    def __init__(self) -> None:
        self.known: dict[str, list] = {}
        self.new: dict[str, list] = {}
        self.used: set[str] = set()  # known results this run asked for
        data = usercache.read_own(cache_file())
        if data is not None:
            try:
                known = json.loads(data)
            except ValueError:
                known = None
            if isinstance(known, dict):
                self.known = known

    def check(self, obj: dict, minor: int) -> list[api_schema.ApiProblem]:
        key = hashlib.sha256(repr((minor, obj)).encode()).hexdigest()
        found = self.known.get(key)
        if found is not None:
            self.used.add(key)
        else:
            found = self.new.get(key)
        if found is None:
            problems = api_schema.check_object(obj, minor)
            self.new[key] = [[p.severity, p.path, p.message] for p in problems]
            return problems
        return [api_schema.ApiProblem(*p) for p in found]

    def save(self) -> None:
        if not self.new:
            return
        # Past the limit, the results this run used stay with the new ones: keeping only
        # the new ones made a file of more than LIMIT objects lose, on every run, what the
        # previous run had found, and check most of them again (a fleet's 20,000 objects).
        kept = self.known if len(self.known) + len(self.new) <= LIMIT else \
            {key: self.known[key] for key in self.used}
        usercache.write_own(cache_file(), json.dumps({**kept, **self.new}).encode())
