"""Semantic checks across the whole program: names, references, selectors, ports."""

from __future__ import annotations

from typing import Iterable

from kubeforge.compiler.ir import Program, Workload
from kubeforge.compiler.lower_rbac import BUILTIN_CLUSTER_ROLES
from kubeforge.dsl.diagnostics import Collector, Span, did_you_mean

IMPLICIT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def check_program(p: Program, diags: Collector) -> None:
    _unique_names(p, diags)
    _check_addons(p, diags)
    workloads = {(w.namespace, w.name): w for w in p.workloads}
    configs = {(c.namespace, c.name): c for c in p.configs}
    secrets = {(s.namespace, s.name): s for s in p.secrets}
    pvcs = {(c.namespace, c.name) for c in p.pvcs}
    accounts = {(s.namespace, s.name) for s in p.subjects if s.kind == "ServiceAccount"}
    namespaces = {n.name for n in p.namespaces} | set(IMPLICIT_NAMESPACES)

    def names_in(ns: str, keys) -> list[str]:
        return [name for (n, name) in keys if n == ns]

    def unknown(code_what: str, name: str, ns: str, keys, span: Span) -> None:
        diags.error("E102", f"unknown {code_what} `{name}` in namespace `{ns}`", span,
                    did_you_mean(name, names_in(ns, keys)))

    for w in p.workloads:
        _check_selector(w, diags)
        for c in (*w.containers, *w.init_containers):
            _unique_ports(c.ports, f"`{c.name}`", diags)
            for env in c.env:
                if env.ref_kind not in ("config", "secret"):
                    continue
                table = configs if env.ref_kind == "config" else secrets
                source = table.get((w.namespace, env.ref_name))
                if source is None:
                    unknown(env.ref_kind, env.ref_name, w.namespace, table, env.span)
                elif env.ref_key not in {e.key for e in source.entries}:
                    keys = [e.key for e in source.entries]
                    diags.error("E102", f"{env.ref_kind} `{source.name}` has no key `{env.ref_key}`",
                                env.span, did_you_mean(env.ref_key, keys))
            for ef in c.env_from:
                table = configs if ef.kind == "config" else secrets
                if (w.namespace, ef.name) not in table:
                    unknown(ef.kind, ef.name, w.namespace, table, ef.span)
            for m in c.mounts:
                if m.source == "config" and (w.namespace, m.ref) not in configs:
                    unknown("config", m.ref, w.namespace, configs, m.span)
                elif m.source == "secret" and (w.namespace, m.ref) not in secrets:
                    unknown("secret", m.ref, w.namespace, secrets, m.span)
                elif m.source == "claim" and (w.namespace, m.ref) not in pvcs:
                    unknown("pvc", m.ref, w.namespace, pvcs, m.span)
            names = {p_.name for p_ in c.ports if p_.name}
            for probe in (*c.probes, *c.hooks):
                if isinstance(probe.port, str) and probe.port not in names:
                    what = "probe" if probe in c.probes else "lifecycle hook"
                    diags.error("E108", f"{what} port `{probe.port}` is not a named port of "
                                f"`{c.name}`", probe.span, did_you_mean(probe.port, names) or
                                f"declare it: `port {probe.port} 8080`")
        for aff in w.affinities:
            if aff.workload is not None and (w.namespace, aff.workload) not in workloads:
                unknown("workload", aff.workload, w.namespace, workloads, aff.span)
            for ns_name in aff.namespaces:
                if ns_name not in namespaces:
                    _unknown_namespace(ns_name, aff.span, namespaces, diags)
        if w.service_account and w.service_account != "default" \
                and (w.namespace, w.service_account) not in accounts:
            diags.error("E102", f"unknown service account `{w.service_account}` in namespace "
                        f"`{w.namespace}`", w.span, did_you_mean(w.service_account,
                                                                   names_in(w.namespace, accounts))
                        or f"declare `serviceaccount {w.service_account}` in the namespace")
        if w.autoscale and w.replicas is not None and not w.autoscale.min <= w.replicas <= w.autoscale.max:
            diags.warning("W105", f"replicas {w.replicas} is outside autoscale range "
                          f"{w.autoscale.min}..{w.autoscale.max}", w.autoscale.span,
                          "the autoscaler will change it at once")
        if w.disruption and w.disruption.field == "min_available" and isinstance(w.disruption.value, int) \
                and w.disruption.value >= (w.replicas or 1):
            diags.warning("W106", f"min_available {w.disruption.value} with {w.replicas or 1} "
                          "replicas blocks every voluntary eviction (node drains hang)",
                          w.disruption.span)

    services_by_ns: dict[tuple[str, str], object] = {}
    for s in p.services:
        services_by_ns[(s.namespace, s.name)] = s
        target = workloads.get((s.namespace, s.target))
        if target is None:
            unknown("workload", s.target, s.namespace, workloads, s.target_span)
            continue
        if not s.selector and not target.selector:
            diags.error("E114", f"service `{s.name}` cannot select the pods of `{target.name}`: "
                        "their selector has expressions only, which a service cannot use",
                        s.span, 'give the service a `selector { key = "value" }` block')
        if s.selector and not set(s.selector) <= set(target.labels):  # the pods' labels
            diags.error("E114", f"service `{s.name}` selector matches no pod of `{target.name}`",
                        s.span, "pod labels are " + ", ".join(f"{k}={v}" for k, v in target.labels))
        container_names = {p_.name for c in target.containers for p_ in c.ports if p_.name}
        container_numbers = {p_.port for c in target.containers for p_ in c.ports}
        _unique_ports(s.ports, f"service `{s.name}`", diags)
        for port in s.ports:
            if isinstance(port.target, str) and port.target not in container_names:
                diags.error("E107", f"target port `{port.target}` is not a named port of "
                            f"`{target.name}`", port.span, did_you_mean(port.target, container_names))
            number = port.target if isinstance(port.target, int) else (port.port if port.target is None else None)
            if number is not None and container_numbers and number not in container_numbers:
                diags.warning("W107", f"service `{s.name}` sends port {number} to `{target.name}`, "
                              "whose containers declare no such port", port.span,
                              "declared ports: " + ", ".join(str(n) for n in sorted(container_numbers)))
        if len(s.ports) > 1 and any(not port.name for port in s.ports):
            diags.error("E107", f"service `{s.name}` has several ports: each needs a name",
                        s.span, "write `port http 80 port metrics 9090`")

    for w in p.workloads:
        if w.kind == "StatefulSet" and not any(
                s.headless and s.target == w.name and s.namespace == w.namespace for s in p.services):
            diags.warning("W104", f"no headless service governs statefulset `{w.name}`", w.span,
                          f"add `service {w.name} -> {w.name} headless port ...` for stable "
                          "pod DNS names")

    for ing in p.ingresses:
        for route in ing.routes:
            svc = services_by_ns.get((ing.namespace, route.service))
            if svc is None:
                unknown("service", route.service, ing.namespace, services_by_ns, route.span)
                continue
            ok = any(route.port in (sp.port, sp.name) for sp in svc.ports)
            if not ok:
                diags.error("E107", f"service `{svc.name}` has no port `{route.port}`", route.span,
                            "its ports: " + ", ".join(str(sp.name or sp.port) for sp in svc.ports))
        for tls in ing.tls:
            if (ing.namespace, tls.secret) not in secrets:
                unknown("secret", tls.secret, ing.namespace, secrets, ing.span)

    for np in p.networkpolicies:
        if np.pods is not None and (np.namespace, np.pods) not in workloads:
            unknown("workload", np.pods, np.namespace, workloads, np.pods_span)
        for rule in np.rules:
            for peer in rule.peers:
                if peer.namespace is not None and peer.namespace not in namespaces:
                    _unknown_namespace(peer.namespace, peer.span, namespaces, diags)
                    continue
                if peer.kind == "workload" and \
                        (peer.namespace or np.namespace, peer.value) not in workloads:
                    unknown("workload", peer.value, peer.namespace or np.namespace, workloads,
                            peer.span)
                if peer.kind == "namespace" and peer.value not in namespaces:
                    _unknown_namespace(peer.value, peer.span, namespaces, diags)

    _check_rbac(p, diags, namespaces)


def _unique_names(p: Program, diags: Collector) -> None:
    groups: Iterable[tuple[str, Iterable]] = (
        ("workload", p.workloads), ("service", p.services), ("config", p.configs),
        ("secret", p.secrets), ("pvc", p.pvcs), ("ingress", p.ingresses),
        ("networkpolicy", p.networkpolicies),
    )
    for what, objects in groups:
        seen: dict[tuple[str, str], Span] = {}
        for obj in objects:
            key = (obj.namespace, obj.name)
            if key in seen:
                diags.error("E100", f"{what} `{obj.name}` is declared twice in namespace "
                            f"`{obj.namespace}`", obj.span, f"first declared at {seen[key]}")
            else:
                seen[key] = obj.span
    seen_sc: dict[str, Span] = {}
    defaults = [sc for sc in p.storageclasses if sc.default]
    for sc in p.storageclasses:
        if sc.name in seen_sc:
            diags.error("E100", f"storageclass `{sc.name}` is declared twice", sc.span)
        seen_sc.setdefault(sc.name, sc.span)
    for extra in defaults[1:]:
        diags.error("E100", "only one storageclass can be the default", extra.span,
                    f"`{defaults[0].name}` already is")
    seen_roles: dict[tuple, Span] = {}
    for role in p.roles:
        key = (role.namespace, role.name)
        if key in seen_roles:
            diags.error("E100", f"role `{role.name}` is declared twice", role.span,
                        f"first declared at {seen_roles[key]}")
        seen_roles.setdefault(key, role.span)
    seen_subjects: dict[tuple, Span] = {}
    for s in p.subjects:
        key = (s.kind, s.namespace, s.name)
        if key in seen_subjects:
            diags.error("E100", f"{s.kind.lower()} `{s.name}` is declared twice", s.span,
                        f"first declared at {seen_subjects[key]}")
        seen_subjects.setdefault(key, s.span)
    _check_token_ids(p, diags)


def _check_addons(p: Program, diags: Collector) -> None:
    """What the file declares must not collide with the objects its addons own."""
    storage = p.cluster.storage if p.cluster else None
    if storage is None:
        return
    from kubeforge.compiler import addon_storage as A

    for sc in p.storageclasses:
        if sc.name == A.CLASS:
            diags.error("E100", f"storageclass `{sc.name}` is the storage addon's", sc.span,
                        f"the addon (line {storage.span.line}) makes it; rename this one")
        elif sc.default and storage.default:
            diags.error("E100", "only one storageclass can be the default", sc.span,
                        f"the storage addon's `{A.CLASS}` is (line {storage.span.line}); "
                        "say `default false` in one of them")
    for role in p.roles:
        if role.name == A.ROLE and role.namespace in (None, A.NAMESPACE):
            diags.error("E100", f"role `{role.name}` is the storage addon's", role.span,
                        "rename it: the addon's manifest would replace its rules")
    for s in p.subjects:
        if (s.kind, s.namespace, s.name) == ("ServiceAccount", A.NAMESPACE, A.SERVICE_ACCOUNT):
            diags.error("E100", f"serviceaccount `{s.name}` is the storage addon's", s.span,
                        "the addon makes it; bind roles to it from another account")


def _check_token_ids(p: Program, diags: Collector) -> None:
    """Two token names whose derived ids collide (one chance in two billion) would share
    one Secret: the second is refused rather than silently replacing the first."""
    from kubeforge.compiler.tokens import token_id

    by_id: dict[str, str] = {}
    for s in p.subjects:
        if s.kind != "Token":
            continue
        first = by_id.setdefault(token_id(s.name), s.name)
        if first != s.name:
            diags.error("E100", f"tokens `{first}` and `{s.name}` get the same token id "
                        f"{token_id(s.name)}", s.span, f"rename token `{s.name}`")


def _unknown_namespace(name: str, span: Span, namespaces: set[str], diags: Collector) -> None:
    diags.error("E102", f"unknown namespace `{name}`", span,
                did_you_mean(name, namespaces) or f"declare it: `namespace {name} {{}}`")


def _check_selector(w: Workload, diags: Collector) -> None:
    labels = dict(w.labels)
    for key, value in w.selector:
        if labels.get(key) != value:
            diags.error("E114", f"selector {key}={value} of `{w.name}` does not match its pods",
                        w.span, "pod labels are " + ", ".join(f"{k}={v}" for k, v in w.labels))
            return
    if not w.label_selector.matches(labels):
        diags.error("E114", f"the selector expressions of `{w.name}` do not match its pods",
                    w.span, "pod labels are " + ", ".join(f"{k}={v}" for k, v in w.labels))


def _unique_ports(ports, where: str, diags: Collector) -> None:
    """Container or service ports: each number/protocol and each name once."""
    seen: set[tuple[int, str]] = set()
    names: set[str] = set()
    for port in ports:
        key = (port.port, port.protocol)
        if key in seen:
            diags.error("E107", f"port {port.port}/{port.protocol} is declared twice in {where}",
                        port.span)
        seen.add(key)
        if port.name:
            if port.name in names:
                diags.error("E107", f"port name `{port.name}` is used twice in {where}", port.span)
            names.add(port.name)


def _check_rbac(p: Program, diags: Collector, namespaces: set[str]) -> None:
    roles = {(r.namespace, r.name): r for r in p.roles}
    cluster_roles = {r.name for r in p.roles if r.namespace is None}
    from kubeforge.compiler.rbac_defaults import system_role_names

    declare = "declare it: `namespace {} {{}}`"
    system_roles = system_role_names(p.cluster.version if p.cluster else None)
    for role in p.roles:
        if role.namespace is not None and role.namespace not in namespaces:
            diags.error("E102", f"role `{role.name}` is in unknown namespace `{role.namespace}`",
                        role.span, did_you_mean(role.namespace, namespaces)
                        or declare.format(role.namespace))
    for s in p.subjects:
        if s.namespace is not None and s.namespace not in namespaces:
            diags.error("E102", f"service account `{s.name}` is in unknown namespace "
                        f"`{s.namespace}`", s.span, did_you_mean(s.namespace, namespaces)
                        or declare.format(s.namespace))
        for b in s.bindings:
            if b.namespace is not None and b.namespace not in namespaces:
                _unknown_namespace(b.namespace, b.span, namespaces, diags)
                continue
            if b.role.startswith("system:") and b.role not in cluster_roles \
                    and b.role not in system_roles:
                version = p.cluster.version if p.cluster else "the default version"
                diags.warning("W211", f"`{b.role}` is not a built-in ClusterRole of Kubernetes "
                              f"{version} that kubeforge knows", b.span,
                              did_you_mean(b.role, system_roles) or
                              "the binding is emitted, but `rbac can-i` cannot know its rules")
                continue
            builtin = b.role in BUILTIN_CLUSTER_ROLES or b.role in system_roles
            if (b.namespace, b.role) in roles or b.role in cluster_roles or builtin:
                continue
            elsewhere = [ns for (ns, name) in roles if name == b.role and ns is not None]
            if elsewhere:
                hint = f"role `{b.role}` is in namespace `{elsewhere[0]}`: write `bind {b.role} in {elsewhere[0]}`"
            else:
                candidates = [name for (ns, name) in roles if ns in (None, b.namespace)]
                hint = did_you_mean(b.role, [*candidates, *BUILTIN_CLUSTER_ROLES])
            diags.error("E102", f"unknown role `{b.role}`" +
                        (f" in namespace `{b.namespace}`" if b.namespace else ""), b.span, hint)
