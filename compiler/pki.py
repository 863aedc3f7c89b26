"""The cluster PKI's keys and certificates, made the way kubeadm makes them (reference
sections 1 and 2): key generation, CA and leaf signing, and the comparisons the state needs.

Stateless: :mod:`kubeforge.compiler.pki_store` keeps CAs and leaves in the state directory
(made once, reused), :mod:`kubeforge.compiler.pki_specs` says which leaves a cluster needs.
The clock is always passed in (``now``); this module never reads the wall clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Optional, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeforge.errors import KubeforgeError

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]

#: kubeadm's ``CertificateBackdate``: tolerate clocks a few minutes behind.
BACKDATE = dt.timedelta(minutes=5)
#: kube-apiserver's secure port on every control plane (``localAPIEndpoint.bindPort``).
APISERVER_BIND_PORT = 6443

#: ``ecdsa-p384`` is kubeadm 1.34+ only (versions table); the language checks the version.
ALGORITHMS = ("rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384")
_CURVES = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}


# ============================================================================ keys


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm in ALGORITHMS and algorithm.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm]())
    raise KubeforgeError(f"unsupported pki algorithm {algorithm!r} "
                         f"(supported: {', '.join(ALGORITHMS)})")


def key_algorithm(public_key) -> str:
    """The `pki { algorithm }` word for a public key (``rsa-2048``, ``ecdsa-p256``, ...)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    for name, curve in _CURVES.items():
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve,
                                                                            curve):
            return name
    return type(public_key).__name__


def key_matches_algorithm(public_key, algorithm: str) -> bool:
    if isinstance(public_key, rsa.RSAPublicKey):
        return algorithm == f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return algorithm in _CURVES and isinstance(public_key.curve, _CURVES[algorithm])
    return False


def _digest_for(signer: PrivateKey) -> hashes.HashAlgorithm:
    # What Go's x509.CreateCertificate picks for the signing key: SHA-384 for P-384,
    # SHA-256 for everything else.
    if isinstance(signer, ec.EllipticCurvePrivateKey) and isinstance(signer.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def private_key_pem(key: PrivateKey) -> bytes:
    # TraditionalOpenSSL = PKCS#1 "RSA PRIVATE KEY" / SEC1 "EC PRIVATE KEY", as client-go writes.
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def public_key_pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def same_key(public_key, other_public_key) -> bool:
    """Whether two public keys are the same key (a certificate's and a private key's)."""
    return _spki_der(public_key) == _spki_der(other_public_key)


def ca_cert_hash(cert: x509.Certificate) -> str:
    """kubeadm's discovery pin: ``sha256:`` + hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return "sha256:" + hashlib.sha256(_spki_der(cert.public_key())).hexdigest()


# ============================================================================ certificates


@dataclass(frozen=True)
class CertificateAuthority:
    name: str  # kubeadm file name without extension: "ca", "front-proxy-ca", "etcd/ca"
    cert: x509.Certificate
    key: PrivateKey
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CAs:
    ca: CertificateAuthority
    front_proxy: CertificateAuthority
    etcd: CertificateAuthority

    def signer(self, name: str) -> CertificateAuthority:
        return {"ca": self.ca, "front-proxy": self.front_proxy, "etcd": self.etcd}[name]


@dataclass(frozen=True)
class ServiceAccountKey:
    key_pem: bytes
    pub_pem: bytes


@dataclass(frozen=True)
class LeafSpec:
    """What kubeadm would put in one leaf certificate (table 1.2 / section 2)."""

    file: str  # kubeadm path without extension, relative to the pki dir: "etcd/server"
    signer: str  # "ca" | "front-proxy" | "etcd"
    common_name: str
    organizations: tuple[str, ...] = ()
    server_auth: bool = False
    client_auth: bool = False
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    @property
    def ekus(self) -> tuple[x509.ObjectIdentifier, ...]:
        return ((ExtendedKeyUsageOID.SERVER_AUTH,) if self.server_auth else ()) + \
               ((ExtendedKeyUsageOID.CLIENT_AUTH,) if self.client_auth else ())


@dataclass(frozen=True)
class IssuedLeaf:
    cert_pem: bytes
    key_pem: bytes
    reissued: Optional[str]  # why it was (re-)issued this compile; None when reused


def _random_serial() -> int:
    # kubeadm: uniform in [1, 2^63-1). Random is fine: every certificate is stored.
    return secrets.randbelow(2**63 - 2) + 1


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    # Go's pkix.Name puts O before CN; one RDN per attribute, like Go.
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(dns_names, ip_addresses) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.DNSName(d) for d in dns_names]
        + [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses])


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                         data_encipherment=False, key_agreement=False, key_cert_sign=is_ca,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def make_ca(common_name: str, algorithm: str, validity_days: int,
             now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = generate_key(algorithm)
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(_key_usage(is_ca=True), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        # kubeadm's CA template carries its own CN as a DNS SAN; kept for parity.
        .add_extension(_san([common_name], []), critical=False)
    )
    return builder.sign(key, _digest_for(key)), key


def _sign_leaf(ca: CertificateAuthority, subject: x509.Name, ekus, dns_names, ip_addresses,
               validity_days: int, algorithm: str, now: dt.datetime) -> tuple[bytes, bytes]:
    key = generate_key(algorithm)
    # A leaf must not outlive its CA: clients would reject it anyway once the CA expires.
    not_after = min(now + dt.timedelta(days=validity_days), ca.cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(_key_usage(is_ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),
                       critical=False)
    )
    if dns_names or ip_addresses:
        builder = builder.add_extension(_san(dns_names, ip_addresses), critical=False)
    cert = builder.sign(ca.key, _digest_for(ca.key))
    return cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def issue_client_cert(ca: CertificateAuthority, common_name: str, organizations,
                      validity_days: int, algorithm: str,
                      now: dt.datetime) -> tuple[bytes, bytes]:
    """A fresh client certificate (EKU clientAuth) signed by ``ca``: (cert PEM, key PEM).

    Stateless: callers that want reuse across compiles store the result themselves
    (see :func:`ensure_leaf`)."""
    return _sign_leaf(ca, _name(common_name, tuple(organizations)),
                      (ExtendedKeyUsageOID.CLIENT_AUTH,), (), (), validity_days, algorithm,
                      aware(now))


def issue_leaf(ca: CertificateAuthority, spec: LeafSpec, validity_days: int, algorithm: str,
               now: dt.datetime) -> tuple[bytes, bytes]:
    """A new leaf for ``spec`` with a new key, signed by ``ca``: (cert PEM, key PEM)."""
    return _sign_leaf(ca, _name(spec.common_name, spec.organizations), spec.ekus,
                      spec.dns_names, spec.ip_addresses, validity_days, algorithm, aware(now))


def aware(now: dt.datetime) -> dt.datetime:
    # cryptography reports UTC-aware datetimes; naive clocks are taken as UTC.
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True
