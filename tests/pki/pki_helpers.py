"""Helpers for the PKI tests: a Cluster IR built directly (independent of the language)
and a function that runs the pki + kubeconfig emitters and writes the build. A module with a
unique name rather than conftest.py, so test modules can import it unambiguously."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from pathlib import Path

from kubeforge.compiler.artifacts import BuildContext, write_artifacts
from kubeforge.compiler.emit import kubeconfig as kubeconfig_emitter
from kubeforge.compiler.emit import pki as pki_emitter
from kubeforge.compiler.ir import Cluster, ClusterNode, LoadBalancer, PkiSettings, Program
from kubeforge.dsl.diagnostics import NO_SPAN

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
ENDPOINT_HOST = "api.lab.internal"
VIP = "10.0.0.100"
EXTRA_SANS = ("lb.example.com", "192.0.2.10")


def node(name: str, address: str, *roles: str) -> ClusterNode:
    return ClusterNode(name, ipaddress.ip_address(address), tuple(roles))


STACKED_NODES = (
    node("cp1", "10.0.0.11", "control-plane"),
    node("cp2", "10.0.0.12", "control-plane"),
    node("cp3", "10.0.0.13", "control-plane"),
    node("w1", "10.0.0.21", "worker"),
)

EXTERNAL_NODES = STACKED_NODES + (
    node("etcd1", "10.0.0.31", "etcd"),
    node("etcd2", "10.0.0.32", "etcd"),
    node("etcd3", "10.0.0.33", "etcd"),
)


def make_cluster(version: str = "1.37.2", *, etcd: str = "stacked",
                 algorithm: str = "ecdsa-p256", nodes=None, **changes) -> Cluster:
    cluster = Cluster(
        name="lab", version=version, span=NO_SPAN,
        endpoint_host=ENDPOINT_HOST, endpoint_port=6443,
        pod_cidr=ipaddress.ip_network("10.244.0.0/16"),
        service_cidr=ipaddress.ip_network("10.96.0.0/12"), node_cidr=None,
        domain="cluster.local", runtime="containerd", cni="calico", cni_version=None,
        etcd=etcd,
        loadbalancer=LoadBalancer("keepalived-haproxy", vip=ipaddress.ip_address(VIP),
                                  interface="eth1"),
        pki=PkiSettings(algorithm=algorithm, extra_sans=EXTRA_SANS),
        nodes=nodes or (EXTERNAL_NODES if etcd == "external" else STACKED_NODES),
    )
    return dataclasses.replace(cluster, **changes)


@dataclasses.dataclass
class Built:
    ctx: BuildContext
    root: Path
    state: Path

    @property
    def bundle(self):
        return self.ctx.shared["pki"]

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def files(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def build(cluster: Cluster, base: Path, now: dt.datetime = NOW) -> Built:
    """Run the PKI and kubeconfig emitters as the compile pipeline does and write the tree."""
    state, root = base / "state", base / "build" / cluster.name
    ctx = BuildContext(program=Program(cluster=cluster), state_dir=state, now=now)
    for emitter in (pki_emitter, kubeconfig_emitter):
        ctx.artifacts.extend(emitter.emit(ctx))
    write_artifacts(root, ctx.artifacts)
    return Built(ctx, root, state)


def state_files(state: Path) -> dict[str, bytes]:
    return {p.relative_to(state).as_posix(): p.read_bytes()
            for p in sorted(state.rglob("*")) if p.is_file()}
