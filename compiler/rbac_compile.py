"""A program's identities and roles as Kubernetes RBAC objects, and its authorizer.

One ``bind`` statement becomes one binding, so every binding has a source span and a
reviewer can trace each grant to a line. The kind of binding follows the scope:

* ``bind R in NS``: a RoleBinding in NS, to Role R of NS if the file defines one, else to
  ClusterRole R (user-defined or built-in), scoped to NS by the RoleBinding;
* ``bind R`` of a user or group: a ClusterRoleBinding to ClusterRole R;
* ``bind R`` of a service account: a RoleBinding in the account's own namespace;
* ``bind R cluster-wide`` (any subject): a ClusterRoleBinding to ClusterRole R.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from kubeforge.compiler import tokens
from kubeforge.compiler.ir import Binding, Program, Role, Subject
from kubeforge.compiler.rbac import Authorizer, Identity, RbacBinding, RoleRef, SubjectRef
from kubeforge.compiler.rbac_defaults import (builtin_bindings, builtin_cluster_roles,
                                              system_cluster_roles, system_role_names)

PREFIX = "kubeforge"


@dataclass(frozen=True)
class ResolvedBind:
    """A `bind` statement with the binding it compiles to and what its role turned out to be."""

    subject: Subject
    bind: Binding
    binding: RbacBinding
    found: str  # "role" | "clusterrole" | "builtin" | "missing" | "wrong-scope"


def version_of(program: Program) -> Optional[str]:
    return program.cluster.version if program.cluster else None


def subject_ref(subject: Subject) -> SubjectRef:
    if subject.kind == "ServiceAccount":
        return SubjectRef("ServiceAccount", subject.name, subject.namespace)
    if subject.kind == "Token":  # its user name is no file's to bind: its own group is
        return SubjectRef("Group", tokens.own_group(subject.name))
    return SubjectRef(subject.kind, subject.name)


def identity_of(subject: Subject) -> Identity:
    """Who the authorizer sees when this subject's credentials are used.

    A declared group has no credentials of its own; it is evaluated as an otherwise unknown
    member of that group.
    """
    if subject.kind == "ServiceAccount":
        return Identity.service_account(subject.namespace or "default", subject.name)
    if subject.kind == "Group":
        return Identity.user(f"member-of:{subject.name}", (subject.name,))
    if subject.kind == "Token":
        return tokens.identity(subject)
    return Identity.user(subject.name, subject.groups)


def binding_name(subject: Subject, role: str) -> str:
    if subject.kind == "ServiceAccount":
        return f"{PREFIX}:serviceaccount:{subject.namespace}:{subject.name}:{role}"
    return f"{PREFIX}:{subject.kind.lower()}:{subject.name}:{role}"


def resolve(program: Program) -> Iterator[ResolvedBind]:
    """Every `bind` of every subject, resolved against the file's and the built-in roles."""
    cluster_roles = {r.name for r in program.roles if r.cluster_scoped}
    builtin = {r.name for r in builtin_cluster_roles()} | system_role_names(version_of(program))
    ns_roles = {(r.namespace, r.name) for r in program.roles if not r.cluster_scoped}
    seen: set[tuple[str, Optional[str], str]] = set()
    for subject in program.subjects:
        for bind in subject.bindings:
            namespace = bind.namespace
            if namespace is None and subject.kind == "ServiceAccount" and not bind.cluster_wide:
                namespace = subject.namespace
            if namespace is not None and (namespace, bind.role) in ns_roles:
                ref, found = RoleRef("Role", bind.role), "role"
            elif bind.role in cluster_roles:
                ref, found = RoleRef("ClusterRole", bind.role), "clusterrole"
            elif bind.role in builtin:
                ref, found = RoleRef("ClusterRole", bind.role), "builtin"
            elif any(name == bind.role for _, name in ns_roles):
                ref, found = RoleRef("ClusterRole", bind.role), "wrong-scope"
            else:
                ref, found = RoleRef("ClusterRole", bind.role), "missing"
            name = binding_name(subject, bind.role)
            if (name, namespace, ref.kind) in seen:
                continue  # the same bind written twice grants nothing more
            seen.add((name, namespace, ref.kind))
            binding = RbacBinding(name, namespace, ref, (subject_ref(subject),), bind.span)
            yield ResolvedBind(subject, bind, binding, found)


def program_bindings(program: Program) -> tuple[RbacBinding, ...]:
    return tuple(r.binding for r in resolve(program))


def addon_rbac(program: Program) -> tuple[tuple[Role, ...], tuple[RbacBinding, ...]]:
    """The roles and bindings the declared addons bring (their own manifests apply them)."""
    storage = program.cluster.storage if program.cluster else None
    if storage is None:
        return (), ()
    from kubeforge.compiler import addon_storage

    return addon_storage.roles(storage), addon_storage.bindings(storage)


def addon_accounts(program: Program) -> tuple[tuple[str, str], ...]:
    """(namespace, name) of every service account an addon runs as."""
    storage = program.cluster.storage if program.cluster else None
    if storage is None:
        return ()
    from kubeforge.compiler import addon_storage

    return ((addon_storage.NAMESPACE, addon_storage.SERVICE_ACCOUNT),)


def authorizer_for(program: Program, *, defaults: bool = True) -> Authorizer:
    """The authorizer of the cluster this program describes (with the bootstrap policy and
    what its addons bring)."""
    addon_roles, addon_bindings = addon_rbac(program)
    roles: list[Role] = [*program.roles, *addon_roles]
    bindings = [*program_bindings(program), *addon_bindings]
    if defaults:
        defined = {r.name for r in program.roles if r.cluster_scoped}
        # A file's clusterrole of a built-in name replaces it, as `kubectl apply` would.
        roles += [r for r in (*builtin_cluster_roles(version_of(program)),
                              *system_cluster_roles(version_of(program))) if r.name not in defined]
        bindings += builtin_bindings(version_of(program))
    return Authorizer.build(roles, bindings)
