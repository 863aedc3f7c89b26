"""Emitter: RBAC manifests and one kubeconfig per declared user.

* ``manifests/01-rbac.yaml``: ServiceAccounts, ClusterRoles, Roles, ClusterRoleBindings and
  RoleBindings, in that order, each sorted by namespace and name. It sorts right after
  ``00-namespaces.yaml`` so the namespaces its objects live in exist when it is applied.
* ``kubeconfigs/users/<name>.conf`` (secret, 0600): a client certificate from the cluster CA
  with CN = user and one O per group, pointing at the control-plane endpoint. The
  certificate is kept in the state directory and reused like every leaf, so recompiling
  does not hand every user a new credential.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubeforge.compiler import pki, pki_store
from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.compiler.emit.kubeconfig import endpoint_url, render_kubeconfig
from kubeforge.compiler.ir import PolicyRule, Program, Role, Subject
from kubeforge.compiler.rbac import RBAC_GROUP, RbacBinding, aggregation_labels
from kubeforge.compiler.rbac_compile import program_bindings
from kubeforge.compiler.state import StateDir

MANIFEST = "manifests/01-rbac.yaml"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeforge"}


def _metadata(name: str, namespace: str | None, labels: dict[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": {**(labels or {}), **MANAGED_BY}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def rule_doc(rule: PolicyRule) -> dict:
    if rule.urls:
        return {"nonResourceURLs": list(rule.urls), "verbs": list(rule.verbs)}
    doc: dict[str, Any] = {"apiGroups": list(rule.api_groups), "resources": list(rule.resources),
                           "verbs": list(rule.verbs)}
    if rule.resource_names:
        doc["resourceNames"] = list(rule.resource_names)
    return doc


def role_doc(role: Role) -> dict:
    doc: dict[str, Any] = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole" if role.cluster_scoped else "Role",
        "metadata": _metadata(role.name, role.namespace, aggregation_labels(role)),
    }
    if role.aggregate_from is not None:
        # The aggregation controller owns `rules` of an aggregated role; leaving them out
        # keeps `kubectl apply` from fighting it. An empty selector selects every role.
        doc["aggregationRule"] = {"clusterRoleSelectors": [s.doc() for s in role.aggregate_from]}
    else:
        doc["rules"] = [rule_doc(r) for r in role.rules]
    return doc


def binding_doc(binding: RbacBinding) -> dict:
    subjects = []
    for s in binding.subjects:
        if s.kind == "ServiceAccount":
            subjects.append({"kind": s.kind, "name": s.name, "namespace": s.namespace})
        else:
            subjects.append({"apiGroup": RBAC_GROUP, "kind": s.kind, "name": s.name})
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": binding.kind,
        "metadata": _metadata(binding.name, binding.namespace),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": binding.role_ref.kind,
                    "name": binding.role_ref.name},
        "subjects": subjects,
    }


def service_account_doc(subject: Subject) -> dict:
    meta = _metadata(subject.name, subject.namespace, dict(subject.labels))
    if subject.annotations:
        meta["annotations"] = dict(subject.annotations)
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    if subject.automount_token is not None:
        doc["automountServiceAccountToken"] = subject.automount_token
    return doc


def manifests(program: Program) -> list[dict]:
    """Every RBAC object of ``program``, in apply order."""
    def key(obj: dict) -> tuple[str, str]:
        return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

    accounts = [service_account_doc(s) for s in program.subjects if s.kind == "ServiceAccount"]
    roles = [role_doc(r) for r in program.roles]
    bindings = [binding_doc(b) for b in program_bindings(program)]
    out: list[dict] = sorted(accounts, key=key)
    for kind in ("ClusterRole", "Role"):
        out += sorted((r for r in roles if r["kind"] == kind), key=key)
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        out += sorted((b for b in bindings if b["kind"] == kind), key=key)
    return out


def render(objects: list[dict]) -> bytes:
    return yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False,
                              explicit_start=True).encode()


def user_spec(subject: Subject) -> pki.LeafSpec:
    return pki.LeafSpec(f"users/{subject.name}", "ca", subject.name, subject.groups,
                        client_auth=True)


def _cluster_ca(ctx: BuildContext) -> tuple[pki.CertificateAuthority, StateDir]:
    bundle = ctx.shared.get("pki")
    if bundle is not None:
        return bundle.cas.ca, bundle.state
    state = StateDir(ctx.state_dir)
    return pki_store.ensure_cas(ctx.cluster, state, ctx.now).ca, state


def emit(ctx: BuildContext) -> list[Artifact]:
    program = ctx.program
    objects = manifests(program)
    artifacts = [Artifact(MANIFEST, render(objects))] if objects else []
    users = [s for s in program.subjects if s.kind == "User"]
    if not users:
        return artifacts
    cluster = ctx.cluster
    ca, state = _cluster_ca(ctx)
    for user in sorted(users, key=lambda s: s.name):
        validity = user.cert_validity_days or cluster.pki.cert_validity_days
        leaf = pki_store.ensure_leaf(state, f"kubeconfigs/users/{user.name}", user_spec(user),
                                     ca, cluster.pki.algorithm, validity, ctx.now)
        conf = render_kubeconfig(cluster.name, endpoint_url(cluster), ca.cert_pem, user.name,
                                 leaf.cert_pem, leaf.key_pem)
        artifacts.append(Artifact(f"kubeconfigs/users/{user.name}.conf", conf, 0o600,
                                  secret=True))
    return artifacts
