"""sha256 of files and of streams as they are written."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``inner``."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.size, self._digest = inner, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def tell(self) -> int:
        return self.size

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
