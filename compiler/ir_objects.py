"""IR of the other namespaced objects: services, config, storage, traffic, namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kubeforge.compiler.ir_common import KV, LabelSelector, Patch
from kubeforge.dsl.diagnostics import NO_SPAN, Span



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
    patches: tuple[Patch, ...] = ()
    labels_given: bool = False  # `labels` was written (else the workload's labels are used)


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
    labels: KV = ()
    annotations: KV = ()
    patches: tuple[Patch, ...] = ()


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
    labels: KV = ()
    annotations: KV = ()
    patches: tuple[Patch, ...] = ()


@dataclass(frozen=True)
class Pvc:
    name: str
    namespace: str
    size: str
    span: Span
    storage_class: Optional[str] = None
    access: str = "ReadWriteOnce"
    labels: KV = ()
    annotations: KV = ()
    patches: tuple[Patch, ...] = ()


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
    labels: KV = ()
    annotations: KV = ()
    patches: tuple[Patch, ...] = ()


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
    patches: tuple[Patch, ...] = ()


@dataclass(frozen=True)
class NetPeer:
    kind: str  # workload | pods | namespace | namespaces | cidr | any
    value: Optional[str] = None  # workload name, namespace name or CIDR
    span: Span = NO_SPAN
    selector: Optional[LabelSelector] = None  # pods: the pod selector; namespaces: the namespace one
    namespace: Optional[str] = None  # workload/pods in another namespace, by name
    namespace_selector: Optional[LabelSelector] = None  # ... or by label
    excepts: tuple[str, ...] = ()  # cidr: ipBlock.except


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
    pods_selector: Optional[LabelSelector] = None  # `pods { ... }`
    labels: KV = ()
    annotations: KV = ()
    patches: tuple[Patch, ...] = ()


@dataclass(frozen=True)
class Namespace:
    name: str
    span: Span
    labels: KV = ()
    annotations: KV = ()
    quota: KV = ()
    patches: tuple[Patch, ...] = ()
