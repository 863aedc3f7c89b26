"""The per-cluster state directory: key material that must survive between compiles.

Layout (paths relative to the state root, by default ``.kubeforge/<cluster>/``)::

    pki/ca.{crt,key}  pki/front-proxy-ca.{crt,key}  pki/etcd/ca.{crt,key}  pki/sa.{key,pub}
    pki/nodes/<node>/<leaf>.{crt,key}           per-node leaves (apiserver, etcd/server, ...)
    kubeconfigs/<name>.{crt,key}                client certs embedded in kubeconfigs
    bootstrap-token                             kubeadm bootstrap token, made once

Everything is private: the root and every directory below it are 0700 and every file is
0600 (certificates included, because a state directory is never a place to share from).
Writes are atomic so an interrupted compile never leaves half a key behind.

Material that exists must be usable: unreadable or corrupt files raise
:class:`~kubeforge.errors.StateError` instead of being replaced, because replacing a CA or
the service-account key silently would break every node and token already issued.
"""

from __future__ import annotations

import re
import secrets
import string
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.errors import StateError

DIR_MODE = 0o700
FILE_MODE = 0o600

#: kubeadm's token format (cluster-bootstrap/token/api): ``<id>.<secret>``.
BOOTSTRAP_TOKEN_RE = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
BOOTSTRAP_TOKEN_FILE = "bootstrap-token"


class StateDir:
    """One cluster's state directory. Nothing touches the disk until something is read or
    written, so constructing one for a path that does not exist yet is free."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"

    # ------------------------------------------------------------------ raw files

    def path(self, rel: str) -> Path:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise ValueError(f"state path must be relative and inside the state dir: {rel}")
        return self.root.joinpath(*p.parts)

    def exists(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def read(self, rel: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        target = self.path(rel)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateError(f"cannot read {target}: {err.strerror or err}") from err

    def write(self, rel: str, content: bytes) -> bool:
        """Write atomically with mode 0600; return False when the file already had it."""
        target = self.path(rel)
        self._make_dirs(target.parent)
        try:
            return write_atomic(target, content, FILE_MODE)
        except OSError as err:
            raise StateError(f"cannot write {target}: {err.strerror or err}") from err

    def _make_dirs(self, directory: Path) -> None:
        # Create (and tighten) every directory from the root down, so no intermediate
        # directory ends up with the umask's looser default.
        chain = [directory, *directory.parents]
        below_root = [d for d in chain if d == self.root or self.root in d.parents]
        try:
            for d in reversed(below_root):
                d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                if d.stat().st_mode & 0o777 != DIR_MODE:
                    d.chmod(DIR_MODE)
        except OSError as err:
            raise StateError(f"cannot create state directory {directory}: "
                             f"{err.strerror or err}") from err

    # ------------------------------------------------------------------ typed material

    def read_certificate(self, rel: str) -> x509.Certificate | None:
        data = self.read(rel)
        if data is None:
            return None
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as err:
            raise StateError(f"{self.path(rel)} is not a PEM certificate (corrupt state?); "
                             "restore it from a backup or remove it deliberately") from err

    def read_private_key(self, rel: str):
        """The private key (RSA or EC) or None; never echoes the file's content."""
        data = self.read(rel)
        if data is None:
            return None
        try:
            # The RSA consistency check costs ~60 ms a key and every compile reads dozens;
            # these keys were made by kubeforge and sit in a 0700 directory, and every use
            # still checks the key against its certificate's public key.
            return serialization.load_pem_private_key(data, password=None,
                                                      unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError) as err:
            # The exception text from cryptography never includes key bytes, but keep the
            # message ours anyway.
            raise StateError(f"{self.path(rel)} is not an unencrypted PEM private key "
                             "(corrupt state?)") from err

    def bootstrap_token(self) -> str:
        """The cluster's bootstrap token ``[a-z0-9]{6}.[a-z0-9]{16}``, made once and reused so
        join configs stay byte-identical between compiles."""
        data = self.read(BOOTSTRAP_TOKEN_FILE)
        if data is not None:
            token = data.decode("ascii", "replace").strip()
            if not BOOTSTRAP_TOKEN_RE.match(token):
                raise StateError(f"{self.path(BOOTSTRAP_TOKEN_FILE)} does not hold a bootstrap "
                                 "token of the form [a-z0-9]{6}.[a-z0-9]{16}")
            return token
        token_id = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))
        token_secret = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(16))
        token = f"{token_id}.{token_secret}"
        self.write(BOOTSTRAP_TOKEN_FILE, (token + "\n").encode("ascii"))
        return token
