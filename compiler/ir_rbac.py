"""IR of identities and RBAC: roles, bindings, subjects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kubeforge.compiler.ir_common import KV, LabelSelector
from kubeforge.dsl.diagnostics import NO_SPAN, Span

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
    # None: not aggregated; else the clusterRoleSelectors (an empty one selects every role).
    aggregate_from: Optional[tuple[LabelSelector, ...]] = None

    @property
    def cluster_scoped(self) -> bool:
        return self.namespace is None


@dataclass(frozen=True)
class Binding:
    role: str
    namespace: Optional[str]  # None: cluster-wide (a service account's own namespace unless cluster_wide)
    span: Span = NO_SPAN
    cluster_wide: bool = False  # `bind R cluster-wide`


@dataclass(frozen=True)
class Subject:
    kind: str  # User | Group | ServiceAccount | Token (a bootstrap-style bearer token)
    name: str
    span: Span
    namespace: Optional[str] = None  # ServiceAccount only
    groups: tuple[str, ...] = ()  # User: its certificate's; Token: its auth-extra-groups
    bindings: tuple[Binding, ...] = ()
    cert_validity_days: Optional[int] = None
    automount_token: Optional[bool] = None
    labels: KV = ()  # ServiceAccount only (the object's)
    annotations: KV = ()
    ttl_seconds: Optional[int] = None  # Token only: its expiration, counted from issue
    description: str = ""  # Token only
