"""The typed intermediate representation: what a kubeforge file means.

Frozen dataclasses and tuples only, so the IR is hashable, comparable and safe to share
between emitters. Every object keeps the span of the statement it came from. The lowering
pass (:mod:`kubeforge.compiler.lower`) builds it; the emitters read it and never the AST.
The classes live in one module per area (cluster, workloads, other objects, RBAC); this
module holds the whole program and re-exports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from kubeforge.compiler.ir_cluster import *  # noqa: F401,F403
from kubeforge.compiler.ir_cluster import Cluster
from kubeforge.compiler.ir_common import *  # noqa: F401,F403
from kubeforge.compiler.ir_objects import *  # noqa: F401,F403
from kubeforge.compiler.ir_objects import (ConfigMap, Ingress, Namespace, NetworkPolicy, Pvc,
                                           Secret, Service, StorageClass)
from kubeforge.compiler.ir_rbac import *  # noqa: F401,F403
from kubeforge.compiler.ir_rbac import Role, Subject
from kubeforge.compiler.ir_workload import *  # noqa: F401,F403
from kubeforge.compiler.ir_workload import Workload

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
