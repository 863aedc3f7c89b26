"""IR of the cluster block: nodes, network, load balancer, PKI settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from kubeforge.compiler import hostport
from kubeforge.compiler.ir_common import KV
from kubeforge.dsl.diagnostics import NO_SPAN, Span

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network



@dataclass(frozen=True)
class NodeTaint:
    key: str
    value: Optional[str]
    effect: str


@dataclass(frozen=True)
class ClusterNode:
    name: str
    address: IPAddress  # in the cluster's primary IP family (SSH, etcd, advertiseAddress)
    roles: tuple[str, ...]  # "control-plane", "worker", "etcd", "loadbalancer"
    span: Span = NO_SPAN
    cpus: Optional[int] = None
    memory_mib: Optional[int] = None
    labels: KV = ()
    taints: tuple[NodeTaint, ...] = ()
    ssh_user: Optional[str] = None
    secondary_address: Optional[IPAddress] = None  # dual-stack: the other family's address

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """Primary family first, as the kubelet's --node-ip wants them."""
        return (self.address,) + ((self.secondary_address,) if self.secondary_address else ())

    @property
    def is_control_plane(self) -> bool:
        return "control-plane" in self.roles

    @property
    def is_worker(self) -> bool:
        return "worker" in self.roles

    @property
    def is_etcd(self) -> bool:
        return "etcd" in self.roles

    @property
    def is_loadbalancer(self) -> bool:
        return "loadbalancer" in self.roles


@dataclass(frozen=True)
class LoadBalancer:
    mode: str  # keepalived-haproxy | kube-vip | local-proxy | external
    vip: Optional[IPAddress] = None
    interface: Optional[str] = None
    port: int = 8443  # haproxy front port when co-located with an apiserver on 6443
    router_id: int = 51
    deploy_as: str = "services"  # services | static-pods
    image: Optional[str] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class PkiSettings:
    algorithm: str = "rsa-2048"  # rsa-2048 | rsa-3072 | rsa-4096 | ecdsa-p256
    ca_validity_days: int = 3650
    cert_validity_days: int = 365
    extra_sans: tuple[str, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Install:
    method: str = "packages"  # packages | preinstalled | bundle
    path: Optional[str] = None
    span: Optional[Span] = None  # the `path` clause (or the statement): bundle errors point here


@dataclass(frozen=True)
class EtcdBackup:
    """`backup { ... }`: a snapshot of every etcd member on a systemd timer."""

    schedule: str = "daily"  # a systemd OnCalendar expression
    keep: int = 7  # the newest snapshots kept per member
    dir: str = "/var/backups/etcd"
    span: Span = NO_SPAN


@dataclass(frozen=True)
class StorageAddon:
    """`addon storage local-path { ... }`: a default StorageClass whose volumes
    local-path-provisioner makes as directories on the node that runs the claiming pod."""

    provider: str = "local-path"
    version: str = "v0.0.30"
    path: str = "/opt/local-path-provisioner"  # on every node, where the volumes go
    default: bool = True  # the cluster's default StorageClass
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Cluster:
    name: str
    version: str  # "1.37.2"
    span: Span
    endpoint_host: Optional[str]
    endpoint_port: int
    pod_cidr: IPNetwork  # the primary family's; dual-stack adds a secondary of the other
    service_cidr: IPNetwork
    node_cidr: Optional[IPNetwork]
    domain: str
    runtime: str
    cni: str
    cni_version: Optional[str]
    etcd: str  # stacked | external
    loadbalancer: LoadBalancer
    pki: PkiSettings
    nodes: tuple[ClusterNode, ...]
    install: Install = Install()
    token_ttl_seconds: int = 86400
    feature_gates: tuple[tuple[str, bool], ...] = ()
    os: str = "debian12"
    endpoint_span: Span = NO_SPAN
    cgroups: str = "v2"  # v1: the hosts use cgroup v1, accepted on purpose (see docs)
    hosts: str = "machines"  # containers: the nodes are containers (kernel settings shared)
    cgroups_span: Span = NO_SPAN
    secondary_pod_cidr: Optional[IPNetwork] = None
    secondary_service_cidr: Optional[IPNetwork] = None
    secondary_node_cidr: Optional[IPNetwork] = None
    backup: Optional[EtcdBackup] = None  # None: no scheduled etcd snapshots
    storage: Optional[StorageAddon] = None  # None: no storage addon

    @property
    def pod_cidrs(self) -> tuple[IPNetwork, ...]:
        return (self.pod_cidr,) + ((self.secondary_pod_cidr,) if self.secondary_pod_cidr else ())

    @property
    def service_cidrs(self) -> tuple[IPNetwork, ...]:
        return (self.service_cidr,) + (
            (self.secondary_service_cidr,) if self.secondary_service_cidr else ())

    @property
    def node_cidrs(self) -> tuple[IPNetwork, ...]:
        return tuple(n for n in (self.node_cidr, self.secondary_node_cidr) if n is not None)

    @property
    def ip_families(self) -> tuple[int, ...]:
        """4 and/or 6, primary first: the service network's order (the API server's
        advertise address and every default follow the first service CIDR)."""
        return tuple(n.version for n in self.service_cidrs)

    @property
    def dual_stack(self) -> bool:
        return len(self.ip_families) == 2

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])

    @property
    def control_planes(self) -> tuple[ClusterNode, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)

    @property
    def workers(self) -> tuple[ClusterNode, ...]:
        return tuple(n for n in self.nodes if n.is_worker and not n.is_control_plane)

    @property
    def etcd_nodes(self) -> tuple[ClusterNode, ...]:
        """The members of the etcd cluster: control planes (stacked) or the etcd group."""
        if self.etcd == "external":
            return tuple(n for n in self.nodes if n.is_etcd)
        return self.control_planes

    @property
    def loadbalancer_nodes(self) -> tuple[ClusterNode, ...]:
        return tuple(n for n in self.nodes if n.is_loadbalancer)

    @property
    def first_control_plane(self) -> Optional[ClusterNode]:
        cps = self.control_planes
        return cps[0] if cps else None

    @property
    def endpoint(self) -> str:
        """host:port of the control-plane endpoint (the first control plane when none is set)."""
        host = self.endpoint_host
        if host is None:
            first = self.first_control_plane
            host = str(first.address) if first else "127.0.0.1"
        return hostport.join(host, self.endpoint_port)

    @property
    def endpoint_is_node_local(self) -> bool:
        """local-proxy with a loopback endpoint: every node reaches the API through its own
        proxy, so a node without one (a control plane that has not joined) must reach a
        real API server some other way."""
        return self.loadbalancer.mode == "local-proxy" and hostport.is_loopback(self.endpoint_host)

    @property
    def kubernetes_service_ip(self) -> IPAddress:
        return self.service_cidr.network_address + 1

    @property
    def dns_service_ip(self) -> IPAddress:
        return self.service_cidr.network_address + 10
