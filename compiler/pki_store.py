"""The PKI in the state directory: three CAs (``ca`` CN=kubernetes, ``front-proxy-ca``,
``etcd/ca`` CN=etcd-ca) and the service-account key pair are created once and reused forever;
a CA is never regenerated behind the user's back, and once the state holds an earlier build a
lost CA is an error rather than a new one. Leaf certificates are kept there too and reused
byte-for-byte, so recompiling gives identical output. A stored leaf is re-issued only when
:func:`reissue_reason` says so:

* it no longer matches what kubeadm would issue now: subject (CN/O), SANs, extended key
  usages, key algorithm, or it is not signed by the current CA;
* its validity: not yet valid, or less than a third of its lifetime left (cert-manager's
  default ``renewBefore``). For the default one-year lifetime that is about four months
  before expiry; for any lifetime of 90 days or more it happens before the last 30 days,
  and unlike a fixed "30 days left" floor it never re-issues on every compile when the
  lifetime itself is short;
* its lifetime is longer than the configured ``cert_validity_days`` now allows.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from kubeforge.compiler.ir import Cluster
from kubeforge.compiler.pki import (BACKDATE, CAs, CertificateAuthority, IssuedLeaf, LeafSpec,
                                    ServiceAccountKey, aware, generate_key, issue_leaf,
                                    issued_by, key_matches_algorithm, make_ca, private_key_pem,
                                    public_key_pem, same_key)
from kubeforge.compiler.state import BOOTSTRAP_TOKEN_FILE, StateDir
from kubeforge.errors import StateError


# ============================================================================ CAs in state


_CA_NAMES = (("ca", "ca", "kubernetes"),
             ("front_proxy", "front-proxy-ca", "front-proxy-ca"),
             ("etcd", "etcd/ca", "etcd-ca"))


def _load_ca(state: StateDir, file: str, common_name: str,
             now: dt.datetime | None) -> CertificateAuthority | None:
    """The stored CA, None when neither half exists, StateError for anything in between.
    With ``now``, an expired CA is an error too (nothing it signs would be trusted)."""
    cert_rel, key_rel = f"pki/{file}.crt", f"pki/{file}.key"
    cert_pem, key_pem = state.read(cert_rel), state.read(key_rel)
    if cert_pem is None and key_pem is None:
        return None
    if cert_pem is None or key_pem is None:
        present, missing = (cert_rel, key_rel) if key_pem is None else (key_rel, cert_rel)
        raise StateError(
            f"CA {file}: {state.path(present)} exists but {state.path(missing)} is missing; "
            "kubeforge never regenerates a CA. Restore the missing file from a backup (or, for "
            "a cluster that was never deployed, delete the state directory)")
    cert = state.read_certificate(cert_rel)
    key = state.read_private_key(key_rel)
    if not same_key(cert.public_key(), key.public_key()):
        raise StateError(f"CA {file}: {state.path(key_rel)} does not belong to "
                         f"{state.path(cert_rel)} (mismatched key)")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not is_ca or not cn or cn[0].value != common_name:
        raise StateError(f"{state.path(cert_rel)} is not the {file} CA (expected a CA "
                         f"certificate with CN={common_name})")
    if not issued_by(cert, cert):
        raise StateError(f"CA {file}: the signature of {state.path(cert_rel)} does not verify "
                         "(corrupt state?); restore it from a backup")
    if now is not None and cert.not_valid_after_utc <= now:
        raise StateError(f"CA {file} expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                         "kubeforge does not rotate CAs automatically")
    return CertificateAuthority(file, cert, key, cert_pem, key_pem)


def _ensure_ca(state: StateDir, file: str, common_name: str, cluster: Cluster,
               now: dt.datetime) -> CertificateAuthority:
    existing = _load_ca(state, file, common_name, now)
    if existing is not None:
        # Reused even if cluster.pki.algorithm changed since: leaves follow the new
        # algorithm, the CA stays (changing it would invalidate every deployed node).
        return existing
    cert, key = make_ca(common_name, cluster.pki.algorithm, cluster.pki.ca_validity_days, now)
    cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)
    # Key first: a crash in between leaves a lone key, which _load_ca reports rather than
    # silently pairing a new certificate with it.
    state.write(f"pki/{file}.key", key_pem)
    state.write(f"pki/{file}.crt", cert_pem)
    return CertificateAuthority(file, cert, key, cert_pem, key_pem)


#: What a state directory may hold before its first compile: CAs a user brings (kubeadm
#: makes the CAs that are missing) and a bootstrap token. Every other file is made by a
#: compile, so it means a cluster may have been deployed from this state.
_SEEDS = frozenset({f"pki/{file}.{ext}" for _, file, _ in _CA_NAMES for ext in ("crt", "key")}
                   | {BOOTSTRAP_TOKEN_FILE})


def _earlier_build(state: StateDir) -> str | None:
    """A file that shows a build was made from ``state`` (for the message), or None."""
    made = sorted(state.files() - _SEEDS)
    return made[0] if made else None


def _refuse_lost(state: StateDir, what: str, files: str) -> None:
    evidence = _earlier_build(state)
    if evidence:
        raise StateError(
            f"{what}: {files} missing from {state.root}, which holds an earlier build "
            f"({evidence}, ...); hosts may trust the old one, so kubeforge never makes it "
            "anew. Restore the files from a backup; or, to start a new cluster from "
            f"scratch, remove the whole state directory {state.root}")


def ensure_cas(cluster: Cluster, state: StateDir, now: dt.datetime) -> CAs:
    """Load the three CAs from ``state``, making those that were never made."""
    now = aware(now)
    for _, file, _ in _CA_NAMES:
        if state.read(f"pki/{file}.crt") is None and state.read(f"pki/{file}.key") is None:
            _refuse_lost(state, f"CA {file}", f"pki/{file}.crt and .key are")
    made = {attr: _ensure_ca(state, file, cn, cluster, now) for attr, file, cn in _CA_NAMES}
    return CAs(**made)


def load_cas(state: StateDir, now: dt.datetime) -> CAs:
    """The three CAs as stored, for re-issuing leaves outside a compile; StateError when one
    was never made (nothing is made here)."""
    made = {attr: _load_ca(state, file, cn, aware(now)) for attr, file, cn in _CA_NAMES}
    missing = [file for attr, file, _ in _CA_NAMES if made[attr] is None]
    if missing:
        raise StateError(f"no CA {', '.join(missing)} in {state.root}: compile and apply the "
                         "cluster first")
    return CAs(**made)


def load_cluster_ca(state: StateDir) -> CertificateAuthority:
    """The cluster CA (``ca``) as stored; StateError if it was never made."""
    ca = _load_ca(state, "ca", "kubernetes", None)
    if ca is None:
        raise StateError(f"no cluster CA in {state.root}: run `kubeforge compile` first")
    return ca


def ensure_service_account_key(cluster: Cluster, state: StateDir) -> ServiceAccountKey:
    """``sa.key``/``sa.pub``: made once; every control plane must share them (section 1.4)."""
    key_pem, pub_pem = state.read("pki/sa.key"), state.read("pki/sa.pub")
    if key_pem is None:
        if pub_pem is not None:
            raise StateError(f"{state.path('pki/sa.pub')} exists without sa.key; tokens "
                             "signed by the old key would break. Restore sa.key from a backup")
        _refuse_lost(state, "the service-account key", "pki/sa.key and sa.pub are")
        key = generate_key(cluster.pki.algorithm)
        key_pem, pub_pem = private_key_pem(key), public_key_pem(key.public_key())
        state.write("pki/sa.key", key_pem)
        state.write("pki/sa.pub", pub_pem)
        return ServiceAccountKey(key_pem, pub_pem)
    derived = public_key_pem(state.read_private_key("pki/sa.key").public_key())
    if pub_pem is None:
        state.write("pki/sa.pub", derived)
    elif pub_pem != derived:
        raise StateError(f"{state.path('pki/sa.pub')} does not match sa.key (mismatched pair)")
    return ServiceAccountKey(key_pem, derived)


# ============================================================================ leaves in state


def _subject_of(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return (cn[0] if cn else ""), orgs


def _sans_of(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    return (frozenset(san.get_values_for_type(x509.DNSName)),
            frozenset(str(i) for i in san.get_values_for_type(x509.IPAddress)))


def _ekus_of(cert: x509.Certificate) -> frozenset:
    try:
        return frozenset(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return frozenset()


def _signed_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    return issued_by(cert, ca.cert)


def reissue_reason(cert: x509.Certificate, spec: LeafSpec, ca: CertificateAuthority,
                   algorithm: str, validity_days: int, now: dt.datetime) -> str | None:
    """Why a stored leaf must be re-issued, or None to reuse it (rule in the module doc)."""
    now = aware(now)
    if not _signed_by(cert, ca):
        return "not signed by the current CA"
    if _subject_of(cert) != (spec.common_name, spec.organizations):
        return "subject changed"
    wanted_ips = frozenset(str(ipaddress.ip_address(i)) for i in spec.ip_addresses)
    if _sans_of(cert) != (frozenset(spec.dns_names), wanted_ips):
        return "SANs changed"
    if _ekus_of(cert) != frozenset(spec.ekus):
        return "extended key usages changed"
    if not key_matches_algorithm(cert.public_key(), algorithm):
        return "key algorithm changed"
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        return "not yet valid"
    if not_after - now < (not_after - not_before) / 3:
        return "less than a third of its lifetime left"
    if not_after > now + dt.timedelta(days=validity_days) + BACKDATE:
        return "lifetime longer than cert_validity_days"
    return None


def ensure_leaf(state: StateDir, rel: str, spec: LeafSpec, ca: CertificateAuthority,
                algorithm: str, validity_days: int, now: dt.datetime) -> IssuedLeaf:
    """The leaf stored at ``<rel>.crt``/``<rel>.key`` in ``state``, re-issued only when
    :func:`reissue_reason` requires it."""
    now = aware(now)
    cert_rel, key_rel = f"{rel}.crt", f"{rel}.key"
    cert = state.read_certificate(cert_rel)
    key = state.read_private_key(key_rel)
    reason: str | None
    if cert is None or key is None:
        reason = "new"
    else:
        if not same_key(cert.public_key(), key.public_key()):
            raise StateError(f"{state.path(key_rel)} does not belong to {state.path(cert_rel)} "
                             "(mismatched key)")
        reason = reissue_reason(cert, spec, ca, algorithm, validity_days, now)
    if reason is None:
        return IssuedLeaf(state.read(cert_rel), state.read(key_rel), None)
    cert_pem, key_pem = issue_leaf(ca, spec, validity_days, algorithm, now)
    state.write(key_rel, key_pem)
    state.write(cert_rel, cert_pem)
    return IssuedLeaf(cert_pem, key_pem, reason)
