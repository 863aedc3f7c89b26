"""Helpers for the cluster tests (kubeadm configs, load balancer, etcd, host preparation).

Clusters are built as IR directly, independent of the language, and compiled by the real
emitter pipeline (``build.EMITTERS`` up to the kubeadm emitter: PKI, kubeconfigs, RBAC and
ours). A module with a unique name rather than conftest.py, so test modules import it
unambiguously.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import ipaddress
import os
import shutil
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubeforge.compiler import build as build_module
from kubeforge.compiler.artifacts import Artifact, BuildContext, write_artifacts
from kubeforge.compiler.ir import (
    Cluster,
    ClusterNode,
    Install,
    LoadBalancer,
    PkiSettings,
    Program,
)
from kubeforge.dsl.diagnostics import NO_SPAN

HERE = Path(__file__).parent
FIXED_STATE = HERE / "fixtures" / "state"
GOLDENS = HERE / "goldens"
VIP = "10.0.0.100"
UPDATE_GOLDENS = os.environ.get("KUBEFORGE_UPDATE_GOLDENS") == "1"


def node(name: str, address: str, *roles: str, **more) -> ClusterNode:
    return ClusterNode(name, ipaddress.ip_address(address), tuple(roles), **more)


CONTROL_PLANES = tuple(node(f"cp{i}", f"10.0.0.1{i}", "control-plane") for i in (1, 2, 3))
WORKERS = tuple(node(f"w{i}", f"10.0.0.2{i}", "worker") for i in (1, 2))
ETCD_NODES = tuple(node(f"etcd{i}", f"10.0.0.3{i}", "etcd") for i in (1, 2, 3))
LB_NODES = tuple(node(f"lb{i}", f"10.0.0.4{i}", "loadbalancer") for i in (1, 2))


def make_cluster(version: str = "1.37.2", *, etcd: str = "stacked",
                 lb_mode: str = "keepalived-haproxy", deploy_as: str = "services",
                 lb_port: int | None = None, nodes=None, **changes) -> Cluster:
    """3 control planes + 2 workers (+ 3 etcd nodes for external etcd) behind a VIP."""
    if nodes is None:
        nodes = CONTROL_PLANES + WORKERS + (ETCD_NODES if etcd == "external" else ())
    dedicated = any(n.is_loadbalancer for n in nodes)
    if lb_port is None:
        lb_port = 8443 if lb_mode == "keepalived-haproxy" and not dedicated else 6443
    vip = ipaddress.ip_address(VIP) if lb_mode in ("keepalived-haproxy", "kube-vip") else None
    endpoint_host = VIP if vip else ("127.0.0.1" if lb_mode == "local-proxy" else "api.lab.internal")
    cluster = Cluster(
        name="lab", version=version, span=NO_SPAN,
        endpoint_host=endpoint_host, endpoint_port=lb_port,
        pod_cidr=ipaddress.ip_network("10.244.0.0/16"),
        service_cidr=ipaddress.ip_network("10.96.0.0/12"), node_cidr=None,
        domain="cluster.local", runtime="containerd", cni="calico", cni_version=None,
        etcd=etcd,
        loadbalancer=LoadBalancer(lb_mode, vip=vip, interface="eth1" if vip else None,
                                  port=lb_port, deploy_as=deploy_as),
        pki=PkiSettings(algorithm="ecdsa-p256", extra_sans=("api.lab.internal",)),
        nodes=tuple(nodes), install=Install("packages"),
    )
    return dataclasses.replace(cluster, **changes)


@dataclasses.dataclass
class Built:
    ctx: BuildContext
    root: Path

    @property
    def cluster(self) -> Cluster:
        return self.ctx.cluster

    def path(self, node: str, host_path: str) -> Path:
        return self.root / "nodes" / node / host_path.lstrip("/")

    def text(self, node: str, host_path: str) -> str:
        return self.path(node, host_path).read_text()

    def artifact(self, rel: str) -> Artifact:
        return next(a for a in self.ctx.artifacts if a.path == rel)

    def node_paths(self, node: str) -> set[str]:
        return {a.host_path for a in self.ctx.artifacts if a.node == node}


def our_emitters() -> tuple[str, ...]:
    """The pipeline's emitters up to and including kubeadm (what our files depend on)."""
    names = build_module.EMITTERS
    return names[:names.index("kubeforge.compiler.emit.kubeadm") + 1]


def compile_cluster(cluster: Cluster, base: Path, state: Path | None = None) -> Built:
    # The real clock: the certificates must be valid for the real etcd, haproxy and curl the
    # tests start. Nothing golden depends on it (token and CA come from the fixed state).
    ctx = BuildContext(program=Program(cluster=cluster), state_dir=state or base / "state",
                       now=dt.datetime.now(dt.UTC))
    for name in our_emitters():
        ctx.artifacts.extend(importlib.import_module(name).emit(ctx))
    root = base / "build" / cluster.name
    write_artifacts(root, ctx.artifacts)
    return Built(ctx, root)


def fixed_state(base: Path) -> Path:
    """A state directory whose bootstrap token and cluster CA key never change, so tokens
    and CA hashes in golden files stay put. The CA key is derived from a fixed seed at run
    time rather than committed: test material only, it signs nothing outside these tests."""
    target = base / "state"
    (target / "pki").mkdir(parents=True)
    shutil.copy(FIXED_STATE / "bootstrap-token", target / "bootstrap-token")
    seed = int.from_bytes(hashlib.sha256(b"kubeforge test cluster CA").digest(), "big")
    key = ec.derive_private_key(seed % _P256_ORDER, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("kubernetes")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (target / "pki" / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (target / "pki" / "ca.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    for p in [target, *target.rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)
    return target


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def check_golden(name: str, actual: str) -> None:
    golden = GOLDENS / name
    if UPDATE_GOLDENS:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    assert golden.exists(), f"missing golden {golden}; run with KUBEFORGE_UPDATE_GOLDENS=1"
    assert actual == golden.read_text(), (
        f"{name} differs from its golden file; if the change is intended, "
        "re-run with KUBEFORGE_UPDATE_GOLDENS=1 and review the diff")


#: The Debian package that provides each binary the tests run.
PACKAGES = {"etcd": "etcd-server", "etcdctl": "etcd-client", "haproxy": "haproxy",
            "keepalived": "keepalived", "systemd-analyze": "systemd"}


def require_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)
    if path is None:
        pytest.skip(f"`{name}` is not installed (apt-get install -y {PACKAGES[name]})")
    return path


def host_interface() -> str:
    """A non-loopback interface of this machine: keepalived -t refuses unknown ones."""
    names = [name for _, name in socket.if_nameindex() if name != "lo"]
    if not names:
        pytest.skip("no non-loopback network interface for keepalived to check against")
    return names[0]


def rebase(value: str, node_root: Path, replacements: dict[str, Path]) -> str:
    """Map absolute host paths in a compiled value onto where the test placed them."""
    for prefix, target in replacements.items():
        if value == prefix or value.startswith(prefix + "/"):
            return str(target) + value[len(prefix):]
    if value.startswith("/etc/"):
        return str(node_root) + value
    return value


def parse_env_file(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip('"')
    return env
