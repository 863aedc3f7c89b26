"""Lower the namespaced objects that are not workloads: services, config, secrets, claims,
storage classes, ingresses and network policies."""

from __future__ import annotations

import re
from pathlib import Path

from kubeforge.compiler import values as V
from kubeforge.compiler.ir import (ConfigEntry, ConfigMap, Ingress, IngressRoute, IngressTls,
                                   NetPeer, NetRule, NetworkPolicy, Pvc, Secret, SecretEntry,
                                   Service, ServicePort, StorageClass)
from kubeforge.compiler.lower_meta import MetaLowerer
from kubeforge.compiler.lower_workload import ACCESS, ACCESS_ALIASES
from kubeforge.dsl.ast import Node
from kubeforge.fileio import OBJECT_DATA_LIMIT, FileProblem, decode_utf8, path_problem, read_regular

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
#: PEM ("-----BEGIN RSA PRIVATE KEY-----", PKCS#8, encrypted) and OpenSSH private keys.
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
META = ("labels", "annotations", "patch", "patch_file")


def _labels(lowerer: MetaLowerer, body) -> tuple:
    return lowerer.merged_kv((s for s in body if s.kind == "labels"), labels=True)


def _annotations(lowerer: MetaLowerer, body) -> tuple:
    return lowerer.merged_kv(s for s in body if s.kind == "annotations")


class ObjectLowerer(MetaLowerer):
    def service(self, stmt: Node, ns: str) -> Service:
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
                ports.append(self.service_port(clause))
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
        selector = ()
        if "selector" in last:
            selector = self.selector(last["selector"], expressions=False,
                                     what="a service").match_labels
        return Service(
            name=name, namespace=ns, target=target, span=stmt.span, type=svc_type,
            ports=tuple(ports), headless=headless, selector=selector,
            labels=_labels(self, body), annotations=_annotations(self, body),
            session_affinity=self.choice(last["session_affinity"].value(), AFFINITY,
                                         "session affinity") if "session_affinity" in last else None,
            external_traffic=self.choice(last["traffic_policy"].value(), TRAFFIC,
                                         "traffic policy") if "traffic_policy" in last else None,
            target_span=vals[1].span, patches=self.patches(body),
            labels_given="labels" in last,
        )

    def service_port(self, clause: Node) -> ServicePort:
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

    def config(self, stmt: Node, ns: str) -> ConfigMap:
        name = self.name(stmt.value(), "config", subdomain=True)
        entries: dict[str, ConfigEntry] = {}
        body = stmt.body or ()
        for item in body:
            if item.kind in META:
                continue
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
                try:
                    text = decode_utf8(read_regular(path, OBJECT_DATA_LIMIT))
                except FileProblem as problem:
                    self.error("E117", f"file `{path_v.py}` {problem}", path_v.span)
                else:
                    if PRIVATE_KEY.search(text):
                        self.warn("W110", f"file `{path_v.py}` holds a private key, and a "
                                  "config is written to a world-readable manifest",
                                  path_v.span, f'put it in a secret: `secret NAME {{ {key} '
                                  f'from file "{path_v.py}" }}`')
                entries[key] = ConfigEntry(key, file=str(path), span=item.span)
        return ConfigMap(name, ns, tuple(entries.values()), stmt.span, _labels(self, body),
                         _annotations(self, body), self.patches(body))

    def secret(self, stmt: Node, ns: str) -> Secret | None:
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
        body = stmt.body or ()
        if source is not None:
            items = [(source, None)]
        else:
            items = [(i, i.values()[0]) for i in body if i.kind == "secret_entry"]
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
                problem = path_problem(ref)
                if problem:
                    self.error("E117", f"file `{ref_v.py}` {problem}", ref_v.span)
            elif not V.is_env_name(ref):
                self.error("E105", f"`{ref}` is not an environment variable name", ref_v.span)
            entries.append(SecretEntry(key, src, ref, item.span))
        if not entries:
            self.error("E115", f"secret `{name}` has no values", stmt.span,
                       'add `from env "VAR"` or `{ key from file "path" }`')
        for item in body:
            if item.kind == "object_name":
                self.error("E116", "a secret is named by its statement", item.span)
        return Secret(name, ns, tuple(entries), stmt.span, secret_type, _labels(self, body),
                      _annotations(self, body), self.patches(body))

    def pvc(self, stmt: Node, ns: str) -> Pvc:
        vals = stmt.values()
        name = self.name(vals[0], "pvc", subdomain=True)
        size = self.read(V.quantity, vals[1]) or vals[1].text
        cls = stmt.clause("volume_class")
        access = stmt.clause("volume_access")
        mode = "ReadWriteOnce"
        if access is not None:
            mode = self.choice(access.value(), ACCESS, "access mode", ACCESS_ALIASES) or mode
        body = stmt.body or ()
        for item in body:
            if item.kind == "object_name":
                self.error("E116", "a pvc is named by its statement", item.span)
        return Pvc(name, ns, size, stmt.span, str(cls.value().py) if cls else None, mode,
                   _labels(self, body), _annotations(self, body), self.patches(body))

    def storageclass(self, stmt: Node) -> StorageClass:
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
            labels=_labels(self, body), annotations=_annotations(self, body),
            patches=self.patches(body),
        )

    def ingress(self, stmt: Node, ns: str) -> Ingress:
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
                       _labels(self, body), _annotations(self, body), self.patches(body))

    # -- network policies ------------------------------------------------------------------
    def netpol(self, stmt: Node, ns: str) -> NetworkPolicy:
        name = self.name(stmt.value(), "networkpolicy", subdomain=True)
        body = stmt.body or ()
        self.unique_stmts(body, f"networkpolicy `{name}`")
        pods = None
        pods_selector = None
        pods_span = stmt.span
        rules: list[NetRule] = []
        deny: list[str] = []
        for item in body:
            if item.kind == "np_pods":
                match = item.clause("match")
                if match is not None:
                    pods_selector = self.selector(match)
                    pods_span = match.span
                    continue
                pods = str(item.value().py)
                pods_span = item.value().span
                if pods == "all":
                    pods = None
            elif item.kind == "np_allow":
                rules.append(self._net_rule(item))
            elif item.kind == "np_deny":
                d = self.choice(item.value(), DENY, "traffic direction")
                if d and d not in deny:
                    deny.append(d)
        return NetworkPolicy(name, ns, stmt.span, pods, tuple(rules), tuple(deny), pods_span,
                             pods_selector, _labels(self, body), _annotations(self, body),
                             self.patches(body))

    def _net_rule(self, item: Node) -> NetRule:
        direction = "ingress" if item.clause("np_direction").value().text == "from" else "egress"
        peers = []
        ports = []
        for clause in (a for a in item.args if isinstance(a, Node)):
            if clause.kind in ("np_workload", "np_match"):
                in_ns, in_sel = self._peer_namespace(clause)
                if clause.kind == "np_workload":
                    peers.append(NetPeer("workload", str(clause.value().py), clause.span,
                                         namespace=in_ns, namespace_selector=in_sel))
                else:
                    peers.append(NetPeer("pods", None, clause.span,
                                         self.selector(clause.clause("match")), in_ns, in_sel))
            elif clause.kind == "np_namespace":
                peers.append(NetPeer("namespace", str(clause.value().py), clause.span))
            elif clause.kind == "np_namespaces":
                peers.append(NetPeer("namespaces", None, clause.span,
                                     self.selector(clause.clause("match"))))
            elif clause.kind == "np_cidr":
                peers.append(self._cidr_peer(clause))
            elif clause.kind == "np_any":
                peers.append(NetPeer("any", None, clause.span))
            elif clause.kind == "np_port":
                pv = clause.values()[0]
                port = self.read(V.port_number, pv, "E107") if pv.kind == "INT" else str(pv.py)
                proto = clause.clause("port_proto")
                ports.append((port, str(proto.value().py).upper() if proto else "TCP"))
        return NetRule(direction, tuple(peers), tuple(ports))

    def _peer_namespace(self, clause: Node):
        in_c = clause.clause("np_in") or clause.clause("np_in_match")
        if in_c is None:
            return None, None
        if in_c.kind == "np_in":
            return str(in_c.value().py), None
        return None, self.selector(in_c.clause("match"))

    def _cidr_peer(self, clause: Node) -> NetPeer:
        import ipaddress

        cidr_v = clause.value()
        excepts = []
        exc = clause.clause("np_except")
        try:
            net = ipaddress.ip_network(cidr_v.text)
        except ValueError as err:
            self.error("E110", f"`{cidr_v.text}` is not a CIDR: {err}", cidr_v.span)
            net = None
        for v in exc.values() if exc else ():
            excepts.append(v.text)
            try:
                sub = ipaddress.ip_network(v.text)
            except ValueError as err:
                self.error("E110", f"`{v.text}` is not a CIDR: {err}", v.span)
                continue
            if net is not None and not sub.subnet_of(net):
                self.error("E110", f"`{v.text}` is not inside `{cidr_v.text}`", v.span,
                           "ipBlock.except must name ranges inside the block")
        return NetPeer("cidr", cidr_v.text, clause.span, excepts=tuple(excepts))
