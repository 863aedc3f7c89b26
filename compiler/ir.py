"""The typed intermediate representation: what a kubeforge file means.

Frozen dataclasses and tuples only, so the IR is hashable, comparable and safe to share
between emitters. Every object keeps the span of the statement it came from. The lowering
pass (:mod:`kubeforge.compiler.lower`) builds it; the emitters read it and never the AST.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from kubeforge.dsl.diagnostics import NO_SPAN, Span

KV = tuple[tuple[str, str], ...]  # ordered key/value pairs (labels, annotations, data)

# ============================================================================ cluster


@dataclass(frozen=True)
class NodeTaint:
    key: str
    value: Optional[str]
    effect: str


@dataclass(frozen=True)
class ClusterNode:
    name: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    roles: tuple[str, ...]  # "control-plane", "worker", "etcd", "loadbalancer"
    span: Span = NO_SPAN
    cpus: Optional[int] = None
    memory_mib: Optional[int] = None
    labels: KV = ()
    taints: tuple[NodeTaint, ...] = ()
    ssh_user: Optional[str] = None

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
    vip: Optional[ipaddress.IPv4Address] = None
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
class Cluster:
    name: str
    version: str  # "1.31.2"
    span: Span
    endpoint_host: Optional[str]
    endpoint_port: int
    pod_cidr: ipaddress.IPv4Network
    service_cidr: ipaddress.IPv4Network
    node_cidr: Optional[ipaddress.IPv4Network]
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
        return f"{host}:{self.endpoint_port}"

    @property
    def kubernetes_service_ip(self) -> ipaddress.IPv4Address:
        return self.service_cidr.network_address + 1

    @property
    def dns_service_ip(self) -> ipaddress.IPv4Address:
        return self.service_cidr.network_address + 10


# ============================================================================ workloads


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: Optional[str] = None
    ref_kind: Optional[str] = None  # config | secret | field
    ref_name: Optional[str] = None
    ref_key: Optional[str] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class EnvFrom:
    kind: str  # config | secret
    name: str
    span: Span = NO_SPAN


@dataclass(frozen=True)
class ContainerPort:
    port: int
    name: Optional[str] = None
    protocol: str = "TCP"
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Resources:
    cpu: Optional[str] = None
    memory: Optional[str] = None
    ephemeral: Optional[str] = None
    limit_cpu: Optional[str] = None
    limit_memory: Optional[str] = None
    limit_ephemeral: Optional[str] = None


@dataclass(frozen=True)
class Probe:
    kind: str  # liveness | readiness | startup
    check: str  # http | tcp | exec | grpc
    path: Optional[str] = None
    port: Optional[int | str] = None
    command: tuple[str, ...] = ()
    initial_delay: Optional[int] = None
    period: Optional[int] = None
    timeout: Optional[int] = None
    failure_threshold: Optional[int] = None
    success_threshold: Optional[int] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Mount:
    name: str
    source: str  # config | secret | claim | empty | host | template (statefulset claim)
    ref: Optional[str]
    path: str
    read_only: bool = False
    size_limit: Optional[str] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Security:
    run_as_user: Optional[int] = None
    run_as_group: Optional[int] = None
    fs_group: Optional[int] = None
    run_as_non_root: Optional[bool] = None
    read_only_root: Optional[bool] = None
    privileged: Optional[bool] = None
    allow_privilege_escalation: Optional[bool] = None
    caps_add: tuple[str, ...] = ()
    caps_drop: tuple[str, ...] = ()
    seccomp: Optional[str] = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    env_from: tuple[EnvFrom, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    resources: Resources = Resources()
    probes: tuple[Probe, ...] = ()
    mounts: tuple[Mount, ...] = ()
    security: Optional[Security] = None
    pull_policy: Optional[str] = None
    working_dir: Optional[str] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Rollout:
    strategy: Optional[str] = None  # RollingUpdate | Recreate | OnDelete
    max_surge: Optional[int | str] = None
    max_unavailable: Optional[int | str] = None
    history: Optional[int] = None
    partition: Optional[int] = None
    min_ready_seconds: Optional[int] = None


@dataclass(frozen=True)
class Autoscale:
    min: int
    max: int
    metrics: tuple[tuple[str, int], ...]  # (cpu|memory, percent)
    span: Span = NO_SPAN


@dataclass(frozen=True)
class ClaimTemplate:
    name: str
    size: str
    path: str
    storage_class: Optional[str] = None
    access: str = "ReadWriteOnce"
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Toleration:
    key: str
    value: Optional[str] = None
    effect: Optional[str] = None


@dataclass(frozen=True)
class Disruption:
    field: str  # min_available | max_unavailable
    value: int | str
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment | StatefulSet | DaemonSet | Job | CronJob
    name: str
    namespace: str
    span: Span
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    replicas: Optional[int] = None
    labels: KV = ()
    annotations: KV = ()
    selector: KV = ()
    rollout: Rollout = Rollout()
    autoscale: Optional[Autoscale] = None
    claims: tuple[ClaimTemplate, ...] = ()
    node_selector: KV = ()
    tolerations: tuple[Toleration, ...] = ()
    spread: Optional[str] = None  # hard | soft
    spread_key: str = "kubernetes.io/hostname"
    service_account: Optional[str] = None
    automount_token: Optional[bool] = None
    restart: Optional[str] = None
    completions: Optional[int] = None
    parallelism: Optional[int] = None
    backoff_limit: Optional[int] = None
    ttl_after_finished: Optional[int] = None
    schedule: Optional[str] = None
    concurrency: Optional[str] = None
    disruption: Optional[Disruption] = None
    grace_seconds: Optional[int] = None


# ============================================================================ other objects


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: Optional[str] = None
    target: Optional[int | str] = None
    protocol: str = "TCP"
    node_port: Optional[int] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    target: str
    span: Span
    type: str = "ClusterIP"
    ports: tuple[ServicePort, ...] = ()
    headless: bool = False
    selector: KV = ()
    labels: KV = ()
    annotations: KV = ()
    session_affinity: Optional[str] = None
    external_traffic: Optional[str] = None
    target_span: Span = NO_SPAN


@dataclass(frozen=True)
class ConfigEntry:
    key: str
    value: Optional[str] = None
    file: Optional[str] = None  # path relative to the source file
    span: Span = NO_SPAN


@dataclass(frozen=True)
class ConfigMap:
    name: str
    namespace: str
    entries: tuple[ConfigEntry, ...]
    span: Span


@dataclass(frozen=True)
class SecretEntry:
    key: str
    source: str  # env | file
    ref: str  # variable name or path (resolved against the source file)
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Secret:
    name: str
    namespace: str
    entries: tuple[SecretEntry, ...]
    span: Span
    type: str = "Opaque"


@dataclass(frozen=True)
class Pvc:
    name: str
    namespace: str
    size: str
    span: Span
    storage_class: Optional[str] = None
    access: str = "ReadWriteOnce"


@dataclass(frozen=True)
class StorageClass:
    name: str
    provisioner: str
    span: Span
    reclaim: Optional[str] = None
    binding: Optional[str] = None
    default: bool = False
    expansion: Optional[bool] = None
    parameters: KV = ()


@dataclass(frozen=True)
class IngressRoute:
    host: str
    path: str
    service: str
    port: int | str
    match: str = "Prefix"
    span: Span = NO_SPAN


@dataclass(frozen=True)
class IngressTls:
    hosts: tuple[str, ...]
    secret: str


@dataclass(frozen=True)
class Ingress:
    name: str
    namespace: str
    span: Span
    ingress_class: Optional[str] = None
    routes: tuple[IngressRoute, ...] = ()
    tls: tuple[IngressTls, ...] = ()
    labels: KV = ()
    annotations: KV = ()


@dataclass(frozen=True)
class NetPeer:
    kind: str  # workload | namespace | cidr | any
    value: Optional[str] = None
    span: Span = NO_SPAN


@dataclass(frozen=True)
class NetRule:
    direction: str  # ingress | egress
    peers: tuple[NetPeer, ...]
    ports: tuple[tuple[int | str, str], ...] = ()  # (port, protocol)


@dataclass(frozen=True)
class NetworkPolicy:
    name: str
    namespace: str
    span: Span
    pods: Optional[str] = None  # workload name; None selects every pod
    rules: tuple[NetRule, ...] = ()
    deny: tuple[str, ...] = ()  # directions with no allowed traffic besides the rules
    pods_span: Span = NO_SPAN


@dataclass(frozen=True)
class Namespace:
    name: str
    span: Span
    labels: KV = ()
    annotations: KV = ()
    quota: KV = ()


# ============================================================================ identities and RBAC


@dataclass(frozen=True)
class PolicyRule:
    verbs: tuple[str, ...]
    resources: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Role:
    name: str
    namespace: Optional[str]  # None for a ClusterRole
    rules: tuple[PolicyRule, ...]
    span: Span
    labels: KV = ()
    aggregate_to: tuple[str, ...] = ()
    aggregate_from: KV = ()

    @property
    def cluster_scoped(self) -> bool:
        return self.namespace is None


@dataclass(frozen=True)
class Binding:
    role: str
    namespace: Optional[str]  # None: cluster-wide
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Subject:
    kind: str  # User | Group | ServiceAccount
    name: str
    span: Span
    namespace: Optional[str] = None  # ServiceAccount only
    groups: tuple[str, ...] = ()  # User only
    bindings: tuple[Binding, ...] = ()
    cert_validity_days: Optional[int] = None
    automount_token: Optional[bool] = None


# ============================================================================ the program


@dataclass(frozen=True)
class Program:
    """Everything one kubeforge file (and its imports) declares."""

    cluster: Optional[Cluster]
    namespaces: tuple[Namespace, ...] = ()
    workloads: tuple[Workload, ...] = ()
    services: tuple[Service, ...] = ()
    configs: tuple[ConfigMap, ...] = ()
    secrets: tuple[Secret, ...] = ()
    pvcs: tuple[Pvc, ...] = ()
    storageclasses: tuple[StorageClass, ...] = ()
    ingresses: tuple[Ingress, ...] = ()
    networkpolicies: tuple[NetworkPolicy, ...] = ()
    roles: tuple[Role, ...] = ()
    subjects: tuple[Subject, ...] = ()
    source: str = ""
    base_dir: str = "."
    warnings: tuple = field(default=(), compare=False)
