"""The per-cluster state directory: key material that must survive between compiles.

Layout (paths relative to the state root, by default ``.kubeforge/<cluster>/``)::

    pki/ca.{crt,key}  pki/front-proxy-ca.{crt,key}  pki/etcd/ca.{crt,key}  pki/sa.{key,pub}
    pki/nodes/<node>/<leaf>.{crt,key}           per-node leaves (apiserver, etcd/server, ...)
    kubeconfigs/<name>.{crt,key}                client certs embedded in kubeconfigs
    bootstrap-token                             kubeadm bootstrap token, made once
    digest-key                                  key of the secret files' digests, made once

Everything is private: the root and every directory below it are 0700 and every file is
0600 (certificates included, because a state directory is never a place to share from).
Writes are atomic so an interrupted compile never leaves half a key behind.

Material that exists must be usable: unreadable or corrupt files raise
:class:`~kubeforge.errors.StateError` instead of being replaced, because replacing a CA or
the service-account key silently would break every node and token already issued.
"""

from __future__ import annotations

import math
import re
import secrets
import stat
import string
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.errors import StateError

DIR_MODE = 0o700
FILE_MODE = 0o600

#: kubeadm's token format (cluster-bootstrap/token/api): ``<id>.<secret>``.
BOOTSTRAP_TOKEN_RE = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
BOOTSTRAP_TOKEN_FILE = "bootstrap-token"
DIGEST_KEY_FILE = "digest-key"


def _rsa_consistent(key: rsa.RSAPrivateKey) -> bool:
    """The arithmetic part of OpenSSL's RSA key check, without its slow primality tests.
    A damaged private part can still sign here (OpenSSL falls back when its CRT result is
    wrong), but Go, which runs the cluster, refuses such a key when it loads it."""
    n = key.private_numbers()
    p, q, d, e = n.p, n.q, n.d, n.public_numbers.e
    if p * q != n.public_numbers.n or p < 2 or q < 2:
        return False
    lcm = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    return (d * e) % lcm == 1 and n.dmp1 == d % (p - 1) and n.dmq1 == d % (q - 1) \
        and (n.iqmp * q) % p == 1


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
            cert = x509.load_pem_x509_certificate(data)
            # cryptography decodes fields on first use: touch every one kubeforge reads, so
            # a corrupt file fails here, with its name, and not in the middle of a compile.
            cert.public_key(), cert.extensions, cert.subject, cert.issuer
            cert.not_valid_before_utc, cert.not_valid_after_utc
            return cert
        # KeyError: cryptography's reading of some corrupt extensions (an unknown index).
        except (ValueError, TypeError, KeyError, UnsupportedAlgorithm,
                x509.InvalidVersion) as err:
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
            key = serialization.load_pem_private_key(data, password=None,
                                                     unsafe_skip_rsa_key_validation=True)
            if isinstance(key, rsa.RSAPrivateKey) and not _rsa_consistent(key):
                raise ValueError("inconsistent RSA key")
            return key
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            # The exception text from cryptography never includes key bytes, but keep the
            # message ours anyway.
            raise StateError(f"{self.path(rel)} is not an unencrypted PEM private key "
                             "(corrupt state?)") from err

    def files(self) -> set[str]:
        """Every file in the state directory, as paths relative to its root."""
        if not self.root.is_dir():
            return set()
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_file() or p.is_symlink()}

    def tighten(self) -> list[str]:
        """Give the root and every directory below it 0700 and every file no group or
        other bits, and say what was changed: a state directory someone loosened (a copy
        made with the wrong umask, a ``chmod -R 755``) exposes every key in it."""
        if not self.root.is_dir():
            return []
        fixed = []
        try:
            for path in [self.root, *self.root.rglob("*")]:
                st = path.lstat()
                if stat.S_ISDIR(st.st_mode):
                    want = DIR_MODE
                elif stat.S_ISREG(st.st_mode):
                    want = st.st_mode & 0o700
                else:
                    continue  # a symlink has no mode of its own
                if st.st_mode & 0o777 != want:
                    path.chmod(want)
                    fixed.append(f"{path} {st.st_mode & 0o777:04o} -> {want:04o}")
        except OSError as err:
            raise StateError(f"cannot tighten the modes in {self.root}: "
                             f"{err.strerror or err}") from err
        return fixed

    def digest_key(self) -> bytes:
        """The key of the keyed digests plan.json and files.json give secret files
        (see :func:`kubeforge.compiler.artifacts.content_digest`), made once and reused so
        recompiling gives the same digests."""
        data = self.read(DIGEST_KEY_FILE)
        if data is not None:
            text = data.decode("ascii", "replace").strip()
            if not re.fullmatch(r"[0-9a-f]{64}", text):
                raise StateError(f"{self.path(DIGEST_KEY_FILE)} does not hold 64 hex digits; "
                                 "remove it to make a new one (every secret upload then "
                                 "counts as changed once)")
            return bytes.fromhex(text)
        key = secrets.token_bytes(32)
        self.write(DIGEST_KEY_FILE, (key.hex() + "\n").encode("ascii"))
        return key

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
