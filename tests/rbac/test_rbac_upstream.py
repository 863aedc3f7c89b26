"""kubeforge's default RBAC objects equal each supported release's own bootstrap policy.

Reads plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata of every supported minor's
newest patch (the k8s.io/kubernetes module, downloaded once into the Go module cache).
"""

from __future__ import annotations

from importlib import resources as data_resources

import pytest

from kubeforge.compiler import versions
from kubeforge.compiler.rbac_defaults import (_rule, builtin_bindings, builtin_cluster_roles,
                                              system_cluster_roles, system_role_names)
from tests.support.upstream_rbac import (CORE_BINDINGS, CORE_ROLES, EXTRA_BINDINGS, EXTRA_ROLES,
                                         render, upstream_bindings, upstream_controller_roles,
                                         upstream_roles)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RELEASES = [versions.RELEASES[m].newest for m in versions.SUPPORTED_MINORS]


@pytest.mark.parametrize("version", RELEASES)
def test_default_roles_are_the_releases_own(version):
    upstream = upstream_roles(version)
    ours = {r.name: r for r in builtin_cluster_roles(version)}
    wanted = {n for n in (*CORE_ROLES, *EXTRA_ROLES) if n in upstream}
    assert set(ours) == wanted
    for name in wanted:
        rules = tuple(_rule(r) for r in upstream[name].get("rules") or ())
        assert ours[name].rules == rules, name
        selectors = (upstream[name].get("aggregationRule") or {}).get("clusterRoleSelectors")
        assert bool(ours[name].aggregate_from) == bool(selectors), name


@pytest.mark.parametrize("version", RELEASES)
def test_system_roles_are_the_releases_own(version):
    """rbac-system-roles.yaml: every name exists in the release, listed rules are its rules."""
    upstream = {**upstream_roles(version), **upstream_controller_roles(version)}
    assert system_role_names(version) <= set(upstream)
    for role in system_cluster_roles(version):
        assert role.rules == tuple(_rule(r) for r in upstream[role.name]["rules"]), role.name


@pytest.mark.parametrize("version", RELEASES)
def test_default_bindings_are_the_releases_own(version):
    upstream = upstream_bindings(version)
    ours = {b.name: b for b in builtin_bindings(version) if not b.name.startswith("kubeadm:")}
    assert set(ours) == {n for n in (*CORE_BINDINGS, *EXTRA_BINDINGS) if n in upstream}
    for name, binding in ours.items():
        assert (binding.role_ref.kind, binding.role_ref.name) == \
            (upstream[name]["roleRef"]["kind"], upstream[name]["roleRef"]["name"])
        assert [(s.kind, s.name) for s in binding.subjects] == \
            [(s["kind"], s["name"]) for s in upstream[name]["subjects"]]


def test_data_file_is_the_generators_output():
    text = data_resources.files("kubeforge.compiler").joinpath("data/rbac-bootstrap.yaml")
    assert text.read_text() == render(), \
        "run `python -m tests.support.upstream_rbac > compiler/data/rbac-bootstrap.yaml`"
