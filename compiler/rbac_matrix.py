"""The can-i matrix of a program: its subjects x (verb, resource) per namespace.

The columns are a fixed set of everyday resources plus every resource the file's own rules
name, so a reviewer sees both what the roles were written for and what they leak into. The
scope ``*`` asks cluster-wide (cluster-scoped resources, and namespaced ones across all
namespaces, which only ClusterRoleBindings can grant).
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from kubeforge.compiler.ir import Program
from kubeforge.compiler.rbac import Identity, Request, matrix
from kubeforge.compiler.rbac_compile import (addon_accounts, addon_rbac, authorizer_for,
                                             identity_of)
from kubeforge.compiler.rbac_defaults import api_group_of, is_namespaced

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
NAMESPACED = ("pods", "pods/log", "pods/exec", "deployments", "deployments/scale", "services",
              "configmaps", "secrets", "serviceaccounts", "roles", "rolebindings")
CLUSTER = ("namespaces", "nodes", "clusterroles", "clusterrolebindings")
ALL_NAMESPACES = "*"


def subject_label(kind: str, name: str, namespace: str | None = None) -> str:
    if kind == "ServiceAccount":
        return f"serviceaccount {namespace}/{name}"
    return f"{kind.lower()} {name}"


def identities(program: Program) -> dict[str, Identity]:
    """The file's subjects, then the service accounts its addons run as."""
    out = {subject_label(s.kind, s.name, s.namespace): identity_of(s) for s in program.subjects}
    for namespace, name in addon_accounts(program):
        out[subject_label("ServiceAccount", name, namespace)] = \
            Identity.service_account(namespace, name)
    return out


def columns(program: Program) -> list[tuple[str, str]]:
    """(resource, api group) pairs: the defaults, then those the file's (and its addons')
    rules name."""
    out = [(r, api_group_of(r) or "") for r in (*NAMESPACED, *CLUSTER)]
    for role in (*program.roles, *addon_rbac(program)[0]):
        for rule in role.rules:
            for res in rule.resources:
                if res.startswith("*"):
                    continue
                for group in rule.api_groups:
                    if group != "*" and (res, group) not in out:
                        out.append((res, group))
    return out


def namespaces(program: Program) -> list[str]:
    found = {n.name for n in program.namespaces}
    found |= {r.namespace for r in program.roles if r.namespace}
    found |= {s.namespace for s in program.subjects if s.namespace}
    found |= {b.namespace for s in program.subjects for b in s.bindings if b.namespace}
    found |= {namespace for namespace, _ in addon_accounts(program)}
    return sorted(found)


def column_label(resource: str, group: str) -> str:
    return resource if api_group_of(resource) == group else f"{resource}.{group or 'core'}"


def _request(verb: str, resource: str, group: str, namespace: str) -> Request:
    base, _, sub = resource.partition("/")
    return Request(verb, base, sub, group, namespace)


def program_matrix(program: Program, verbs: Iterable[str] = VERBS) -> dict:
    """``{"verbs": [...], "scopes": {scope: {subject: {resource: [allowed verbs]}}}}``."""
    verbs = tuple(verbs)
    authz = authorizer_for(program)
    who = identities(program)
    scopes: dict[str, dict] = {}
    for scope in [ALL_NAMESPACES, *namespaces(program)]:
        namespace = "" if scope == ALL_NAMESPACES else scope
        cols = [(r, g) for r, g in columns(program) if namespace == "" or is_namespaced(r)]
        requests = [_request(v, r, g, namespace) for r, g in cols for v in verbs]
        answers = matrix(authz, who, requests)
        table: dict[str, dict[str, list[str]]] = {}
        for label, row in answers.items():
            cells = iter(row)
            table[label] = {column_label(r, g): [v for v in verbs if next(cells)] for r, g in cols}
        scopes[scope] = table
    return {"verbs": list(verbs), "scopes": scopes}


def to_json(data: dict) -> str:
    """Indented JSON with each verb list on one line, so a golden diff shows whole cells."""
    text = json.dumps(data, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"
