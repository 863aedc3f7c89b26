"""IR of workloads: pods, containers, placement, rollout, autoscaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kubeforge.compiler.ir_common import KV, LabelSelector, ObjectMeta, Patch
from kubeforge.dsl.diagnostics import NO_SPAN, Span



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
    sub_path: Optional[str] = None
    sub_path_expr: Optional[str] = None
    named_only: bool = False  # `mount NAME at PATH`: the source is declared elsewhere in the pod

    @property
    def volume_key(self) -> tuple:
        """What makes two mounts of one name the same pod volume."""
        return (self.source, self.ref, self.size_limit)


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
    supplemental_groups: tuple[int, ...] = ()
    fs_group_change: Optional[str] = None  # Always | OnRootMismatch


@dataclass(frozen=True)
class Hook:
    """A lifecycle handler (preStop / postStart)."""

    event: str  # preStop | postStart
    action: str  # http | exec | sleep
    path: Optional[str] = None
    port: Optional[int | str] = None
    command: tuple[str, ...] = ()
    seconds: Optional[int] = None
    span: Span = NO_SPAN


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
    hooks: tuple[Hook, ...] = ()


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
    meta: ObjectMeta = ObjectMeta()


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
    meta: ObjectMeta = ObjectMeta()


@dataclass(frozen=True)
class Affinity:
    """One pod affinity, pod anti-affinity or node affinity term."""

    kind: str  # pod | anti | node
    selector: LabelSelector
    topology_key: Optional[str] = None  # pod and anti only
    weight: Optional[int] = None  # set: preferred; None: required
    namespaces: tuple[str, ...] = ()
    namespace_selector: Optional[LabelSelector] = None
    span: Span = NO_SPAN
    workload: Optional[str] = None  # `pods NAME`: that workload's pods (its selector)


@dataclass(frozen=True)
class TopologySpread:
    topology_key: str
    max_skew: int = 1
    hard: bool = True  # DoNotSchedule; False: ScheduleAnyway
    min_domains: Optional[int] = None
    selector: Optional[LabelSelector] = None  # None: the workload's own selector
    span: Span = NO_SPAN


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment | StatefulSet | DaemonSet | Job | CronJob | Pod
    name: str
    namespace: str
    span: Span
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    replicas: Optional[int] = None
    labels: KV = ()  # the pods' labels
    annotations: KV = ()  # the pods' annotations
    selector: KV = ()
    selector_expressions: tuple = ()  # SelectorExpr, from `selector { k in ... }`
    object_labels: KV = ()  # the workload object's own labels
    object_annotations: KV = ()
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
    affinities: tuple[Affinity, ...] = ()
    spreads: tuple[TopologySpread, ...] = ()
    pod_security: Optional[Security] = None
    pod_management: Optional[str] = None  # OrderedReady | Parallel (statefulsets)
    patches: tuple[Patch, ...] = ()

    @property
    def label_selector(self) -> LabelSelector:
        return LabelSelector(self.selector, self.selector_expressions)
