"""RBAC lint: grants that are broader, riskier or emptier than they look.

Every finding is a warning (``--strict`` promotes them to errors in load_program). A role
that is bound but neither defined nor built in is an error of the lowering's checks (E102,
with a did-you-mean), so the lint does not report it again.

* W201 wildcard verb ``*`` (also grants escalate, bind, impersonate and future verbs)
* W202 wildcard resource, API group or non-resource URL
* W203 ``cluster-admin`` bound to a service account (its pods own the cluster, or the namespace)
* W204 ``cluster-admin`` bound to a group everyone is in (system:authenticated, ...)
* W205 read access (get/list/watch) to secrets cluster-wide
* W206 ``escalate``/``bind``/``impersonate`` grants (ways around RBAC's own limits)
* W207 a role defined but never bound nor aggregated
* W208 ``names`` on verbs that never carry a name (create, list, watch, deletecollection)
* W209 non-resource URLs granted through a RoleBinding (they need a ClusterRoleBinding)
* W210 a clusterrole named like a built-in one (the API server reconciles it back)
"""

from __future__ import annotations

from kubeforge.compiler.ir import Program, Role
from kubeforge.compiler.rbac import AUTHENTICATED, Request, aggregation_labels, rule_allows
from kubeforge.compiler.rbac import selector_matches
from kubeforge.compiler.rbac_compile import ResolvedBind, addon_rbac, authorizer_for, resolve
from kubeforge.compiler.rbac_defaults import builtin_cluster_roles
from kubeforge.dsl.diagnostics import Collector, Diagnostic

RISKY_VERBS = ("escalate", "bind", "impersonate")
NAMELESS_VERBS = ("create", "list", "watch", "deletecollection")
EVERYONE = (AUTHENTICATED, "system:unauthenticated", "system:serviceaccounts")


def lint(program: Program) -> list[Diagnostic]:
    """Every RBAC finding of ``program``, ordered by position."""
    out = Collector()
    for role in (*program.roles, *addon_rbac(program)[0]):
        _lint_role(role, out)
    resolved = list(resolve(program))
    authz = authorizer_for(program)
    for item in resolved:
        _lint_bind(item, authz.role_for(item.binding), out)
    _lint_unbound(program, resolved, out)
    return sorted(out.items, key=lambda d: (d.span, d.code))


def _lint_role(role: Role, out: Collector) -> None:
    what = f"{'clusterrole' if role.cluster_scoped else 'role'} `{role.name}`"
    if role.cluster_scoped and role.name in {r.name for r in builtin_cluster_roles()}:
        out.warning("W210", f"{what} has the name of a built-in ClusterRole", role.span,
                    "the API server restores the built-in rules at start; pick another name")
    for rule in role.rules:
        if "*" in rule.verbs:
            out.warning("W201", f"{what} allows every verb (`*`)", rule.span,
                        "list the verbs; `*` also grants escalate, bind and impersonate")
        wild = [w for w, vals in (("resources", rule.resources), ("API groups", rule.api_groups),
                                  ("URLs", rule.urls)) if "*" in vals]
        if wild:
            out.warning("W202", f"{what} allows all {' and '.join(wild)} (`*`)", rule.span,
                        "name the resources; `*` includes secrets and resources added later")
        risky = [v for v in RISKY_VERBS if v in rule.verbs]
        if risky:
            out.warning("W206", f"{what} grants {', '.join(risky)}", rule.span,
                        "these verbs let a holder exceed its own permissions")
        nameless = [v for v in NAMELESS_VERBS if v in rule.verbs]
        if rule.resource_names and nameless:
            out.warning("W208", f"`names` cannot restrict {', '.join(nameless)} in {what}",
                        rule.span, "such requests carry no name, so this rule never allows them; "
                        "move these verbs to a rule without `names`")


def _lint_bind(item: ResolvedBind, role: Role | None, out: Collector) -> None:
    """Findings about one `bind`; ``role`` is what it grants, with aggregation filled in."""
    bind, subject, binding = item.bind, item.subject, item.binding
    if item.found in ("missing", "wrong-scope"):
        return  # an unknown role (E102 of the lowering's checks) grants nothing to lint
    if bind.role == "cluster-admin" and item.found == "builtin":
        if subject.kind == "ServiceAccount":
            if binding.namespace is None:
                out.warning("W203", f"cluster-admin is bound cluster-wide to service account "
                            f"`{subject.name}`", bind.span, "every pod running as it controls "
                            "the cluster; bind a role with only the verbs it needs")
            else:
                out.warning("W203", f"cluster-admin is bound to service account `{subject.name}` "
                            f"in namespace `{binding.namespace}`", bind.span,
                            "every pod running as it controls that namespace, its secrets and "
                            "its RBAC; bind `edit` or a role with only the verbs it needs")
        if subject.kind == "Group" and subject.name in EVERYONE:
            out.warning("W204", f"cluster-admin is bound to group `{subject.name}`", bind.span,
                        "that group includes every user or service account")
    if binding.namespace is None and role is not None:
        if any(rule_allows(r, Request(v, "secrets")) for r in role.rules
               for v in ("get", "list", "watch")):
            out.warning("W205", f"`{bind.role}` bound cluster-wide reads secrets in every "
                        "namespace", bind.span, "bind it per namespace with `in NAMESPACE`")
    if binding.namespace is not None and role is not None and role.cluster_scoped:
        if any(r.urls for r in role.rules) and item.found != "builtin":
            out.warning("W209", f"the URL rules of `{bind.role}` have no effect through a "
                        "namespaced binding", bind.span, "bind it without `in` to grant URLs")


def _lint_unbound(program: Program, resolved: list[ResolvedBind], out: Collector) -> None:
    used = {(r.binding.namespace if r.binding.role_ref.kind == "Role" else None,
             r.binding.role_ref.name) for r in resolved}
    selectors = [s for r in (*program.roles, *builtin_cluster_roles())
                 for s in r.aggregate_from or ()]
    for role in program.roles:
        if (role.namespace, role.name) in used:
            continue
        labels = aggregation_labels(role)
        if role.cluster_scoped and any(selector_matches(s, labels) for s in selectors):
            continue  # its rules reach users through an aggregated role
        kind = "clusterrole" if role.cluster_scoped else "role"
        out.warning("W207", f"{kind} `{role.name}` is defined but never bound", role.span,
                    "bind it from a user, group or serviceaccount, or remove it")
