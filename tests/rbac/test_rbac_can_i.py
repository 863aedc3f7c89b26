"""can-i against answers derived by hand from the Kubernetes RBAC rules.

Each case names who asks (user and groups, or a service account), the request, and the
expected answer; the comment says which rule of the RBAC authorizer decides it. The policy is
``fixture_program`` plus the bootstrap roles and bindings every cluster has.
"""

from __future__ import annotations

import pytest

from kubeforge.cli_rbac import identity_for, parse_request
from kubeforge.compiler.ir import LabelSelector, PolicyRule, Role
from kubeforge.compiler.rbac import (Identity, Request, aggregate, impersonate, resource_matches,
                                     url_matches)
from kubeforge.compiler.rbac_compile import authorizer_for
from kubeforge.dsl.diagnostics import NO_SPAN

from rbac_helpers import fixture_program

SA = "system:serviceaccount:"

# (who, groups, verb, resource[/sub][.group] or /url, namespace, name, expected)
CASES = [
    # --- a Role in alpha: exact resources, its namespace only
    ("alice", "", "get", "pods", "alpha", "", True),
    ("alice", "", "list", "pods", "alpha", "", True),
    ("alice", "", "delete", "pods", "alpha", "", False),  # verb not listed
    ("alice", "", "get", "pods", "", "", False),  # cluster-wide needs a ClusterRoleBinding
    ("alice", "", "get", "pods/log", "alpha", "", True),  # rule names the subresource
    ("alice", "", "create", "pods/log", "alpha", "", False),
    ("alice", "", "get", "pods/exec", "alpha", "", False),  # `pods` does not cover subresources
    # --- group dev -> edit in beta (edit aggregates system:aggregate-to-edit and view)
    ("alice", "", "get", "pods", "beta", "", True),
    ("alice", "", "get", "secrets", "beta", "", True),  # edit reads secrets, view does not
    ("alice", "", "create", "deployments", "beta", "", True),
    ("alice", "", "patch", "deployments/scale", "beta", "", True),
    ("alice", "", "create", "pods/eviction", "beta", "", True),
    ("alice", "", "impersonate", "serviceaccounts", "beta", "", True),
    ("alice", "", "create", "serviceaccounts/token", "beta", "", True),
    ("alice", "", "get", "persistentvolumeclaims/status", "beta", "", True),  # view via edit
    ("alice", "", "get", "leases.coordination.k8s.io", "beta", "", True),
    ("alice", "", "create", "rolebindings", "beta", "", False),  # edit has no RBAC objects
    ("alice", "", "get", "roles", "beta", "", False),
    ("alice", "", "get", "resourceclaims.resource.k8s.io", "beta", "", True),  # 1.34+ only
    ("alice", "", "delete", "pods", "gamma", "", False),
    # --- bootstrap bindings of system:authenticated
    ("alice", "", "get", "/healthz", "", "", True),  # system:discovery
    ("alice", "", "get", "/api/v1/namespaces", "", "", True),  # `/api/*` is a prefix
    ("alice", "", "post", "/api", "", "", False),  # only get
    ("alice", "", "create", "selfsubjectaccessreviews", "", "", True),  # system:basic-user
    ("mallory", "", "create", "selfsubjectreviews.authentication.k8s.io", "", "", True),
    ("mallory", "", "get", "/version", "", "", True),  # system:public-info-viewer
    ("mallory", "", "get", "pods", "alpha", "", False),
    ("mallory", "", "get", "/metrics", "", "", False),  # `/metrics/*` needs the slash
    ("mallory", "", "get", "/metrics/slis", "", "", True),  # health bound to authenticated
    ("mallory", "", "get", "/openid/v1/jwks", "", "", False),  # service accounts only
    # --- resourceNames
    ("bob", "", "get", "configmaps", "alpha", "app-config", True),
    ("bob", "", "update", "configmaps", "alpha", "app-config", True),
    ("bob", "", "get", "configmaps", "alpha", "other", False),
    ("bob", "", "get", "configmaps", "alpha", "", False),  # no name: names never match
    ("bob", "", "list", "configmaps", "alpha", "", False),
    # --- ClusterRoleBinding to a cluster-scoped resource; RoleBinding to view in beta
    ("bob", "", "get", "nodes", "", "", True),
    ("bob", "", "delete", "nodes", "", "", False),
    ("bob", "", "get", "pods", "beta", "", True),
    ("bob", "", "get", "secrets", "beta", "", False),  # view excludes secrets
    ("bob", "", "get", "pods/log", "beta", "", True),
    ("bob", "", "get", "pods/exec", "beta", "", False),
    ("bob", "", "update", "deployments", "beta", "", False),
    ("bob", "", "get", "widgets.example.com", "beta", "", True),  # crd-viewer aggregates to view
    ("bob", "", "get", "widgets.example.com", "alpha", "", False),
    # --- cluster-admin through a group
    ("oscar", "ops", "delete", "nodes", "", "", True),
    ("oscar", "ops", "get", "/metrics", "", "", True),  # nonResourceURLs `*`
    ("oscar", "ops", "escalate", "clusterroles", "", "", True),
    ("oscar", "ops", "create", "gadgets.example.org", "delta", "", True),
    ("root", "system:masters", "delete", "namespaces", "", "", True),  # bootstrap binding
    # --- view cluster-wide for auditors
    ("ann", "auditors", "list", "pods", "", "", True),  # all namespaces
    ("ann", "auditors", "list", "secrets", "", "", False),
    ("ann", "auditors", "get", "roles", "alpha", "", False),
    ("ann", "auditors", "watch", "widgets.example.com", "gamma", "", True),
    ("ann", "auditors", "get", "namespaces", "", "", True),
    ("ann", "auditors", "create", "deployments", "alpha", "", False),
    # --- `*/status` in any group, through a RoleBinding in alpha
    ("carol", "", "get", "pods/status", "alpha", "", True),
    ("carol", "", "get", "deployments/status", "alpha", "", True),
    ("carol", "", "get", "pods", "alpha", "", False),  # `*/status` needs a subresource
    ("carol", "", "get", "pods/status", "beta", "", False),
    ("carol", "", "get", "deployments/status", "", "", False),
    # --- a RoleBinding to a ClusterRole grants in its namespace only
    ("dave", "", "delete", "deployments", "alpha", "", True),  # verbs `*`
    ("dave", "", "deletecollection", "deployments", "alpha", "", True),
    ("dave", "", "delete", "deployments", "beta", "", False),
    ("dave", "", "delete", "deployments", "", "", False),
    ("dave", "", "delete", "deployments/scale", "alpha", "", False),
    ("dave", "", "delete", "services", "gamma", "", True),  # custom-agg aggregates part-x
    ("dave", "", "get", "services", "gamma", "", False),
    ("erin", "", "list", "nodes", "", "", False),  # RB to a ClusterRole: no cluster scope
    # --- admin in a namespace
    ("frank", "", "create", "rolebindings", "alpha", "", True),
    ("frank", "", "create", "roles", "alpha", "", True),
    ("frank", "", "get", "secrets", "alpha", "", True),
    ("frank", "", "create", "localsubjectaccessreviews", "alpha", "", True),
    ("frank", "", "update", "resourcequotas", "alpha", "", False),  # admin only reads quotas
    ("frank", "", "delete", "namespaces", "", "", False),
    # --- service accounts: username, their groups, cross-namespace bindings
    (f"{SA}alpha:ci", "", "get", "pods", "alpha", "", True),
    (f"{SA}alpha:ci", "", "get", "pods", "beta", "", False),
    (f"{SA}alpha:ci", "", "get", "/openid/v1/jwks", "", "", True),  # system:serviceaccounts
    (f"{SA}alpha:ci", "", "get", "/healthz", "", "", True),
    (f"{SA}beta:ci", "", "get", "pods", "alpha", "", False),  # same name, other namespace
    (f"{SA}beta:builder", "", "get", "deployments", "alpha", "", True),
    (f"{SA}beta:builder", "", "get", "statefulsets/scale", "alpha", "", True),  # `*` in apps
    (f"{SA}beta:builder", "", "get", "pods", "alpha", "", False),  # core group
    (f"{SA}beta:builder", "", "get", "deployments", "beta", "", True),  # group of beta's SAs
    (f"{SA}beta:other", "", "get", "pods", "beta", "", True),
    (f"{SA}beta:other", "", "get", "pods", "alpha", "", False),
    ("system:serviceaccount:beta", "", "get", "pods", "beta", "", False),  # not an SA name
]


def parse(resource: str, namespace: str, name: str, verb: str) -> Request:
    return parse_request(verb, resource, namespace, name)


PROGRAM = fixture_program()


@pytest.fixture(scope="module")
def authz():
    return authorizer_for(PROGRAM)


def test_enough_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("who,groups,verb,resource,namespace,name,expected", CASES,
                         ids=[f"{c[0]}-{c[2]}-{c[3]}-{c[4] or 'cluster'}-{c[5]}" for c in CASES])
def test_can_i(authz, who, groups, verb, resource, namespace, name, expected):
    # A declared user brings its declared groups (alice is in dev), as its certificate would.
    identity = identity_for(PROGRAM, who, tuple(groups.split()))
    decision = authz.can_i(identity, parse(resource, namespace, name, verb))
    assert decision.allowed is expected, decision.reason


def test_gated_rules_follow_the_cluster_version():
    """resource.k8s.io in edit/view exists from 1.34 on (DynamicResourceAllocation GA)."""
    request = parse("resourceclaims.resource.k8s.io", "beta", "", "create")
    alice = Identity.user("alice", ["dev"])
    assert not authorizer_for(fixture_program("1.33.1")).can_i(alice, request).allowed
    assert authorizer_for(fixture_program("1.34.0")).can_i(alice, request).allowed


def test_default_roles_follow_the_cluster_version():
    """1.35 gives edit/view events.k8s.io events; 1.37 lets every service account read
    ClusterTrustBundles (upstream bootstrap policy of each release)."""
    alice = Identity.user("alice", ["dev"])
    events = parse("events.events.k8s.io", "beta", "", "create")
    assert not authorizer_for(fixture_program("1.34.4")).can_i(alice, events).allowed
    assert authorizer_for(fixture_program("1.35.0")).can_i(alice, events).allowed
    bot = Identity.service_account("beta", "nobody")
    bundles = parse("clustertrustbundles.certificates.k8s.io", "", "", "list")
    assert not authorizer_for(fixture_program("1.36.3")).can_i(bot, bundles).allowed
    assert authorizer_for(fixture_program("1.37.2")).can_i(bot, bundles).allowed


@pytest.mark.parametrize("version, allowed", [("1.35.4", False), ("1.35.5", True),
                                              ("1.37.0", True)])
def test_kubeadm_bindings_follow_the_cluster_version(version, allowed):
    """admin.conf's group is cluster-admin everywhere; the API server's kubelet client is
    bound to system:kubelet-api-admin from the kubeadm patch that dropped its O."""
    authz = authorizer_for(fixture_program(version))
    admin = Identity.user("kubernetes-admin", ["kubeadm:cluster-admins"])
    assert authz.can_i(admin, parse("namespaces", "", "", "delete")).allowed
    kubelet_client = Identity.user("kube-apiserver-kubelet-client")
    assert authz.can_i(kubelet_client, parse("nodes/proxy", "", "", "get")).allowed is allowed


def test_reason_names_binding_role_and_rule(authz):
    decision = authz.can_i(Identity.user("alice"), parse("pods", "alpha", "", "get"))
    assert decision.binding.name == "kubeforge:user:alice:pod-reader"
    assert decision.binding.namespace == "alpha"
    assert decision.role.name == "pod-reader" and not decision.role.cluster_scoped
    assert decision.rule.resources == ("pods",)
    assert "RoleBinding kubeforge:user:alice:pod-reader in alpha -> Role pod-reader" \
        in decision.reason
    denied = authz.can_i(Identity.user("alice"), parse("pods", "beta", "", "delete"))
    assert denied.reason.startswith("no RBAC rule allows delete pods in namespace beta")


def test_service_account_identity_from_username():
    who = impersonate("system:serviceaccount:alpha:ci", None)
    assert who.name == "system:serviceaccount:alpha:ci"
    assert set(who.groups) == {"system:serviceaccounts", "system:serviceaccounts:alpha",
                               "system:authenticated"}


@pytest.mark.parametrize("user,groups,expected", [
    # kube-apiserver's impersonation filter, case by case.
    ("alice", None, ("system:authenticated",)),
    ("alice", ("dev",), ("dev", "system:authenticated")),
    ("alice", ("system:unauthenticated",), ("system:unauthenticated",)),
    ("alice", ("system:authenticated",), ("system:authenticated",)),
    ("system:anonymous", None, ("system:unauthenticated",)),
    ("system:anonymous", ("dev",), ("dev", "system:unauthenticated")),
    # explicit groups replace a service account's own groups
    ("system:serviceaccount:alpha:ci", ("extra",), ("extra", "system:authenticated")),
    # not a service account: three parts, or an invalid namespace
    ("system:serviceaccount:ns:a:b", None, ("system:authenticated",)),
    ("system:serviceaccount:NS:a", None, ("system:authenticated",)),
    ("system:serviceaccount:ns:", None, ("system:authenticated",)),
])
def test_impersonation_groups(user, groups, expected):
    assert impersonate(user, groups).groups == expected


def test_who_can_lists_subjects_with_bindings(authz):
    grants = authz.who_can(parse("pods", "alpha", "", "get"))
    subjects = {str(g.subject) for g in grants}
    assert {"User alice", "ServiceAccount alpha/ci", "Group auditors", "Group ops",
            "Group system:masters", "User frank"} <= subjects
    assert "User bob" not in subjects and "Group dev" not in subjects


@pytest.mark.parametrize("url,path,expected", [
    ("/api/*", "/api/v1", True),
    ("/api/*", "/api/", True),
    ("/api/*", "/api", False),  # the prefix keeps its slash
    ("/healthz", "/healthz/etcd", False),  # exact unless it ends in `*`
    ("/hea*", "/healthz", True),  # a `*` suffix is a plain string prefix
    ("/x**", "/x", True),  # every trailing `*` is trimmed (strings.TrimRight)
    ("*", "/anything", True),
])
def test_non_resource_url_matching(url, path, expected):
    assert url_matches(PolicyRule(("get",), urls=(url,)), path) is expected


@pytest.mark.parametrize("resource,combined,sub,expected", [
    ("*", "pods/log", "log", True),  # `*` covers subresources too
    ("pods", "pods/log", "log", False),
    ("*/log", "pods/log", "log", True),
    ("*/log", "pods", "", False),
    ("*/log", "pods/logs", "logs", False),
    ("pods/*", "pods/log", "log", False),  # no wildcard after the slash in RBAC
])
def test_resource_matching(resource, combined, sub, expected):
    assert resource_matches(PolicyRule(("get",), (resource,), ("",)), combined, sub) is expected


def _sel(*pairs) -> tuple:
    return (LabelSelector(tuple(pairs)),)


def test_aggregation_reaches_a_fixed_point_through_chains():
    """c selects b, b selects a: c ends with a's rules whatever the name order."""
    a = Role("a", None, (PolicyRule(("get",), ("pods",), ("",)),), NO_SPAN, (("l", "a"),))
    b = Role("b", None, (), NO_SPAN, (("l", "b"),), aggregate_from=_sel(("l", "a")))
    c = Role("c", None, (), NO_SPAN, aggregate_from=_sel(("l", "b")))
    filled = aggregate([c, b, a])
    assert filled["c"].rules == a.rules == filled["b"].rules
