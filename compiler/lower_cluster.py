"""Lower the `cluster { ... }` block to :class:`~kubeforge.compiler.ir.Cluster` and check it."""

from __future__ import annotations

import ipaddress

from kubeforge.compiler import hostport
from kubeforge.compiler import values as V
from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir import Cluster, ClusterNode, Install, LoadBalancer, PkiSettings
from kubeforge.compiler.lower_addons import lower_addons
from kubeforge.compiler.lower_backup import lower_backup
from kubeforge.compiler.lower_network import NetworkLowerer
from kubeforge.compiler.lower_version import KUBEADM_ALGORITHMS, check_algorithm, lower_version
from kubeforge.compiler.lower_nodes import NodesLowerer
from kubeforge.dsl.ast import Node, is_ip
from kubeforge.dsl.diagnostics import Span

RUNTIMES = ("containerd", "cri-o")
CNIS = ("calico", "flannel", "cilium", "none")
ETCD_TOPOLOGIES = ("stacked", "external")
LB_MODES = ("keepalived-haproxy", "kube-vip", "local-proxy", "external")
PKI_ALGORITHMS = tuple(KUBEADM_ALGORITHMS)
INSTALL_METHODS = ("packages", "preinstalled", "bundle")
OSES = ("debian12", "ubuntu2204", "ubuntu2404")
LB_DEPLOY = ("services", "static-pods")
CGROUPS = ("v2", "v1")
HOST_KINDS = ("machines", "containers")

#: The spellings Go's strconv.ParseBool accepts, which is how components read feature gates.
_GO_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
             **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}


class ClusterLowerer(Lowerer):
    def __init__(self, diags, base_dir) -> None:
        super().__init__(diags, base_dir)
        self.net = NetworkLowerer(diags, base_dir)
        self.families: tuple[int, ...] = (4,)
        self.endpoint_failed = False  # reported already: no "needs an endpoint" on top
        self.algorithm_span: Span | None = None

    def lower(self, stmt: Node) -> Cluster | None:
        body = tuple(stmt.body or ())
        self.unique_stmts(body, "a cluster block")
        name_v = stmt.value(0)
        name = self.name(name_v, "cluster")
        by_kind: dict[str, Node] = {s.kind: s for s in body}

        version = lower_version(self, by_kind.get("kubernetes"), stmt.span)
        networks = self.net.network(by_kind.get("network"), stmt.span)
        self.families = tuple(n.version for n in networks.services)
        runtime = self._enum(by_kind.get("runtime"), RUNTIMES, "container runtime", "containerd")
        cni_stmt = by_kind.get("cni")
        cni = self._enum(cni_stmt, CNIS, "CNI plugin", "calico")
        cni_version = str(cni_stmt.clause("cni_version").value().py) \
            if cni_stmt is not None and cni_stmt.clause("cni_version") else None
        etcd = self._enum(by_kind.get("etcd"), ETCD_TOPOLOGIES, "etcd topology", "stacked")
        pki = self._pki(by_kind.get("pki"))
        nodes = NodesLowerer(self.diags, self.base_dir, self.net, self.families).nodes(
            body, by_kind.get("nodes_from"), stmt.span, etcd)
        lb = self._loadbalancer(by_kind.get("loadbalancer"), nodes)
        endpoint_host, endpoint_port, endpoint_span = self._endpoint(by_kind.get("endpoint"), lb)
        install = self._install(by_kind.get("install"))
        ttl = 86400
        if "token_ttl" in by_kind:
            ttl = self.read(V.duration_seconds, by_kind["token_ttl"].value(), "E106") or ttl
        gates = self._feature_gates(by_kind.get("feature_gates"))
        os_name = self._enum(by_kind.get("os"), OSES, "operating system", "debian12")
        cgroups_stmt = by_kind.get("cgroups")
        cgroups = self._enum(cgroups_stmt, CGROUPS, "cgroup version", "v2")
        hosts = self._enum(by_kind.get("hosts_kind"), HOST_KINDS, "kind of hosts", "machines")
        backup = lower_backup(self, by_kind.get("backup"), etcd, install)
        addons = lower_addons(self, [s for s in body if s.kind == "addon"])
        cluster = Cluster(
            # An invalid version is already reported; the other checks still run.
            name=name, version=version or "0.0.0", span=stmt.span, endpoint_host=endpoint_host,
            endpoint_port=endpoint_port, pod_cidr=networks.pods[0],
            service_cidr=networks.services[0],
            node_cidr=_of_family(networks.nodes, self.families[0]),
            secondary_pod_cidr=networks.pods[1] if len(networks.pods) > 1 else None,
            secondary_service_cidr=networks.services[1] if len(networks.services) > 1 else None,
            secondary_node_cidr=_of_family(networks.nodes, self.families[-1])
            if len(self.families) > 1 else None,
            domain=networks.domain, runtime=runtime, cni=cni, cni_version=cni_version,
            etcd=etcd, loadbalancer=lb, pki=pki, nodes=nodes, install=install,
            token_ttl_seconds=ttl, feature_gates=tuple(gates), os=os_name,
            endpoint_span=endpoint_span, cgroups=cgroups, hosts=hosts,
            cgroups_span=cgroups_stmt.span if cgroups_stmt is not None else stmt.span,
            backup=backup, storage=addons.get("storage"),
        )
        self.net.check(cluster, networks)
        self._check(cluster, by_kind)
        check_algorithm(self, pki.algorithm, version, self.algorithm_span or pki.span)
        return cluster if version is not None else None

    # -- pieces ---------------------------------------------------------------------------
    def _enum(self, stmt: Node | None, choices, what: str, default: str) -> str:
        if stmt is None:
            return default
        return self.choice(stmt.value(), choices, what) or default

    def _feature_gates(self, stmt: Node | None) -> list[tuple[str, bool]]:
        """`Gate = true|false`; components parse gates with Go's strconv.ParseBool, so a
        quoted "true" is accepted too, and anything else is an error (never a silent false)."""
        gates: dict[str, bool] = {}
        for entry in (stmt.body or ()) if stmt else ():
            key_v, val_v = entry.values()[0], entry.values()[1]
            word = V.text(val_v)
            if val_v.kind == "BOOL" or word in _GO_BOOLS:
                gates[V.text(key_v)] = _GO_BOOLS[word]
            else:
                self.error("E105", f"feature gate `{V.text(key_v)}` must be true or false, "
                           f"not `{word}`", val_v.span, f"write `{V.text(key_v)} = true`")
        return sorted(gates.items())

    def _pki(self, stmt: Node | None) -> PkiSettings:
        if stmt is None:
            return PkiSettings()
        self.unique_stmts(stmt.body or (), "the pki block")
        algorithm, ca_days, cert_days, sans = "rsa-2048", 3650, 365, []
        for item in stmt.body or ():
            if item.kind == "algorithm":
                algorithm = self.choice(item.value(), PKI_ALGORITHMS, "key algorithm") or algorithm
                self.algorithm_span = item.value().span
            elif item.kind == "ca_validity":
                ca_days = self.read(V.duration_days, item.value(), "E106") or ca_days
            elif item.kind == "cert_validity":
                cert_days = self.read(V.duration_days, item.value(), "E106") or cert_days
            elif item.kind == "san":
                sans.extend(self._san(v) for v in item.values())
        if cert_days > ca_days:
            self.error("E106", "certificates would outlive their CA", stmt.span,
                       "make cert_validity shorter than ca_validity")
        return PkiSettings(algorithm, ca_days, cert_days, tuple(sans), stmt.span)

    def _san(self, value) -> str:
        """An IP address or a DNS name (wildcards allowed), as kubeadm's ValidateCertSANs
        wants; DNS names are case-insensitive, so they are lower-cased as in `endpoint`."""
        text = hostport.normalize_host(V.text(value))
        if not text.isascii():  # x509 wants A-labels: say which, rather than convert silently
            label = V.a_label(text)
            self.error("E105", f"SAN `{V.text(value)}` is not an ASCII DNS name", value.span,
                       f"certificates hold internationalised names as A-labels: write `{label}`"
                       if label else "write the name's A-label (xn--...) form")
        elif not (is_ip(text) or V.is_dns_subdomain(text.removeprefix("*."))):
            self.error("E105", f"SAN `{V.text(value)}` is neither an IP address nor a DNS name",
                       value.span, "e.g. `san \"api.example.com\" \"*.apps.example.com\" 10.0.0.100`")
        return text

    def _loadbalancer(self, stmt: Node | None, nodes) -> LoadBalancer:
        if stmt is None:
            return LoadBalancer("external", port=6443)
        mode = self.choice(stmt.value(), LB_MODES, "load balancer",
                           {"haproxy-keepalived": "keepalived-haproxy", "kubevip": "kube-vip",
                            "none": "external"}) or "external"
        body = stmt.body or ()
        self.unique_stmts(body, "the loadbalancer block")
        vip = interface = image = None
        port = router_id = None
        deploy_as = "services"
        for item in body:
            if item.kind == "vip":
                vip = ipaddress.ip_address(item.value().text) if is_ip(item.value().text) else None
                if vip is None:
                    self.error("E105", f"`{item.value().text}` is not an IP address", item.value().span)
            elif item.kind == "interface":
                interface = str(item.value().py)
            elif item.kind == "lb_port":
                port = self.read(V.port_number, item.value(), "E107")
            elif item.kind == "router_id":
                router_id = int(item.value().text)
                if not 1 <= router_id <= 255:
                    self.error("E105", "router_id must be 1 to 255", item.value().span)
            elif item.kind == "lb_mode":
                deploy_as = self.choice(item.value(), LB_DEPLOY, "load balancer deployment") or deploy_as
            elif item.kind == "lb_image":
                image = str(item.value().py)
        if mode in ("keepalived-haproxy", "kube-vip") and vip is None:
            self.error("E115", f"load balancer `{mode}` needs a `vip`", stmt.span,
                       "add `{ vip 192.0.2.100 interface \"eth0\" }`")
        if mode in ("keepalived-haproxy", "kube-vip") and interface is None:
            self.error("E115", f"load balancer `{mode}` needs an `interface`", stmt.span,
                       "the network interface that carries the VIP, e.g. `interface \"eth0\"`")
        if port is None:
            dedicated = any(n.is_loadbalancer for n in nodes)
            # haproxy co-located with an apiserver cannot take 6443 on the same address.
            port = 8443 if mode == "keepalived-haproxy" and not dedicated else 6443
        return LoadBalancer(mode, vip, interface, port, router_id or 51, deploy_as, image, stmt.span)

    def _endpoint(self, stmt: Node | None, lb: LoadBalancer) -> tuple[str | None, int, Span]:
        if stmt is None:
            if lb.vip is not None:
                return str(lb.vip), lb.port, lb.span
            if lb.mode == "local-proxy":
                return "127.0.0.1", lb.port, lb.span
            return None, 6443, lb.span
        value = stmt.value()
        text = V.text(value)
        try:
            if "[" not in text and hostport.is_ipv6(text.strip()):
                # `fd00::100:6443` is a valid address itself: a port must not be guessed.
                raise hostport.HostPortError(
                    f"`{text}` is an IPv6 address without brackets",
                    f"an IPv6 endpoint needs brackets: \"[{text}]\" for the "
                    "default port, or \"[fd00::100]:6443\" with one")
            host, port = hostport.parse(text)
        except hostport.HostPortError as problem:
            self.error("E105", f"endpoint {problem}", value.span,
                       problem.hint or 'write "host:port", e.g. "10.0.0.100:6443" or '
                                       '"[fd00::100]:6443"')
            self.endpoint_failed = True
            return None, lb.port if lb.mode != "external" else 6443, value.span
        if not (is_ip(host) or V.is_dns_subdomain(host)):
            self.error("E105", f"endpoint host `{host}` is neither an IP address nor a DNS name",
                       value.span)
        return host, port or (lb.port if lb.mode != "external" else 6443), value.span

    def _install(self, stmt: Node | None) -> Install:
        if stmt is None:
            return Install()
        method = self.choice(stmt.value(), INSTALL_METHODS, "install method") or "packages"
        path_clause = stmt.clause("install_path")
        path = str(path_clause.value().py) if path_clause else None
        if method == "bundle" and path is None:
            self.error("E115", "`install bundle` needs a path", stmt.span,
                       'add `path "bundle"`: a directory made by `kubeforge bundle build`')
        return Install(method, path, (path_clause or stmt).span)

    # -- cluster-wide checks -----------------------------------------------------------------
    def _check(self, c: Cluster, by_kind: dict[str, Node]) -> None:
        if c.cgroups == "v1":
            # Kubernetes 1.31 put cgroup v1 in maintenance mode; 1.35 made the kubelet refuse
            # it unless failCgroupV1 is false (KEP-5573), and its removal is announced.
            self.warn("W150", "cgroup v1 hosts: the kubelet runs with `failCgroupV1: false` "
                              "and kubeadm's SystemVerification preflight check is skipped",
                      c.cgroups_span, "cgroup v1 support is deprecated upstream and will be "
                                      "removed; move the hosts to cgroup v2 (systemd "
                                      "`systemd.unified_cgroup_hierarchy=1`)")
        names: dict[str, ClusterNode] = {}
        addresses: dict[str, ClusterNode] = {}
        for node in c.nodes:
            if node.name in names:
                self.error("E120", f"node `{node.name}` is declared twice", node.span,
                           f"first declared at line {names[node.name].span.line}")
            names.setdefault(node.name, node)
            for address in node.addresses:
                key = str(address)
                if key in addresses and addresses[key].name != node.name:
                    self.error("E120", f"nodes `{addresses[key].name}` and `{node.name}` share "
                               f"the address {key}", node.span)
                addresses.setdefault(key, node)
        self.net.check_nodes(c)

        cps = c.control_planes
        if c.nodes and not cps:
            self.error("E115", "the cluster has no control-plane node", c.span,
                       "give at least one node `role control-plane`")
        endpoint_needed = len(cps) > 1
        if endpoint_needed and c.endpoint_host is None and not self.endpoint_failed:
            self.error("E111", f"a cluster with {len(cps)} control-plane nodes needs an endpoint",
                       c.span, 'add `endpoint "api.example.internal:6443"` or a load balancer VIP')
        members = c.etcd_nodes
        if c.etcd == "external" and not members:
            self.error("E112", "`etcd external` needs nodes with role etcd", c.span,
                       "put hosts in the inventory group `etcd` or add `role etcd` to nodes")
        elif members and len(members) % 2 == 0:
            # A warning: scaling 3 -> 5 control planes passes through 4, and etcd runs with
            # an even count; it just tolerates no more failures than one member fewer.
            self.warn("W112", f"etcd would have {len(members)} members: an even count "
                      f"tolerates no more failed members than {len(members) - 1} do",
                      by_kind.get("etcd", by_kind.get("kubernetes")).span if by_kind.get("etcd") else c.span,
                      f"fine on the way to {len(members) + 1}; to stay, use {len(members) - 1} "
                      f"or {len(members) + 1} "
                      f"{'control-plane' if c.etcd == 'stacked' else 'etcd'} nodes")

        lb = c.loadbalancer
        if lb.vip is not None and str(lb.vip) in addresses:
            self.error("E120", f"VIP {lb.vip} is also the address of node "
                       f"`{addresses[str(lb.vip)].name}`", lb.span)
        if lb.vip is not None and c.endpoint_host is not None and is_ip(c.endpoint_host) \
                and ipaddress.ip_address(c.endpoint_host) != lb.vip:
            self.error("E121", f"endpoint {c.endpoint_host} is not the load balancer VIP {lb.vip}",
                       c.endpoint_span, f"use `endpoint \"{hostport.join(lb.vip, lb.port)}\"` or a DNS name "
                       "that resolves to the VIP")
        if lb.mode in ("keepalived-haproxy", "local-proxy") and c.endpoint_port != lb.port:
            self.error("E121", f"endpoint port {c.endpoint_port} is not the load balancer port "
                       f"{lb.port}", c.endpoint_span,
                       f"haproxy listens on {lb.port}; use that port in the endpoint or set "
                       f"`port {c.endpoint_port}` in the loadbalancer block")
        if lb.mode == "keepalived-haproxy" and lb.port == 6443 and not c.loadbalancer_nodes:
            self.error("E121", "haproxy cannot listen on 6443 on control-plane nodes "
                       "(the API server does)", lb.span, "use `port 8443` or dedicated loadbalancer nodes")
        if len(cps) > 1 and lb.mode == "external" and c.endpoint_host is not None \
                and is_ip(c.endpoint_host) and c.endpoint_host in addresses:
            self.warn("W101", f"the endpoint is the address of node "
                      f"`{addresses[c.endpoint_host].name}`: losing it loses the API",
                      c.endpoint_span, "use a VIP or a load-balanced DNS name")


def _of_family(nets, family: int):
    return next((n for n in nets if n.version == family), None)
