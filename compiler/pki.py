"""The cluster PKI, made the way kubeadm makes it (reference sections 1 and 2).

Three CAs (``ca`` CN=kubernetes, ``front-proxy-ca``, ``etcd/ca`` CN=etcd-ca) and the
service-account key pair are created once in the state directory and reused forever; a CA is
never regenerated behind the user's back. Leaf certificates are kept in the state directory
too and reused byte-for-byte, so recompiling gives identical output. A stored leaf is
re-issued only when :func:`reissue_reason` says so:

* it no longer matches what kubeadm would issue now: subject (CN/O), SANs, extended key
  usages, key algorithm, or it is not signed by the current CA;
* its validity: not yet valid, or less than a third of its lifetime left (cert-manager's
  default ``renewBefore``). For the default one-year lifetime that is about four months
  before expiry; for any lifetime of 90 days or more it happens before the last 30 days,
  and unlike a fixed "30 days left" floor it never re-issues on every compile when the
  lifetime itself is short;
* its lifetime is longer than the configured ``cert_validity_days`` now allows.

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

from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.state import BOOTSTRAP_TOKEN_FILE, StateDir
from kubeforge.errors import KubeforgeError, StateError

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]

#: kubeadm's ``CertificateBackdate``: tolerate clocks a few minutes behind.
BACKDATE = dt.timedelta(minutes=5)
#: kube-apiserver's secure port on every control plane (``localAPIEndpoint.bindPort``).
APISERVER_BIND_PORT = 6443

#: ``ecdsa-p384`` is kubeadm 1.34+ only; the language decides which versions may use it.
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


def _make_ca(common_name: str, algorithm: str, validity_days: int,
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
                      _aware(now))


def _aware(now: dt.datetime) -> dt.datetime:
    # cryptography reports UTC-aware datetimes; naive clocks are taken as UTC.
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


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
    if _spki_der(cert.public_key()) != _spki_der(key.public_key()):
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
    if not _issued_by(cert, cert):
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
    cert, key = _make_ca(common_name, cluster.pki.algorithm, cluster.pki.ca_validity_days, now)
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
    now = _aware(now)
    for _, file, _ in _CA_NAMES:
        if state.read(f"pki/{file}.crt") is None and state.read(f"pki/{file}.key") is None:
            _refuse_lost(state, f"CA {file}", f"pki/{file}.crt and .key are")
    made = {attr: _ensure_ca(state, file, cn, cluster, now) for attr, file, cn in _CA_NAMES}
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
    return _issued_by(cert, ca.cert)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def reissue_reason(cert: x509.Certificate, spec: LeafSpec, ca: CertificateAuthority,
                   algorithm: str, validity_days: int, now: dt.datetime) -> str | None:
    """Why a stored leaf must be re-issued, or None to reuse it (rule in the module doc)."""
    now = _aware(now)
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
    now = _aware(now)
    cert_rel, key_rel = f"{rel}.crt", f"{rel}.key"
    cert = state.read_certificate(cert_rel)
    key = state.read_private_key(key_rel)
    reason: str | None
    if cert is None or key is None:
        reason = "new"
    else:
        if _spki_der(cert.public_key()) != _spki_der(key.public_key()):
            raise StateError(f"{state.path(key_rel)} does not belong to {state.path(cert_rel)} "
                             "(mismatched key)")
        reason = reissue_reason(cert, spec, ca, algorithm, validity_days, now)
    if reason is None:
        return IssuedLeaf(state.read(cert_rel), state.read(key_rel), None)
    cert_pem, key_pem = _sign_leaf(ca, _name(spec.common_name, spec.organizations), spec.ekus,
                                   spec.dns_names, spec.ip_addresses, validity_days, algorithm,
                                   now)
    state.write(key_rel, key_pem)
    state.write(cert_rel, cert_pem)
    return IssuedLeaf(cert_pem, key_pem, reason)


# ============================================================================ what kubeadm issues


def _split_sans(names) -> tuple[list[str], list[str]]:
    dns, ips = [], []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return dns, ips


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def endpoint_host(cluster: Cluster) -> str:
    """The control-plane endpoint host; the first control plane when none is declared
    (the same fallback :attr:`Cluster.endpoint` uses, so the SAN covers what configs say)."""
    if cluster.endpoint_host:
        return cluster.endpoint_host
    first = cluster.first_control_plane
    return str(first.address) if first else "127.0.0.1"


def apiserver_extra_sans(cluster: Cluster) -> tuple[str, ...]:
    """What the kubeadm config must list in ``apiServer.certSANs``: the declared extra SANs,
    the VIP, and for per-node proxies the loopback names kubelets dial (section 5.6)."""
    extra = list(cluster.pki.extra_sans)
    if cluster.loadbalancer.vip is not None:
        extra.append(str(cluster.loadbalancer.vip))
    if cluster.loadbalancer.mode == "local-proxy":
        extra += ["localhost", "127.0.0.1"]
    return _unique(extra)


def apiserver_sans(cluster: Cluster, node: ClusterNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Section 1.3: (DNS names sorted, IPs in kubeadm's order)."""
    dns = [node.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{cluster.domain}"]
    ips = [str(cluster.kubernetes_service_ip), *map(str, node.addresses)]
    extra_dns, extra_ips = _split_sans([endpoint_host(cluster), *apiserver_extra_sans(cluster)])
    return tuple(sorted(set(dns + extra_dns))), _unique(ips + extra_ips)


def etcd_sans(node: ClusterNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Section 1.3: the node itself and loopback; never the VIP or the service IP."""
    return tuple(sorted({node.name, "localhost"})), _unique([str(node.address), "127.0.0.1", "::1"])


def _org_before_129(cluster: Cluster, org: str) -> tuple[str, ...]:
    # Up to 1.28 several client certs carried O=system:masters; 1.29 (KEP 4214) dropped it.
    return (org,) if cluster.minor <= 28 else ()


def cluster_admins_org(cluster: Cluster) -> str:
    return "kubeadm:cluster-admins" if cluster.minor >= 29 else "system:masters"


def apiserver_kubelet_client_orgs(cluster: Cluster) -> tuple[str, ...]:
    # 1.37 drops O here (kubeadm then binds the user to system:kubelet-api-admin). Backports to
    # 1.35.5+/1.36.1+ are only *reported*, so every 1.3x keeps O=kubeadm:cluster-admins: it
    # works whether or not the kubeadm in use creates that new binding.
    return () if cluster.minor >= 37 else (cluster_admins_org(cluster),)


def node_leaf_specs(cluster: Cluster, node: ClusterNode) -> tuple[LeafSpec, ...]:
    """Every leaf under /etc/kubernetes/pki that ``node`` needs (table 1.2)."""
    specs: list[LeafSpec] = []
    if node.is_control_plane:
        dns, ips = apiserver_sans(cluster, node)
        specs += [
            LeafSpec("apiserver", "ca", "kube-apiserver", server_auth=True,
                     dns_names=dns, ip_addresses=ips),
            LeafSpec("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
                     apiserver_kubelet_client_orgs(cluster), client_auth=True),
            LeafSpec("front-proxy-client", "front-proxy", "front-proxy-client", client_auth=True),
            LeafSpec("apiserver-etcd-client", "etcd", "kube-apiserver-etcd-client",
                     _org_before_129(cluster, "system:masters"), client_auth=True),
        ]
    if node in cluster.etcd_nodes:
        dns, ips = etcd_sans(node)
        # etcd uses its server cert for its own client connections too, hence clientAuth.
        specs += [
            LeafSpec("etcd/server", "etcd", node.name, server_auth=True, client_auth=True,
                     dns_names=dns, ip_addresses=ips),
            LeafSpec("etcd/peer", "etcd", node.name, server_auth=True, client_auth=True,
                     dns_names=dns, ip_addresses=ips),
            LeafSpec("etcd/healthcheck-client", "etcd", "kube-etcd-healthcheck-client",
                     _org_before_129(cluster, "system:masters"), client_auth=True),
        ]
    return tuple(specs)


def kubeconfig_spec(cluster: Cluster, kind: str, node: ClusterNode | None = None) -> LeafSpec:
    """The client certificate kubeadm embeds in a kubeconfig (section 2)."""
    if kind == "admin":
        return LeafSpec("admin", "ca", "kubernetes-admin", (cluster_admins_org(cluster),),
                        client_auth=True)
    if kind == "super-admin":
        return LeafSpec("super-admin", "ca", "kubernetes-super-admin", ("system:masters",),
                        client_auth=True)
    if kind == "controller-manager":
        return LeafSpec("controller-manager", "ca", "system:kube-controller-manager",
                        client_auth=True)
    if kind == "scheduler":
        return LeafSpec("scheduler", "ca", "system:kube-scheduler", client_auth=True)
    if kind == "kubelet" and node is not None:
        return LeafSpec("kubelet", "ca", f"system:node:{node.name}", ("system:nodes",),
                        client_auth=True)
    raise ValueError(f"unknown kubeconfig kind {kind!r}")
