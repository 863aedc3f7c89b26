"""Every certificate of a compiled cluster's build directory, public parts only: the
``*.crt``/``*.pem`` files and the client certificates embedded in kubeconfigs (key material
is never opened). Read by ``kubeforge certs check-expiration`` and by the expiry warnings
``plan`` and ``apply`` print (:func:`expiry_warnings`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

CERT_SUFFIXES = (".crt", ".pem")
KUBECONFIG_SUFFIXES = (".conf", ".kubeconfig")


@dataclass(frozen=True)
class CertRow:
    path: str  # relative to the build dir; "file.conf#user" for kubeconfig-embedded certs
    kind: str  # certificate | kubeconfig
    subject: str
    is_ca: bool
    issuer: x509.Name
    not_after: dt.datetime
    serial: int = 0  # tells apart certificates of the same subject and dates


def common_name(name: x509.Name) -> str:
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else name.rfc4514_string()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _row(path: str, kind: str, cert: x509.Certificate) -> CertRow:
    return CertRow(path, kind, common_name(cert.subject), _is_ca(cert), cert.issuer,
                   cert.not_valid_after_utc, cert.serial_number)


def _kubeconfig_rows(rel: str, data: bytes) -> list[CertRow]:
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return []
    if not isinstance(doc, dict) or doc.get("kind") != "Config":
        return []
    rows = []
    for entry in doc.get("users") or ():
        encoded = ((entry or {}).get("user") or {}).get("client-certificate-data")
        if not encoded:
            continue  # token users, or a file reference such as kubelet-client-current.pem
        try:
            cert = x509.load_pem_x509_certificate(base64.b64decode(encoded))
        except (ValueError, binascii.Error):
            continue
        rows.append(_row(f"{rel}#{entry.get('name', '')}", "kubeconfig", cert))
    return rows


def scan(root: Path) -> list[CertRow]:
    """Every certificate under ``root`` (leaf first for chain files), sorted by path."""
    rows: list[CertRow] = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if file.suffix in CERT_SUFFIXES:
            try:
                rows.append(_row(rel, "certificate", x509.load_pem_x509_certificate(
                    file.read_bytes())))
            except ValueError:
                continue  # e.g. a key-only .pem: not a certificate
        elif file.suffix in KUBECONFIG_SUFFIXES or PurePosixPath(rel).parts[0] == "kubeconfigs":
            rows += _kubeconfig_rows(rel, file.read_bytes())
    return rows


#: Certificates that end sooner than this are a warning of `plan` and `apply`.
EXPIRY_WARNING = dt.timedelta(days=30)


def expiry_warnings(root: Path, now: dt.datetime,
                    within: dt.timedelta = EXPIRY_WARNING) -> list[str]:
    """One warning for the leaves and one for the CAs of the build ``root`` that end within
    ``within`` of ``now`` (each certificate once, however many files carry it)."""
    soon: dict[tuple[bool, int, str, dt.datetime], list[str]] = {}
    for row in scan(root):
        if row.not_after - now <= within:
            soon.setdefault((row.is_ca, row.serial, row.subject, row.not_after),
                            []).append(row.path)
    out = []
    for is_ca in (False, True):
        found = sorted((not_after, paths[0], subject) for (ca, _, subject, not_after), paths
                       in soon.items() if ca == is_ca)
        if not found:
            continue
        listed = "; ".join(f"{path} ({subject}) {'expired' if end <= now else 'ends'} "
                           f"{end:%Y-%m-%d %H:%M} UTC" for end, path, subject in found[:5])
        more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
        days = within.days
        if is_ca:
            out.append(f"{len(found)} CA certificate(s) end within {days} days: {listed}{more}; "
                       "kubeforge never rotates a CA: follow kubeadm's manual CA rotation "
                       "(kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates)")
        else:
            out.append(f"{len(found)} certificate(s) end within {days} days: {listed}{more}; "
                       "renew them on the hosts with `kubeforge certs renew FILE -i INV --all`")
    return out
