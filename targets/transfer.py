"""Whole files between this machine and a host over SFTP, with their sha256 checked.

SFTP runs as the login user; a host reached as another user with become (sudo) cannot read
or write root's files that way, so the file passes through a private temporary copy that
sudo moves into (or out of) place. Local files are written 0600 under a temporary name and
renamed once complete and checked, so an interrupted fetch never leaves a partial snapshot
that looks whole.
"""

from __future__ import annotations

import os
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import paramiko

from kubeforge.bundle.digest import CHUNK, sha256_file
from kubeforge.targets.base import ConnectionLost, TargetError

__all__ = ["fetch", "send", "remote_sha256", "sha256_file"]


def _run(session, script: str, timeout: float = 300) -> str:
    out = session.run(script, timeout=timeout)
    if out.exit_code:
        raise TargetError(f"{session.host.name}: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout.decode().strip()


@contextmanager
def _sftp(session, what: str) -> Iterator[object]:
    """An SFTP client of ``session``, closed afterwards; a dropped connection is
    ConnectionLost, a file that cannot be read or written a TargetError naming ``what``."""
    try:
        sftp = session.sftp()
    except AttributeError:
        raise TargetError(f"{session.host.name}: this connection has no SFTP") from None
    try:
        yield sftp
    except (paramiko.SSHException, EOFError) as exc:
        raise ConnectionLost(f"{session.host.name}: {what}: {exc}") from exc
    except OSError as exc:
        raise TargetError(f"{session.host.name}: {what}: {exc}") from None
    finally:
        sftp.close()


def fetch(session, remote: str, local: Path, sha256: str) -> None:
    """Copy ``remote`` to ``local`` (0600, new file) and check its sha256."""
    part = local.with_name(local.name + ".part")
    staged = None
    if session.host.needs_sudo:
        user = shlex.quote(session.host.user)
        staged = _run(session, f"t=$(mktemp /tmp/kubeforge-etcd.XXXXXX) && cat "
                               f"{shlex.quote(remote)} > \"$t\" && chown {user} \"$t\" && echo \"$t\"")
    try:
        with _sftp(session, f"fetching {remote} to {local}") as sftp:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # a leftover .part of another mode
            with os.fdopen(fd, "wb") as out:
                sftp.getfo(staged or remote, out)
    finally:
        if staged:
            _run(session, f"rm -f {shlex.quote(staged)}")
    got = sha256_file(part)
    if got != sha256:
        part.unlink()
        raise TargetError(f"{session.host.name}: {remote} arrived with sha256 {got}, the host "
                          f"reported {sha256}")
    os.replace(part, local)


def send(session, local: Path, remote: str, sha256: str) -> None:
    """Copy ``local`` to ``remote`` (0600 root) through a temporary name; the host checks
    the sha256 before the rename."""
    target = shlex.quote(remote)
    temp = remote + ".part"
    # As another login user, the copy waits in /tmp under a random name, 0600 and owned by
    # that user (only it and root can read it), until sudo moves it into place.
    staged = f"/tmp/kubeforge-etcd-{os.urandom(8).hex()}" if session.host.needs_sudo else None
    with _sftp(session, f"sending {local} to {remote}") as sftp, open(local, "rb") as f:
        handle = sftp.open(staged or temp, "wb")
        handle.chmod(0o600)  # before any byte lands
        with handle:
            handle.set_pipelined(True)
            while chunk := f.read(CHUNK):
                handle.write(chunk)
    source = shlex.quote(staged or temp)
    _run(session, f"set -e; echo '{sha256}  '{source} | sha256sum -c --quiet; "
                  f"install -m 0600 -o root -g root {source} {target}; rm -f {source}")


def remote_sha256(session, remote: str) -> str | None:
    """The sha256 of ``remote``, or None when it does not exist."""
    out = session.run(f"sha256sum {shlex.quote(remote)} 2>/dev/null | cut -d' ' -f1",
                      timeout=300)
    text = out.stdout.decode().strip()
    return text or None
