"""RBAC lint: each finding has its code, a warning severity and the span it is about."""

from __future__ import annotations

from kubeforge.compiler.ir import Program
from kubeforge.compiler.rbac_lint import lint

from rbac_helpers import bind, group, make_cluster, role, rule, service_account, user


def program(roles=(), subjects=()) -> Program:
    return Program(cluster=make_cluster(), roles=tuple(roles), subjects=tuple(subjects))


def found(p: Program) -> set[tuple[str, object]]:
    return {(d.code, d.span) for d in lint(p)}


def test_clean_policy_has_no_findings():
    deployer = role("deployer", "a", rule("get list patch", "deployments", group="apps"))
    p = program([deployer], [service_account("a", "ci", bind("deployer")),
                             group("auditors", bind("view")), user("al", bind("edit", "a"))])
    assert lint(p) == []


def test_wildcard_verb():
    r = rule("*", "pods")
    p = program([role("r", "a", r)], [user("u", bind("r", "a"))])
    assert found(p) == {("W201", r.span)}


def test_wildcard_resource_group_and_url():
    r1, r2, r3 = rule("get", "*", group="apps"), rule("get", "pods", group="*"), \
        rule("get", urls="*")
    p = program([role("r", None, r1, r2, r3)], [user("u", bind("r"))])
    assert {("W202", r1.span), ("W202", r2.span), ("W202", r3.span)} <= found(p)


def test_cluster_admin_to_service_account():
    b = bind("cluster-admin")
    p = program(subjects=[service_account("a", "ci", b)])
    assert ("W203", b.span) in found(p)


def test_cluster_admin_to_everyone():
    b = bind("cluster-admin")
    p = program(subjects=[group("system:authenticated", b)])
    assert ("W204", b.span) in found(p)


def test_secrets_readable_cluster_wide():
    reader = rule("list", "secrets")
    b_direct, b_edit, b_view = bind("reader"), bind("edit"), bind("view")
    p = program([role("reader", None, reader)],
                [user("u", b_direct), group("g", b_edit), group("v", b_view)])
    codes = found(p)
    assert ("W205", b_direct.span) in codes
    assert ("W205", b_edit.span) in codes  # edit (aggregated) reads secrets
    assert ("W205", b_view.span) not in codes  # view does not


def test_secrets_in_one_namespace_are_fine():
    b = bind("edit", "a")
    assert ("W205", b.span) not in found(program(subjects=[user("u", b)]))


def test_escalate_bind_impersonate():
    r = rule("bind escalate", "clusterroles", group="rbac.authorization.k8s.io")
    i = rule("impersonate", "users")
    p = program([role("r", None, r, i)], [user("u", bind("r"))])
    assert {("W206", r.span), ("W206", i.span)} <= found(p)


def test_defined_but_never_bound():
    unused, cluster_unused = role("unused", "a", rule("get", "pods")), \
        role("cu", None, rule("get", "nodes"))
    aggregated = role("to-view", None, rule("get", "widgets", group="example.com"),
                      aggregate_to=("view",))
    p = program([unused, cluster_unused, aggregated])
    assert found(p) == {("W207", unused.span), ("W207", cluster_unused.span)}


def test_names_on_nameless_verbs():
    r = rule("get list create", "configmaps", names="cfg")
    p = program([role("r", "a", r)], [user("u", bind("r", "a"))])
    (d,) = [d for d in lint(p) if d.code == "W208"]
    assert d.span == r.span and "create, list" in d.message


def test_url_rules_through_a_role_binding():
    b = bind("health", "a")
    p = program([role("health", None, rule("get", urls="/healthz"))], [user("u", b)])
    assert ("W209", b.span) in found(p)


def test_shadowing_a_builtin_role():
    r = role("view", None, rule("get", "pods"))
    p = program([r], [user("u", bind("view"))])
    assert ("W210", r.span) in found(p)


def test_unknown_roles_are_left_to_the_lowering():
    """The lowering's checks report E102 with a did-you-mean; the lint adds nothing."""
    p = program(subjects=[user("u", bind("nope", "a"), bind("ghost"))])
    assert lint(p) == []


def test_all_findings_are_warnings_sorted_by_span():
    p = program([role("r", None, rule("*", "*", group="*"))],
                [service_account("a", "ci", bind("cluster-admin")), user("u", bind("r"))])
    diags = lint(p)
    assert {d.severity for d in diags} == {"warning"}
    assert [d.span for d in diags] == sorted(d.span for d in diags)
