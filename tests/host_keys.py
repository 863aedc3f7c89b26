"""known_hosts files for host key tests: one with a host's key replaced (what a man in the
middle looks like), one without the host (a first connection)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _other_lines(known: Path, address: str) -> list[str]:
    return [line for line in known.read_text().splitlines()
            if line.strip() and line.split(" ", 1)[0] != address]


def tampered(known: Path, address: str, out: Path) -> Path:
    """``known`` with ``address``'s keys replaced by a fresh ed25519 key it does not hold."""
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    out.write_text("\n".join([*_other_lines(known, address), f"{address} {public}"]) + "\n")
    return out


def without(known: Path, address: str, out: Path) -> Path:
    """``known`` without any key of ``address``."""
    out.write_text("\n".join(_other_lines(known, address)) + "\n")
    return out


def keys_of(known: Path, address: str) -> set[str]:
    """The ``type base64`` keys ``known`` holds for ``address``."""
    return {" ".join(line.split()[1:3]) for line in known.read_text().splitlines()
            if line.strip() and line.split(" ", 1)[0] == address}
