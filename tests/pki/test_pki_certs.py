"""Every certificate the PKI emitter writes, read back and checked against kubeadm's table
(reference 1.2, 1.3, 8) for each supported version, then verified by a real openssl."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki_helpers import NOW, build, make_cluster


def _pem_begin(kind: str) -> bytes:
    """The header line of a PEM private key of ``kind`` (built, so no file in the
    repository carries a private-key header)."""
    return f"-----BEGIN {kind} PRIVATE KEY-----".encode()


SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
CA_FILES = {"kubernetes": "ca.crt", "front-proxy-ca": "front-proxy-ca.crt",
            "etcd-ca": "etcd/ca.crt"}
CA_PEM_FILES = {"ca.crt", "front-proxy-ca.crt", "etcd/ca.crt"}

# Version-dependent organisations (versions table): apiserver-kubelet-client keeps
# O=kubeadm:cluster-admins until the patch whose kubeadm binds it to system:kubelet-api-admin.
MASTERS, CLUSTER_ADMINS = ("system:masters",), ("kubeadm:cluster-admins",)
ORGS = {v: {"admin": CLUSTER_ADMINS, "super-admin": MASTERS,
            "apiserver-kubelet-client": CLUSTER_ADMINS if old else (), "etcd-client": ()}
        for v, old in (("1.33.11", True), ("1.33.12", False), ("1.34.4", True),
                       ("1.35.4", True), ("1.35.5", False), ("1.36.0", True),
                       ("1.36.3", False), ("1.37.2", False))}

ADDRESSES = {"cp1": "10.0.0.11", "cp2": "10.0.0.12", "cp3": "10.0.0.13",
             "etcd1": "10.0.0.31", "etcd2": "10.0.0.32", "etcd3": "10.0.0.33"}


@dataclass(frozen=True)
class Expect:
    issuer: str
    cn: str
    orgs: tuple = ()
    ekus: frozenset = frozenset()
    dns: tuple = ()  # in kubeadm's order: sorted
    ips: frozenset = frozenset()


def apiserver_expect(name: str) -> Expect:
    dns = sorted({name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                  "kubernetes.default.svc.cluster.local", "api.lab.internal", "lb.example.com"})
    return Expect("kubernetes", "kube-apiserver", (), frozenset({SERVER}), tuple(dns),
                  frozenset({"10.96.0.1", ADDRESSES[name], "10.0.0.100", "192.0.2.10"}))


def etcd_member_expect(name: str) -> Expect:
    return Expect("etcd-ca", name, (), frozenset({SERVER, CLIENT}),
                  tuple(sorted({name, "localhost"})),
                  frozenset({ADDRESSES[name], "127.0.0.1", "::1"}))


def expected_leaves(version: str, name: str, control_plane: bool,
                    etcd_member: bool) -> dict[str, Expect]:
    orgs = ORGS[version]
    leaves = {}
    if control_plane:
        leaves.update({
            "apiserver.crt": apiserver_expect(name),
            "apiserver-kubelet-client.crt": Expect(
                "kubernetes", "kube-apiserver-kubelet-client", orgs["apiserver-kubelet-client"],
                frozenset({CLIENT})),
            "front-proxy-client.crt": Expect("front-proxy-ca", "front-proxy-client", (),
                                             frozenset({CLIENT})),
            "apiserver-etcd-client.crt": Expect("etcd-ca", "kube-apiserver-etcd-client",
                                                orgs["etcd-client"], frozenset({CLIENT})),
        })
    if etcd_member:
        leaves.update({
            "etcd/server.crt": etcd_member_expect(name),
            "etcd/peer.crt": etcd_member_expect(name),
            "etcd/healthcheck-client.crt": Expect("etcd-ca", "kube-etcd-healthcheck-client",
                                                  orgs["etcd-client"], frozenset({CLIENT})),
        })
    return leaves


def node_pki(root: Path, node: str) -> dict[str, bytes]:
    base = root / "nodes" / node / "etc/kubernetes/pki"
    return {p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()} if base.exists() else {}


def _cn(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _orgs(name: x509.Name) -> tuple:
    return tuple(a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))


def _ext(cert: x509.Certificate, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def check_leaf(cert: x509.Certificate, want: Expect, validity_days: int = 365) -> None:
    assert _cn(cert.issuer) == want.issuer
    assert _cn(cert.subject) == want.cn
    assert _orgs(cert.subject) == want.orgs
    ku = _ext(cert, x509.KeyUsage)
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    assert frozenset(_ext(cert, x509.ExtendedKeyUsage)) == want.ekus
    assert _ext(cert, x509.BasicConstraints).ca is False
    san = _ext(cert, x509.SubjectAlternativeName)
    if want.dns or want.ips:
        assert tuple(san.get_values_for_type(x509.DNSName)) == want.dns
        assert frozenset(str(i) for i in san.get_values_for_type(x509.IPAddress)) == want.ips
    else:
        assert san is None
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=validity_days)


def check_ca(cert: x509.Certificate, cn: str) -> None:
    assert _cn(cert.subject) == cn and cert.issuer == cert.subject
    assert _ext(cert, x509.BasicConstraints).ca is True
    ku = _ext(cert, x509.KeyUsage)
    assert ku.key_cert_sign and ku.digital_signature and ku.key_encipherment
    assert _ext(cert, x509.ExtendedKeyUsage) is None
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3650)
    cert.verify_directly_issued_by(cert)


def openssl_verify(ca_file: Path, leaves: list[Path], purpose: str | None = None) -> None:
    """A real openssl, evaluated at NOW so the result does not depend on today's date."""
    cmd = ["openssl", "verify", "-attime", str(int(NOW.timestamp())), "-CAfile", str(ca_file)]
    if purpose:
        cmd += ["-purpose", purpose]
    result = subprocess.run(cmd + [str(p) for p in leaves], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == len(leaves)


@pytest.fixture(scope="module", params=sorted(ORGS))
def version_build(request, tmp_path_factory):
    version = request.param
    return version, build(make_cluster(version), tmp_path_factory.mktemp(version))


@pytest.fixture(scope="module", params=["1.34.4", "1.37.2"])
def external_build(request, tmp_path_factory):
    version = request.param
    return version, build(make_cluster(version, etcd="external"),
                          tmp_path_factory.mktemp("ext" + version))


def _check_tree(version: str, root: Path, external: bool) -> None:
    for name in ADDRESSES:
        control_plane = name.startswith("cp")
        etcd_member = name.startswith("etcd") if external else control_plane
        if not (control_plane or etcd_member):
            continue
        files = node_pki(root, name)
        leaves = expected_leaves(version, name, control_plane, etcd_member)
        certs = {rel for rel in files if rel.endswith(".crt")}
        shared = ({"ca.crt", "front-proxy-ca.crt", "etcd/ca.crt"} if control_plane
                  else {"etcd/ca.crt"})
        assert certs == set(leaves) | shared, name
        for rel, want in leaves.items():
            check_leaf(x509.load_pem_x509_certificate(files[rel]), want)
        for rel in shared:
            cert = x509.load_pem_x509_certificate(files[rel])
            check_ca(cert, _cn(cert.subject))
            assert files[rel] == (root / "pki" / rel).read_bytes()


def test_every_certificate_matches_kubeadm_table(version_build):
    version, built = version_build
    _check_tree(version, built.root, external=False)


def test_external_etcd_certificates_go_to_etcd_members(external_build):
    version, built = external_build
    _check_tree(version, built.root, external=True)
    for name in ("cp1", "cp2", "cp3"):
        files = node_pki(built.root, name)
        assert "etcd/ca.key" not in files and "etcd/server.crt" not in files
        assert {"apiserver-etcd-client.crt", "apiserver-etcd-client.key"} <= set(files)
    for name in ("etcd1", "etcd2", "etcd3"):
        files = node_pki(built.root, name)
        # The etcd CA key stays in the state directory; members only need their leaves.
        assert set(files) == {"etcd/ca.crt", "etcd/server.crt", "etcd/server.key",
                              "etcd/peer.crt", "etcd/peer.key",
                              "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key"}


def _openssl_check_tree(root: Path) -> int:
    checked = 0
    for node_dir in sorted((root / "nodes").iterdir()):
        pki_dir = node_dir / "etc/kubernetes/pki"
        if not pki_dir.exists():
            continue
        by_ca: dict[tuple[str, str], list[Path]] = {}
        for crt in sorted(pki_dir.rglob("*.crt")):
            cert = x509.load_pem_x509_certificate(crt.read_bytes())
            if _ext(cert, x509.BasicConstraints).ca:
                continue
            ekus = frozenset(_ext(cert, x509.ExtendedKeyUsage))
            purpose = "sslserver" if SERVER in ekus else "sslclient"
            by_ca.setdefault((CA_FILES[_cn(cert.issuer)], purpose), []).append(crt)
        for (ca_file, purpose), leaves in by_ca.items():
            # The CA file is taken from the node itself, as the components would.
            openssl_verify(pki_dir / ca_file, leaves, purpose)
            checked += len(leaves)
    return checked


def test_openssl_verifies_every_leaf(version_build):
    _, built = version_build
    assert _openssl_check_tree(built.root) == 3 * 7


def test_openssl_verifies_external_etcd_leaves(external_build):
    _, built = external_build
    assert _openssl_check_tree(built.root) == 3 * 4 + 3 * 3


def test_openssl_rejects_a_leaf_from_another_ca(built, tmp_path):
    pki_dir = built.root / "nodes/cp1/etc/kubernetes/pki"
    result = subprocess.run(
        ["openssl", "verify", "-attime", str(int(NOW.timestamp())), "-CAfile",
         str(pki_dir / "front-proxy-ca.crt"), str(pki_dir / "apiserver.crt")],
        capture_output=True, text=True)
    assert result.returncode != 0


def test_apiserver_sans_cover_each_node_and_no_worker(built):
    for name in ("cp1", "cp2", "cp3"):
        cert = x509.load_pem_x509_certificate(
            node_pki(built.root, name)["apiserver.crt"])
        ips = {str(i) for i in _ext(cert, x509.SubjectAlternativeName)
               .get_values_for_type(x509.IPAddress)}
        assert ADDRESSES[name] in ips
        assert {a for n, a in ADDRESSES.items() if n != name} & ips == set()
    assert built.bundle.apiserver_cert_sans == ("lb.example.com", "192.0.2.10", "10.0.0.100")


def test_local_proxy_adds_loopback_sans(tmp_path):
    from kubeforge.compiler.ir import LoadBalancer
    cluster = make_cluster(loadbalancer=LoadBalancer("local-proxy"))
    built = build(cluster, tmp_path)
    cert = x509.load_pem_x509_certificate(node_pki(built.root, "cp1")["apiserver.crt"])
    san = _ext(cert, x509.SubjectAlternativeName)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert "10.0.0.100" not in {str(i) for i in san.get_values_for_type(x509.IPAddress)}


@pytest.mark.parametrize("algorithm,header,key_type", [
    ("rsa-2048", _pem_begin("RSA"), rsa.RSAPublicKey),
    ("ecdsa-p256", _pem_begin("EC"), ec.EllipticCurvePublicKey),
])
def test_key_algorithm_and_pem_encoding(tmp_path, algorithm, header, key_type):
    built = build(make_cluster(algorithm=algorithm), tmp_path)
    files = node_pki(built.root, "cp1")
    for rel, content in files.items():
        if rel.endswith(".key") and rel != "sa.key":
            assert content.startswith(header), rel
        if rel.endswith(".crt"):
            public = x509.load_pem_x509_certificate(content).public_key()
            assert isinstance(public, key_type)
            if key_type is rsa.RSAPublicKey:
                assert public.key_size == 2048
    assert files["sa.key"].startswith(header)
    assert files["sa.pub"].startswith(b"-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("algorithm,size,header", [
    ("rsa-3072", 3072, _pem_begin("RSA")),
    ("rsa-4096", 4096, _pem_begin("RSA")),
    ("ecdsa-p384", 384, _pem_begin("EC")),
])
def test_other_algorithms(tmp_path, algorithm, size, header):
    from kubeforge.compiler import pki, pki_store
    from kubeforge.compiler.state import StateDir
    cas = pki_store.ensure_cas(make_cluster(), StateDir(tmp_path / "s"), NOW)
    cert_pem, key_pem = pki.issue_client_cert(cas.ca, "alice", ["dev"], 30, algorithm, NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.public_key().key_size == size
    assert pki.key_matches_algorithm(cert.public_key(), algorithm)
    assert key_pem.startswith(header)
    check_leaf(cert, Expect("kubernetes", "alice", ("dev",), frozenset({CLIENT})), 30)


def test_p384_ca_signs_with_sha384(tmp_path):
    from cryptography.hazmat.primitives import hashes
    from kubeforge.compiler.ir import PkiSettings
    built = build(make_cluster("1.34.4", pki=PkiSettings(algorithm="ecdsa-p384")), tmp_path)
    files = node_pki(built.root, "cp1")
    for rel in ("ca.crt", "apiserver.crt", "etcd/peer.crt"):
        cert = x509.load_pem_x509_certificate(files[rel])
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA384), rel
    assert _openssl_check_tree(built.root) == 3 * 7


def test_unknown_algorithm_is_refused():
    from kubeforge.compiler import pki
    from kubeforge.errors import KubeforgeError
    with pytest.raises(KubeforgeError, match="unsupported pki algorithm"):
        pki.generate_key("dsa-1024")


def test_validity_settings_are_honoured(tmp_path):
    from kubeforge.compiler.ir import PkiSettings
    cluster = make_cluster(pki=PkiSettings(algorithm="ecdsa-p256", ca_validity_days=1000,
                                           cert_validity_days=90))
    built = build(cluster, tmp_path)
    files = node_pki(built.root, "cp2")
    ca = x509.load_pem_x509_certificate(files["ca.crt"])
    leaf = x509.load_pem_x509_certificate(files["apiserver.crt"])
    assert ca.not_valid_after_utc == NOW + dt.timedelta(days=1000)
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(days=90)


def test_ca_cert_hash_matches_openssl_pipeline(built):
    ca_file = built.root / "pki/ca.crt"
    pubkey = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(ca_file)],
                            capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey,
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-hex"], input=der,
                            capture_output=True, check=True, text=False).stdout
    expected = "sha256:" + digest.decode().strip().rsplit(" ", 1)[-1]
    assert built.bundle.ca_cert_hash == expected
    assert built.bundle["ca_cert_hash"] == expected
