"""Fewer garbage-collector passes while the compiler builds its objects.

Parsing and lowering a big file make millions of small objects that refcounting frees on its
own (few of them form cycles), and each one counts towards the next collection: with the
default thresholds the collector ran thousands of times over a 5,000-workload file, most of
parse time. Raising the first threshold keeps collections rare while a batch runs; memory is
unchanged for such files (their peak is the live data, not cyclic garbage).
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

#: Allocations between young collections (the default is 700).
YOUNG = 100_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(max(YOUNG, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
