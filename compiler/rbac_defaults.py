"""The RBAC objects every cluster has, and the API groups of the well-known resources.

``data/rbac-bootstrap.yaml`` holds the bootstrap policy's user-facing ClusterRoles and
ClusterRoleBindings as the API server of each supported minor creates them (``cluster-admin``,
the aggregated ``admin``/``edit``/``view`` and their ``system:aggregate-to-*`` sources,
``system:basic-user``, ``system:discovery``, ``system:public-info-viewer`` and a few rarely
noticed extras), generated from upstream by ``tests/support/upstream_rbac.py``. A rule or
object marked ``x-oracle-since``/``x-oracle-until`` exists from/up to that minor only. The
bindings kubeadm adds (``kubeadm:cluster-admins``, ...) come from the versions table.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Optional

import yaml

from kubeforge.compiler import versions
from kubeforge.compiler.ir import LabelSelector, PolicyRule, Role
from kubeforge.compiler.lower_rbac import RESOURCE_GROUPS
from kubeforge.compiler.rbac import RbacBinding, RoleRef, SubjectRef
from kubeforge.dsl.diagnostics import NO_SPAN

#: The minor assumed when a file declares no cluster (the oldest kubeforge supports).
DEFAULT_MINOR = versions.OLDEST.minor

#: Well-known resources that live outside namespaces; the API groups of the well-known
#: resources come from the lowering's table, so `allow ... on X` and `can-i ... X` agree.
CLUSTER_SCOPED = frozenset({
    "namespaces", "nodes", "persistentvolumes", "componentstatuses", "ingressclasses",
    "clusterroles", "clusterrolebindings", "storageclasses", "csidrivers", "csinodes",
    "volumeattachments", "certificatesigningrequests", "customresourcedefinitions",
    "priorityclasses", "runtimeclasses", "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations", "subjectaccessreviews", "selfsubjectaccessreviews",
    "selfsubjectrulesreviews", "tokenreviews", "selfsubjectreviews",
})


def api_group_of(resource: str) -> Optional[str]:
    """The API group of a well-known resource (`pods/log` -> ""), None when unknown."""
    return RESOURCE_GROUPS.get(resource.split("/", 1)[0])


def is_namespaced(resource: str) -> bool:
    """Whether a resource lives in namespaces; unknown ones are assumed to (CRDs mostly do)."""
    return resource.split("/", 1)[0] not in CLUSTER_SCOPED


#: libyaml when present: the pure-Python loader took most of `check`'s time reading the two
#: data files below (tests/rbac/test_defaults_data.py holds both loaders to the same result).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _data(name: str) -> str:
    return resources.files("kubeforge.compiler").joinpath(f"data/{name}").read_text()


@functools.lru_cache(maxsize=None)
def _documents() -> tuple[dict, ...]:
    docs = yaml.load_all(_data("rbac-bootstrap.yaml"), Loader=_Loader)  # noqa: S506 - safe
    return tuple(d for d in docs if d)


def _minor(version: Optional[str]) -> int:
    if not version:
        return DEFAULT_MINOR
    parts = version.lstrip("v").split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else DEFAULT_MINOR


def _rule(data: dict) -> PolicyRule:
    return PolicyRule(
        verbs=tuple(data.get("verbs") or ()),
        resources=tuple(data.get("resources") or ()),
        api_groups=tuple(data.get("apiGroups") or ()),
        resource_names=tuple(data.get("resourceNames") or ()),
        urls=tuple(data.get("nonResourceURLs") or ()),
    )


def _exists(item: dict, minor: int) -> bool:
    """Whether a rule or object marked ``x-oracle-since``/``-until`` exists in ``minor``."""
    since, until = item.get("x-oracle-since"), item.get("x-oracle-until")
    return (since is None or minor >= _minor(f"{since}.0")) and \
        (until is None or minor <= _minor(f"{until}.0"))


@functools.lru_cache(maxsize=None)
def builtin_cluster_roles(version: Optional[str] = None) -> tuple[Role, ...]:
    """The default user-facing ClusterRoles as of Kubernetes ``version`` (aggregated ones
    unfilled); :func:`system_cluster_roles` has the other system roles."""
    minor = _minor(version)
    out = []
    for doc in _documents():
        if doc["kind"] != "ClusterRole" or not _exists(doc, minor):
            continue
        rule = doc.get("aggregationRule")
        match = None
        if rule is not None:
            match = tuple(LabelSelector(tuple(sorted((s.get("matchLabels") or {}).items())))
                          for s in rule.get("clusterRoleSelectors") or ())
        rules = tuple(_rule(r) for r in doc.get("rules") or () if _exists(r, minor))
        labels = tuple(sorted((doc["metadata"].get("labels") or {}).items()))
        out.append(Role(doc["metadata"]["name"], None, rules, NO_SPAN, labels,
                        aggregate_from=match))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def _system_documents() -> tuple[dict, ...]:
    doc = yaml.load(_data("rbac-system-roles.yaml"), Loader=_Loader)  # noqa: S506 - safe
    return tuple(doc["roles"])


@functools.lru_cache(maxsize=None)
def system_cluster_roles(version: Optional[str] = None) -> tuple[Role, ...]:
    """The other built-in `system:` ClusterRoles whose rules kubeforge knows."""
    minor = _minor(version)
    return tuple(Role(d["name"], None, tuple(_rule(r) for r in d["rules"]), NO_SPAN)
                 for d in _system_documents()
                 if d["rules"] != "unmodelled" and minor >= _minor(str(d.get("since", "1.0"))))


@functools.lru_cache(maxsize=None)
def system_role_names(version: Optional[str] = None) -> frozenset[str]:
    """Every built-in `system:` ClusterRole of ``version`` (rules known or not)."""
    minor = _minor(version)
    names = {r.name for r in builtin_cluster_roles(version) if r.name.startswith("system:")}
    names |= {d["name"] for d in _system_documents()
              if minor >= _minor(str(d.get("since", "1.0")))}
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def builtin_bindings(version: Optional[str] = None) -> tuple[RbacBinding, ...]:
    """The default ClusterRoleBindings of the API server (system:masters -> cluster-admin,
    ...) and of kubeadm (kubeadm:cluster-admins -> cluster-admin, ...) as of ``version``."""
    minor = _minor(version)
    out = []
    for doc in _documents():
        if doc["kind"] != "ClusterRoleBinding" or not _exists(doc, minor):
            continue
        subjects = tuple(SubjectRef(s["kind"], s["name"], s.get("namespace"))
                         for s in doc.get("subjects") or ())
        ref = doc["roleRef"]
        out.append(RbacBinding(doc["metadata"]["name"], None, RoleRef(ref["kind"], ref["name"]),
                               subjects, builtin=True))
    for name, role, kind, subject in versions.kubeadm_bindings(version):
        out.append(RbacBinding(name, None, RoleRef("ClusterRole", role),
                               (SubjectRef(kind, subject),), builtin=True))
    return tuple(out)

