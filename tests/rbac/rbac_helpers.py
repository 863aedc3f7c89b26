"""Helpers of the RBAC tests: IR built by hand (independent of the language) and a cluster.

A module with a unique name rather than conftest.py, so test modules import it unambiguously.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

from kubeforge.compiler.ir import (Binding, Cluster, ClusterNode, LabelSelector, LoadBalancer,
                                   PkiSettings, PolicyRule, Program, Role, Subject)
from kubeforge.dsl.diagnostics import Span

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
_lines = iter(range(1, 10_000))


def span() -> Span:
    """A distinct made-up source position per object, so spans can be asserted."""
    line = next(_lines)
    return Span("fixture.kf", line, 1, line, 20)


def rule(verbs: str, resources: str = "", group: str = "", names: str = "",
         urls: str = "") -> PolicyRule:
    return PolicyRule(tuple(verbs.split()), tuple(resources.split()),
                      tuple(group.split(",")) if resources else (),
                      tuple(names.split()), tuple(urls.split()), span())


def role(name: str, namespace: str | None, *rules: PolicyRule, labels=(), aggregate_to=(),
         aggregate_from=None) -> Role:
    """``aggregate_from``: one matchLabels selector as pairs (None: not aggregated)."""
    selectors = None if aggregate_from is None else (LabelSelector(tuple(aggregate_from)),)
    return Role(name, namespace, tuple(rules), span(), tuple(labels), tuple(aggregate_to),
                selectors)


def bind(role_name: str, namespace: str | None = None) -> Binding:
    return Binding(role_name, namespace, span())


def user(name: str, *bindings: Binding, groups=(), validity=None) -> Subject:
    return Subject("User", name, span(), groups=tuple(groups), bindings=bindings,
                   cert_validity_days=validity)


def group(name: str, *bindings: Binding) -> Subject:
    return Subject("Group", name, span(), bindings=bindings)


def service_account(namespace: str, name: str, *bindings: Binding, automount=None) -> Subject:
    # As the lowering does: `bind R` of a service account means its own namespace.
    resolved = tuple(b if b.namespace else dataclasses.replace(b, namespace=namespace)
                     for b in bindings)
    return Subject("ServiceAccount", name, span(), namespace=namespace, bindings=resolved,
                   automount_token=automount)


def make_cluster(version: str = "1.37.2", algorithm: str = "ecdsa-p256") -> Cluster:
    return Cluster(
        name="lab", version=version, span=span(), endpoint_host="api.lab.internal",
        endpoint_port=6443, pod_cidr=ipaddress.ip_network("10.244.0.0/16"),
        service_cidr=ipaddress.ip_network("10.96.0.0/12"), node_cidr=None,
        domain="cluster.local", runtime="containerd", cni="calico", cni_version=None,
        etcd="stacked",
        loadbalancer=LoadBalancer("keepalived-haproxy", vip=ipaddress.ip_address("10.0.0.100"),
                                  interface="eth0"),
        pki=PkiSettings(algorithm=algorithm, cert_validity_days=90),
        nodes=tuple(ClusterNode(f"cp{i}", ipaddress.ip_address(f"10.0.0.1{i}"),
                                ("control-plane",)) for i in (1, 2, 3)),
    )


def fixture_program(version: str = "1.37.2") -> Program:
    """A policy exercising every matching rule of the RBAC authorizer."""
    roles = (
        role("pod-reader", "alpha", rule("get list watch", "pods")),
        role("log-reader", "alpha", rule("get", "pods/log")),
        role("cm-one", "alpha", rule("get update", "configmaps", names="app-config")),
        role("any-status", None, rule("get", "*/status", group="*")),
        role("health", None, rule("get", urls="/healthz /metrics/*")),
        role("deploy-all", None, rule("*", "deployments", group="apps")),
        role("apps-reader", None, rule("get", "*", group="apps")),
        role("crd-viewer", None, rule("get list watch", "widgets", group="example.com"),
             aggregate_to=("view",)),
        role("custom-agg", None, aggregate_from=(("team", "x"),)),
        role("part-x", None, rule("delete", "services"), labels=(("team", "x"),)),
        role("node-reader", None, rule("get list", "nodes")),
    )
    subjects = (
        user("alice", bind("pod-reader", "alpha"), bind("log-reader", "alpha"), groups=("dev",)),
        user("bob", bind("cm-one", "alpha"), bind("node-reader"), bind("view", "beta")),
        user("carol", bind("any-status", "alpha")),
        user("dave", bind("deploy-all", "alpha"), bind("custom-agg", "gamma")),
        user("erin", bind("node-reader", "alpha")),
        user("frank", bind("admin", "alpha")),
        group("dev", bind("edit", "beta")),
        group("ops", bind("cluster-admin")),
        group("auditors", bind("view")),
        # Groups the language cannot spell (they contain `:`), but the IR and RBAC can.
        group("system:authenticated", bind("health")),
        group("system:serviceaccounts:beta", bind("view", "beta")),
        service_account("alpha", "ci", bind("pod-reader")),
        service_account("beta", "builder", bind("apps-reader", "alpha")),
    )
    return Program(cluster=make_cluster(version), roles=roles, subjects=subjects)
