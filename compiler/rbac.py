"""An offline RBAC authorizer with the semantics of kube-apiserver's.

The matching rules mirror ``plugin/pkg/auth/authorizer/rbac`` (``rbac.go`` and
``rbacv1helpers``) so that ``kubeforge rbac can-i`` answers what the cluster will answer:

* a rule matches a resource request when verb, API group, resource (``*``, ``res/sub``,
  ``*/sub``) and resource name all match; an empty ``resourceNames`` list matches any name,
  a non-empty one never matches a request without a name (create, list, watch,
  deletecollection carry none);
* a non-resource request matches ``nonResourceURLs`` exactly, by ``*`` or by a prefix ending
  in ``*``;
* ClusterRoleBindings are consulted for every request; RoleBindings only for requests in
  their namespace, and a RoleBinding to a ClusterRole grants its rules in that namespace only;
* a ServiceAccount subject matches the username ``system:serviceaccount:<ns>:<name>``.

Aggregated ClusterRoles get their rules the way the aggregation controller fills them: the
union of the rules of every other ClusterRole matching a selector, iterated to the least fixed
point from empty rules (``view`` feeds ``edit`` feeds ``admin``; a cycle of aggregated roles
grants nothing that no plain role brings in).

Identities follow kube-apiserver's impersonation (``kubectl --as``, see :func:`impersonate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from kubeforge.compiler import values as V
from kubeforge.compiler.ir import LabelSelector, PolicyRule, Role
from kubeforge.dsl.diagnostics import NO_SPAN, Span

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
ALL_SERVICEACCOUNTS = "system:serviceaccounts"
SA_USER_PREFIX = "system:serviceaccount:"


# ============================================================================ objects


@dataclass(frozen=True, order=True)
class SubjectRef:
    """One entry of a binding's ``subjects``."""

    kind: str  # User | Group | ServiceAccount
    name: str
    namespace: Optional[str] = None  # ServiceAccount only

    def __str__(self) -> str:
        if self.kind == "ServiceAccount":
            return f"ServiceAccount {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class RoleRef:
    kind: str  # Role | ClusterRole
    name: str


@dataclass(frozen=True)
class RbacBinding:
    """A RoleBinding (namespace set) or ClusterRoleBinding (namespace None)."""

    name: str
    namespace: Optional[str]
    role_ref: RoleRef
    subjects: tuple[SubjectRef, ...]
    span: Span = NO_SPAN
    builtin: bool = False  # one of the bootstrap bindings every cluster has

    @property
    def kind(self) -> str:
        return "ClusterRoleBinding" if self.namespace is None else "RoleBinding"

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{where}"


@dataclass(frozen=True)
class Identity:
    """An authenticated user as the authorizer sees it: a name and its groups."""

    name: str
    groups: tuple[str, ...] = ()

    @classmethod
    def user(cls, name: str, groups: Iterable[str] = ()) -> "Identity":
        """A user authenticated by certificate (CN = name, O = groups)."""
        return impersonate(name, tuple(groups))

    @classmethod
    def service_account(cls, namespace: str, name: str) -> "Identity":
        """What the service-account token authenticator reports for a pod's token."""
        return cls(f"{SA_USER_PREFIX}{namespace}:{name}",
                   (*service_account_groups(namespace), AUTHENTICATED))


def split_service_account(username: str) -> Optional[tuple[str, str]]:
    """(namespace, name) when ``username`` is a service account's, as upstream's
    ``serviceaccount.SplitUsername`` decides: exactly two valid parts after the prefix."""
    if not username.startswith(SA_USER_PREFIX):
        return None
    parts = username[len(SA_USER_PREFIX):].split(":")
    if len(parts) != 2:
        return None
    namespace, name = parts
    if not V.is_dns_label(namespace) or not V.is_dns_subdomain(name):
        return None
    return namespace, name


def service_account_groups(namespace: str) -> tuple[str, str]:
    return ALL_SERVICEACCOUNTS, f"{ALL_SERVICEACCOUNTS}:{namespace}"


def impersonate(user: str, groups: Optional[tuple[str, ...]]) -> "Identity":
    """The user info kube-apiserver builds for ``kubectl --as USER [--as-group G]...``.

    Mirrors the impersonation filter: a service-account name brings its account's groups
    only when no group is given; ``system:authenticated`` is added unless the user is
    ``system:anonymous`` or a given group is ``system:authenticated`` or
    ``system:unauthenticated``; ``system:anonymous`` gets ``system:unauthenticated``
    unless given. ``groups`` None means none were given.
    """
    given = tuple(groups or ())
    names = list(given)
    if split_service_account(user) is not None and not given:
        names = list(service_account_groups(split_service_account(user)[0]))
    if user != ANONYMOUS:
        if not any(g in (AUTHENTICATED, UNAUTHENTICATED) for g in names):
            names.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in names:
        names.append(UNAUTHENTICATED)
    return Identity(user, _unique(names))


@dataclass(frozen=True)
class Request:
    """The attributes the authorizer decides on.

    A request with ``path`` set is a non-resource request (``GET /healthz``). An empty
    ``namespace`` is a cluster-scoped request or one across all namespaces.
    """

    verb: str
    resource: str = ""
    subresource: str = ""
    api_group: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return not self.path

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        if not self.is_resource:
            return f"{self.verb} {self.path}"
        group = f".{self.api_group}" if self.api_group else ""
        text = f"{self.verb} {self.resource}{group}"
        text += f"/{self.subresource}" if self.subresource else ""
        text += f" named {self.name}" if self.name else ""
        return text + (f" in namespace {self.namespace}" if self.namespace else " cluster-wide")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    request: Request
    binding: Optional[RbacBinding] = None
    role: Optional[Role] = None
    rule: Optional[PolicyRule] = None

    @property
    def reason(self) -> str:
        if not self.allowed:
            return f"no RBAC rule allows {self.request}"
        assert self.binding and self.role and self.rule
        kind = "ClusterRole" if self.role.cluster_scoped else "Role"
        return f"allowed by {self.binding} -> {kind} {self.role.name}: {describe_rule(self.rule)}"


@dataclass(frozen=True)
class Grant:
    """One way a subject of a binding is allowed a request (an answer of who-can)."""

    subject: SubjectRef
    binding: RbacBinding
    role: Role
    rule: PolicyRule


# ============================================================================ rule matching


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    return any(v == "*" or v == verb for v in rule.verbs)


def api_group_matches(rule: PolicyRule, group: str) -> bool:
    return any(g == "*" or g == group for g in rule.api_groups)


def resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    for res in rule.resources:
        if res == "*" or res == combined:
            return True
        # `*/log` matches the log subresource of every resource, but only a subresource.
        if subresource and res == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    # An empty list allows every name; a request without a name (create, list, ...) can
    # only be allowed by a rule without resourceNames.
    return not rule.resource_names or name in rule.resource_names


def url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule.urls:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(rule: PolicyRule, req: Request) -> bool:
    if req.is_resource:
        return (verb_matches(rule, req.verb)
                and api_group_matches(rule, req.api_group)
                and resource_matches(rule, req.combined_resource, req.subresource)
                and resource_name_matches(rule, req.name))
    return verb_matches(rule, req.verb) and url_matches(rule, req.path)


def describe_rule(rule: PolicyRule) -> str:
    verbs = " ".join(rule.verbs)
    if rule.urls:
        return f"allow {verbs} on url {' '.join(rule.urls)}"
    groups = " ".join(f'"{g}"' for g in rule.api_groups)
    text = f"allow {verbs} on {' '.join(rule.resources)} group {groups}"
    if rule.resource_names:
        text += " names " + " ".join(f'"{n}"' for n in rule.resource_names)
    return text


# ============================================================================ aggregation


def aggregation_labels(role: Role) -> dict[str, str]:
    """The role's labels, including those its `aggregate_to` words stand for."""
    labels = dict(role.labels)
    for target in role.aggregate_to:
        labels[f"{RBAC_GROUP}/aggregate-to-{target}"] = "true"
    return labels


def selector_matches(selector: LabelSelector, labels: dict[str, str]) -> bool:
    return selector.matches(labels)


def aggregate(cluster_roles: Iterable[Role]) -> dict[str, Role]:
    """Fill every aggregated ClusterRole's rules as the aggregation controller would.

    The controller replaces an aggregated role's rules with the de-duplicated union of the
    rules of every *other* ClusterRole each of its selectors matches (selector by selector,
    roles in name order), and re-runs when a source changes. Aggregated roles start with no
    rules (the controller owns them, and the emitted objects carry none), so iterating gives
    the least fixed point: a cycle of aggregated roles cannot feed itself.
    """
    roles = {r.name: (_with_rules(r, ()) if r.aggregate_from is not None else r)
             for r in cluster_roles}
    labels = {r.name: aggregation_labels(r) for r in roles.values()}
    # Each round can only add rules and the union is bounded, so this terminates; the bound
    # is a guard, not a cut-off (it is never reached).
    for _ in range(len(roles) * max(1, sum(len(r.rules) for r in roles.values())) + 2):
        changed = False
        for name in sorted(roles):
            role = roles[name]
            if role.aggregate_from is None:
                continue
            rules: list[PolicyRule] = []
            for selector in role.aggregate_from:
                for other in sorted(roles):
                    if other != name and selector.matches(labels[other]):
                        rules.extend(r for r in roles[other].rules if r not in rules)
            if tuple(rules) != role.rules:
                roles[name] = _with_rules(role, tuple(rules))
                changed = True
        if not changed:
            break
    return roles


def _with_rules(role: Role, rules: tuple[PolicyRule, ...]) -> Role:
    return Role(role.name, role.namespace, rules, role.span, role.labels, role.aggregate_to,
                role.aggregate_from)


# ============================================================================ the authorizer


@dataclass(frozen=True)
class Authorizer:
    """Decides requests against a fixed set of roles and bindings (see :meth:`build`)."""

    cluster_roles: dict[str, Role]  # aggregation already filled in
    namespaced_roles: dict[tuple[str, str], Role]
    bindings: tuple[RbacBinding, ...]

    @classmethod
    def build(cls, roles: Iterable[Role], bindings: Iterable[RbacBinding]) -> "Authorizer":
        roles = tuple(roles)
        # The API server's listers give no order; sorting makes reasons reproducible.
        return cls(aggregate(r for r in roles if r.cluster_scoped),
                   {(r.namespace, r.name): r for r in roles if not r.cluster_scoped},
                   tuple(sorted(bindings, key=lambda b: (b.namespace or "", b.name))))

    def role_for(self, binding: RbacBinding) -> Optional[Role]:
        """The role a binding references; None when it dangles (it then grants nothing)."""
        if binding.role_ref.kind == "ClusterRole":
            return self.cluster_roles.get(binding.role_ref.name)
        if binding.namespace is None:
            return None  # a ClusterRoleBinding cannot reference a Role
        return self.namespaced_roles.get((binding.namespace, binding.role_ref.name))

    def applicable(self, namespace: str) -> Iterator[RbacBinding]:
        """Bindings consulted for a request in ``namespace``: CRBs first, then its RBs."""
        yield from (b for b in self.bindings if b.namespace is None)
        if namespace:
            yield from (b for b in self.bindings if b.namespace == namespace)

    def can_i(self, who: Identity, req: Request) -> Decision:
        for binding in self.applicable(req.namespace):
            if not any(applies_to(who, s, binding.namespace or "") for s in binding.subjects):
                continue
            role = self.role_for(binding)
            for rule in role.rules if role else ():
                if rule_allows(rule, req):
                    return Decision(True, req, binding, role, rule)
        return Decision(False, req)

    def who_can(self, req: Request) -> list[Grant]:
        """Every binding subject allowed ``req``, with the first rule that allows it."""
        grants: list[Grant] = []
        for binding in self.applicable(req.namespace):
            role = self.role_for(binding)
            rule = next((r for r in (role.rules if role else ()) if rule_allows(r, req)), None)
            if role is None or rule is None:
                continue
            grants.extend(Grant(s, binding, role, rule) for s in binding.subjects)
        return grants


def applies_to(who: Identity, subject: SubjectRef, namespace: str) -> bool:
    if subject.kind == "User":
        return who.name == subject.name
    if subject.kind == "Group":
        return subject.name in who.groups
    if subject.kind == "ServiceAccount":
        # A RoleBinding's SA subject without a namespace means the binding's namespace.
        sa_namespace = subject.namespace or namespace
        return bool(sa_namespace) and who.name == f"{SA_USER_PREFIX}{sa_namespace}:{subject.name}"
    return False


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def matrix(authz: Authorizer, identities: dict[str, Identity],
           requests: Iterable[Request]) -> dict[str, tuple[bool, ...]]:
    """For each labelled identity, whether each request (in order) is allowed."""
    requests = tuple(requests)
    return {label: tuple(authz.can_i(who, req).allowed for req in requests)
            for label, who in identities.items()}
