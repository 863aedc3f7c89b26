"""No garbage-collector passes while the compiler builds its objects.

Parsing, lowering and emitting a big file make millions of small objects that live until the
batch ends, and refcounting frees the rest: every collection walks the live ones again and
finds nothing to free. A raised threshold (100,000 allocations between young collections)
still left half of a 5,000-workload check to the collector; off, it costs nothing.

That holds only while the compiler makes no reference cycles, which the collector alone
could free: tests/compiler/test_gc_batch.py compiles the examples and asserts that no cyclic
garbage is left (PyYAML emitters are disposed, closures that call themselves are broken).
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
