"""AST -> IR: resolve imports and templates, lower every statement, run every check.

All diagnostics of all passes are collected and raised together, sorted by position.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kubeforge.compiler import values as V
from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir import (ConfigEntry, ConfigMap, Ingress, IngressRoute, IngressTls,
                                   Namespace, NetPeer, NetRule, NetworkPolicy, Program, Pvc,
                                   Secret, SecretEntry, Service, ServicePort, StorageClass)
from kubeforge.compiler.lower_cluster import ClusterLowerer
from kubeforge.compiler.lower_rbac import RbacLowerer
from kubeforge.compiler.lower_workload import ACCESS, ACCESS_ALIASES, KINDS, WorkloadLowerer
from kubeforge.dsl.ast import Module, Node
from kubeforge.dsl.diagnostics import Collector, SourceMap, did_you_mean
from kubeforge.dsl.parser import load

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
SECRET_TYPES = {"opaque": "Opaque", "tls": "kubernetes.io/tls",
                "dockerconfigjson": "kubernetes.io/dockerconfigjson",
                "basic-auth": "kubernetes.io/basic-auth", "ssh-auth": "kubernetes.io/ssh-auth"}
SECRET_SOURCES = ("env", "file")
RECLAIM = ("Delete", "Retain")
BINDING = ("Immediate", "WaitForFirstConsumer")
PATH_MATCH = ("Prefix", "Exact", "ImplementationSpecific")
AFFINITY = ("None", "ClientIP")
TRAFFIC = ("Cluster", "Local")
DENY = ("ingress", "egress")


def load_program(path: str | Path, *, strict: bool = False) -> tuple[Program, SourceMap]:
    """Parse ``path`` (and its imports), lower it and check it; raise DiagnosticError."""
    modules, sources = load(path)
    diags = Collector()
    program = ProgramLowerer(diags, Path(path).parent).lower(modules)
    if program is not None:
        from kubeforge.compiler.checks import check_program

        check_program(program, diags)
        _lint_rbac(program, diags)
    if strict:
        diags.items = [dataclasses.replace(d, severity="error") for d in diags.items]
    diags.raise_if_errors(sources)
    assert program is not None
    warnings = tuple(sorted(diags.warnings, key=lambda d: (d.span, d.code)))
    return dataclasses.replace(program, source=str(path), warnings=warnings), sources


def _lint_rbac(program: Program, diags: Collector) -> None:
    try:
        from kubeforge.compiler.rbac_lint import lint
    except ImportError:  # the RBAC lint ships in its own module
        return
    diags.items.extend(lint(program))


class ProgramLowerer(Lowerer):
    def lower(self, modules: list[Module]) -> Program:
        items = [item for module in modules for item in module.items]
        clusters = [i for i in items if i.kind == "cluster"]
        for extra in clusters[1:]:
            self.error("E100", "only one cluster block is allowed", extra.span,
                       f"the first one is at {clusters[0].span}")
        cluster = ClusterLowerer(self.diags, self.base_dir).lower(clusters[0]) if clusters else None

        templates = self._templates([i for i in items if i.kind == "template"], None)
        workloads_l = WorkloadLowerer(self.diags, self.base_dir)
        rbac_l = RbacLowerer(self.diags, self.base_dir)
        out: dict[str, list] = {k: [] for k in ("namespaces", "workloads", "services", "configs",
                                                "secrets", "pvcs", "storageclasses", "ingresses",
                                                "networkpolicies", "roles", "subjects")}
        namespaces: dict[str, Namespace] = {}
        for item in items:
            if item.kind == "namespace":
                ns = self._namespace(item, namespaces)
                local = {**templates, **self._templates(list(item.stmts("template")), ns)}
                for stmt in item.body or ():
                    self._namespaced(stmt, ns, local, out, workloads_l, rbac_l)
            elif item.kind == "storageclass":
                out["storageclasses"].append(self._storageclass(item))
            elif item.kind in ("role", "clusterrole"):
                scope = item.clause("role_scope")
                if item.kind == "role" and scope is None:
                    self.error("E115", f"role `{item.value().py}` needs a namespace", item.span,
                               "write `role NAME in NAMESPACE { ... }`, declare it inside a "
                               "namespace block, or make it a `clusterrole`")
                    continue
                out["roles"].append(rbac_l.role(item, str(scope.value().py) if scope else None))
            elif item.kind in ("user", "group", "serviceaccount"):
                subject = rbac_l.subject(item, None)
                if subject:
                    out["subjects"].append(subject)
        out["namespaces"] = list(namespaces.values())
        return Program(cluster=cluster, base_dir=str(self.base_dir),
                       **{k: tuple(v) for k, v in out.items()})

    # -- namespaces ------------------------------------------------------------------------
    def _namespace(self, stmt: Node, seen: dict[str, Namespace]) -> str:
        name = self.name(stmt.value(), "namespace")
        labels = self.merged_kv((s for s in stmt.stmts("labels")), labels=True)
        annotations = self.merged_kv(s for s in stmt.stmts("annotations"))
        quota = self.merged_kv(s for s in stmt.stmts("quota"))
        for key, _ in quota:
            if not (key in ("pods", "services", "secrets", "configmaps",
                            "persistentvolumeclaims") or key.startswith(("requests.", "limits."))
                    or key.startswith("count/") or key.endswith("storage")):
                self.warn("W102", f"`{key}` is not a common ResourceQuota key",
                          stmt.span)
        previous = seen.get(name)
        if previous is not None:
            labels = tuple({**dict(previous.labels), **dict(labels)}.items())
            annotations = tuple({**dict(previous.annotations), **dict(annotations)}.items())
            quota = tuple({**dict(previous.quota), **dict(quota)}.items())
        seen[name] = Namespace(name, previous.span if previous else stmt.span, labels,
                               annotations, quota)
        return name

    def _templates(self, stmts: list[Node], namespace: str | None) -> dict[str, Node]:
        found: dict[str, Node] = {}
        for stmt in stmts:
            name = str(stmt.value().py)
            if name in found:
                self.error("E100", f"template `{name}` is declared twice", stmt.span,
                           f"first declared at {found[name].span}")
            found[name] = stmt
        return found

    def _effective_body(self, stmt: Node, templates: dict[str, Node]) -> tuple[Node, ...]:
        """The template chain's statements followed by the workload's own."""
        chain: list[Node] = []
        current = stmt
        seen = {id(stmt)}
        where = f"{stmt.kind} `{stmt.value().py}`"
        self.unique_stmts(stmt.body or (), where)
        while True:
            ext = current.clause("extends")
            if ext is None:
                break
            parent_name = str(ext.value().py)
            parent = templates.get(parent_name)
            if parent is None:
                self.error("E102", f"unknown template `{parent_name}`", ext.value().span,
                           did_you_mean(parent_name, templates) or
                           ("declare it with `template NAME { ... }`" if not templates else None))
                break
            if id(parent) in seen:
                self.error("E119", f"template `{parent_name}` extends itself", ext.value().span)
                break
            seen.add(id(parent))
            self.unique_stmts(parent.body or (), f"template `{parent_name}`")
            chain.append(parent)
            current = parent
        body: list[Node] = []
        for parent in reversed(chain):
            body.extend(parent.body or ())
        body.extend(stmt.body or ())
        return tuple(body)

    def _namespaced(self, stmt: Node, ns: str, templates, out, workloads_l: WorkloadLowerer,
                    rbac_l: RbacLowerer) -> None:
        kind = stmt.kind
        if kind in KINDS:
            workload = workloads_l.lower(stmt, ns, self._effective_body(stmt, templates))
            if workload:
                out["workloads"].append(workload)
        elif kind in ("service", "service_block"):
            out["services"].append(self._service(stmt, ns))
        elif kind == "config":
            out["configs"].append(self._config(stmt, ns))
        elif kind == "secret":
            secret = self._secret(stmt, ns)
            if secret:
                out["secrets"].append(secret)
        elif kind == "pvc":
            out["pvcs"].append(self._pvc(stmt, ns))
        elif kind == "ingress":
            out["ingresses"].append(self._ingress(stmt, ns))
        elif kind == "networkpolicy":
            out["networkpolicies"].append(self._netpol(stmt, ns))
        elif kind in ("role", "serviceaccount"):
            scope = stmt.clause("role_scope")
            if scope is not None and str(scope.value().py) != ns:
                self.error("E105", f"{kind} inside namespace `{ns}` names namespace "
                           f"`{scope.value().py}`", scope.span, "drop the `in` clause")
            if kind == "role":
                out["roles"].append(rbac_l.role(stmt, ns))
                return
            subject = rbac_l.subject(stmt, ns)
            if subject:
                out["subjects"].append(subject)
        # templates, labels, annotations and quota were read with the namespace itself

    # -- objects -------------------------------------------------------------------------
    def _service(self, stmt: Node, ns: str) -> Service:
        vals = stmt.values()
        name = self.name(vals[0], "service")
        target = str(vals[1].py)
        svc_type = "ClusterIP"
        ports: list[ServicePort] = []
        headless = False
        for clause in (a for a in stmt.args if isinstance(a, Node)):
            if clause.kind == "svc_type":
                svc_type = self.choice(clause.value(), SERVICE_TYPES, "service type") or svc_type
            elif clause.kind == "headless":
                headless = True
            elif clause.kind == "svc_port":
                ports.append(self._service_port(clause))
        body = stmt.body or ()
        self.unique_stmts(body, f"service `{name}`")
        last = {s.kind: s for s in body}
        if headless and svc_type != "ClusterIP":
            self.error("E105", f"a headless service cannot be of type {svc_type}", stmt.span)
        if not ports:
            self.error("E115", f"service `{name}` has no port", stmt.span, "add `port 80`")
        for p in ports:
            if p.node_port is not None and svc_type == "ClusterIP":
                self.error("E107", "`nodeport` needs `type NodePort` or `type LoadBalancer`", p.span)
        return Service(
            name=name, namespace=ns, target=target, span=stmt.span, type=svc_type,
            ports=tuple(ports), headless=headless,
            selector=self.kv(last["selector"], labels=True) if "selector" in last else (),
            labels=self.merged_kv((s for s in body if s.kind == "labels"), labels=True),
            annotations=self.merged_kv(s for s in body if s.kind == "annotations"),
            session_affinity=self.choice(last["session_affinity"].value(), AFFINITY,
                                         "session affinity") if "session_affinity" in last else None,
            external_traffic=self.choice(last["traffic_policy"].value(), TRAFFIC,
                                         "traffic policy") if "traffic_policy" in last else None,
            target_span=vals[1].span,
        )

    def _service_port(self, clause: Node) -> ServicePort:
        name_c = clause.clause("svc_port_name")
        name = str(name_c.value().py) if name_c else None
        if name is not None and not V.is_port_name(name):
            self.error("E107", f"`{name}` is not a valid port name", name_c.span)
        number = self.read(V.port_number, clause.values()[0], "E107") or 0
        target_c = clause.clause("svc_target")
        target = None
        if target_c is not None:
            tv = target_c.value()
            target = self.read(V.port_number, tv, "E107") if tv.kind == "INT" else str(tv.py)
        proto_c = clause.clause("port_proto")
        node_c = clause.clause("node_port")
        node_port = None
        if node_c is not None:
            node_port = int(node_c.value().text)
            if not 30000 <= node_port <= 32767:
                self.error("E107", f"node port {node_port} is outside 30000-32767", node_c.value().span,
                           "the default --service-node-port-range is 30000-32767")
        return ServicePort(number, name, target,
                           str(proto_c.value().py).upper() if proto_c else "TCP", node_port,
                           clause.span)

    def _config(self, stmt: Node, ns: str) -> ConfigMap:
        name = self.name(stmt.value(), "config", subdomain=True)
        entries: dict[str, ConfigEntry] = {}
        for item in stmt.body or ():
            key_v = item.values()[0]
            key = str(key_v.py)
            if not V.is_config_key(key):
                self.error("E105", f"`{key}` is not a valid config key", key_v.span,
                           "keys are letters, digits, '-', '_' and '.'")
            if key in entries:
                self.error("E100", f"config key `{key}` is given twice", key_v.span)
            if item.kind == "entry":
                entries[key] = ConfigEntry(key, value=V.text(item.values()[1]), span=item.span)
            else:
                path_v = item.values()[1]
                path = self.path(path_v)
                if not path.is_file():
                    self.error("E117", f"file `{path_v.py}` does not exist", path_v.span)
                entries[key] = ConfigEntry(key, file=str(path), span=item.span)
        return ConfigMap(name, ns, tuple(entries.values()), stmt.span)

    def _secret(self, stmt: Node, ns: str) -> Secret | None:
        name = self.name(stmt.value(), "secret", subdomain=True)
        type_c = stmt.clause("secret_type")
        secret_type = "Opaque"
        if type_c is not None:
            word = str(type_c.value().py)
            secret_type = SECRET_TYPES.get(word, word)
            if type_c.value().kind == "NAME" and word not in SECRET_TYPES:
                self.choice(type_c.value(), SECRET_TYPES, "secret type")
        entries: list[SecretEntry] = []
        source = stmt.clause("secret_source")
        items = [(source, None)] if source is not None else [(i, i.values()[0]) for i in stmt.body or ()]
        seen: set[str] = set()
        for item, key_v in items:
            vals = item.values()
            src_v, ref_v = vals[-2], vals[-1]
            src = self.choice(src_v, SECRET_SOURCES, "secret source")
            if src is None:
                continue
            ref = str(ref_v.py)
            if key_v is None:
                key = Path(ref).name if src == "file" else ref
            else:
                key = str(key_v.py)
            if not V.is_config_key(key):
                self.error("E105", f"`{key}` is not a valid secret key", (key_v or ref_v).span)
            if key in seen:
                self.error("E100", f"secret key `{key}` is given twice", (key_v or ref_v).span)
            seen.add(key)
            if src == "file":
                ref = str(self.path(ref_v))
            elif not V.is_env_name(ref):
                self.error("E105", f"`{ref}` is not an environment variable name", ref_v.span)
            entries.append(SecretEntry(key, src, ref, item.span))
        if not entries:
            self.error("E115", f"secret `{name}` has no values", stmt.span,
                       'add `from env "VAR"` or `{ key from file "path" }`')
        return Secret(name, ns, tuple(entries), stmt.span, secret_type)

    def _pvc(self, stmt: Node, ns: str) -> Pvc:
        vals = stmt.values()
        name = self.name(vals[0], "pvc", subdomain=True)
        size = self.read(V.quantity, vals[1]) or vals[1].text
        cls = stmt.clause("volume_class")
        access = stmt.clause("volume_access")
        mode = "ReadWriteOnce"
        if access is not None:
            mode = self.choice(access.value(), ACCESS, "access mode", ACCESS_ALIASES) or mode
        return Pvc(name, ns, size, stmt.span, str(cls.value().py) if cls else None, mode)

    def _storageclass(self, stmt: Node) -> StorageClass:
        vals = stmt.values()
        name = self.name(vals[0], "storageclass", subdomain=True)
        body = stmt.body or ()
        self.unique_stmts(body, f"storageclass `{name}`")
        last = {s.kind: s for s in body}
        return StorageClass(
            name, str(vals[1].py), stmt.span,
            reclaim=self.choice(last["reclaim"].value(), RECLAIM, "reclaim policy")
            if "reclaim" in last else None,
            binding=self.choice(last["binding"].value(), BINDING, "volume binding mode")
            if "binding" in last else None,
            default=bool(last["is_default"].value().py) if "is_default" in last else False,
            expansion=last["expansion"].value().py if "expansion" in last else None,
            parameters=self.kv(last.get("parameters")),
        )

    def _ingress(self, stmt: Node, ns: str) -> Ingress:
        name = self.name(stmt.value(), "ingress", subdomain=True)
        body = stmt.body or ()
        self.unique_stmts(body, f"ingress `{name}`")
        routes, tls = [], []
        cls = None
        for item in body:
            if item.kind == "ingress_class":
                cls = str(item.value().py)
            elif item.kind == "route":
                vals = item.values()
                host, path = str(vals[0].py), str(vals[1].py)
                if host and host != "*" and not V.is_dns_subdomain(host.removeprefix("*.")):
                    self.error("E105", f"`{host}` is not a host name", vals[0].span)
                if not path.startswith("/"):
                    self.error("E105", f"ingress path `{path}` must start with /", vals[1].span)
                match_c = item.clause("route_match")
                match = self.choice(match_c.value(), PATH_MATCH, "path match") if match_c else "Prefix"
                port_v = vals[-1]
                port = self.read(V.port_number, port_v, "E107") if port_v.kind == "INT" else str(port_v.py)
                routes.append(IngressRoute(host, path, str(vals[2].py), port, match or "Prefix", item.span))
            elif item.kind == "ingress_tls":
                vals = item.values()
                tls.append(IngressTls(tuple(str(v.py) for v in vals[:-1]), str(vals[-1].py)))
        if not routes:
            self.error("E115", f"ingress `{name}` has no route", stmt.span,
                       'add `route "app.example.com" "/" -> SERVICE port 80`')
        return Ingress(name, ns, stmt.span, cls, tuple(routes), tuple(tls),
                       self.merged_kv((s for s in body if s.kind == "labels"), labels=True),
                       self.merged_kv(s for s in body if s.kind == "annotations"))

    def _netpol(self, stmt: Node, ns: str) -> NetworkPolicy:
        name = self.name(stmt.value(), "networkpolicy", subdomain=True)
        body = stmt.body or ()
        self.unique_stmts(body, f"networkpolicy `{name}`")
        pods = None
        pods_span = stmt.span
        rules: list[NetRule] = []
        deny: list[str] = []
        for item in body:
            if item.kind == "np_pods":
                pods = str(item.value().py)
                pods_span = item.value().span
                if pods == "all":
                    pods = None
            elif item.kind == "np_allow":
                direction = "ingress" if item.clause("np_direction").value().text == "from" else "egress"
                peers = []
                ports = []
                for clause in (a for a in item.args if isinstance(a, Node)):
                    if clause.kind == "np_workload":
                        peers.append(NetPeer("workload", str(clause.value().py), clause.span))
                    elif clause.kind == "np_namespace":
                        peers.append(NetPeer("namespace", str(clause.value().py), clause.span))
                    elif clause.kind == "np_cidr":
                        peers.append(NetPeer("cidr", clause.value().text, clause.span))
                    elif clause.kind == "np_any":
                        peers.append(NetPeer("any", None, clause.span))
                    elif clause.kind == "np_port":
                        pv = clause.values()[0]
                        port = self.read(V.port_number, pv, "E107") if pv.kind == "INT" else str(pv.py)
                        proto = clause.clause("port_proto")
                        ports.append((port, str(proto.value().py).upper() if proto else "TCP"))
                rules.append(NetRule(direction, tuple(peers), tuple(ports)))
            elif item.kind == "np_deny":
                d = self.choice(item.value(), DENY, "traffic direction")
                if d and d not in deny:
                    deny.append(d)
        return NetworkPolicy(name, ns, stmt.span, pods, tuple(rules), tuple(deny), pods_span)
