"""known_hosts entries, read and written with paramiko's HostKeys, never by hand.

OpenSSH names a host ``address`` on port 22 and ``[address]:port`` otherwise (brackets even
around IPv4); paramiko's :class:`~paramiko.hostkeys.HostKeyEntry` formats and parses the
lines, and validates each key on the way.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Iterable

import paramiko
from paramiko.hostkeys import HostKeyEntry


class HostKeyError(ValueError):
    """A public host key that paramiko cannot use."""


def known_name(address: str, port: int) -> str:
    """How OpenSSH and paramiko name a host in known_hosts."""
    return address if port == 22 else f"[{address}]:{port}"


def public_key(kind: str, blob: str) -> paramiko.PKey:
    """A public key from its ``type base64`` form (as in a ``*.pub`` file)."""
    try:
        return paramiko.PKey.from_type_string(kind, base64.b64decode(blob, validate=True))
    except (ValueError, binascii.Error, paramiko.SSHException) as err:
        raise HostKeyError(f"unreadable host key {kind}: {err}") from None


def entries_text(entries: Iterable[tuple[str, paramiko.PKey]]) -> str:
    """known_hosts lines for ``(name, key)`` pairs, in order."""
    return "".join(HostKeyEntry([name], key).to_line() for name, key in entries)


def append(path: Path, name: str, key: paramiko.PKey) -> None:
    """Record one key (trust on first use) after the file's existing lines, which stay as
    they are (comments, markers and hashed names included)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = path.read_text(encoding="ascii") if path.exists() else ""
    with open(path, "a", encoding="ascii") as fh:
        if existing and not existing.endswith("\n"):
            fh.write("\n")
        fh.write(HostKeyEntry([name], key).to_line())
