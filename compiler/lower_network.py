"""The cluster's IP networks: `network { ... }`, node addresses, and the checks kubeadm makes.

A network statement takes one CIDR, or two for dual-stack (one per IP family, the primary
first: `pods 10.244.0.0/16 fd00:10:244::/56`), as kubeadm's comma-separated ``podSubnet``
and ``serviceSubnet`` do. The service network's order decides the cluster's primary family:
the API server advertises an address of that family and kubeadm derives every default
(cluster DNS address, kube-proxy bind address) from it. Sizes follow kubeadm's own
validation (cmd/kubeadm/app/apis/kubeadm/validation: ValidateIPNetFromString,
ValidateServiceSubnetSize, ValidatePodSubnetNodeMask).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kubeforge.compiler import values as V
from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir import Cluster, IPAddress, IPNetwork
from kubeforge.dsl.ast import Node, Value
from kubeforge.dsl.diagnostics import Span

DEFAULT_PODS = ipaddress.ip_network("10.244.0.0/16")
DEFAULT_SERVICES = ipaddress.ip_network("10.96.0.0/12")

#: kubeadm constants: MaximumBitsForServiceSubnet, PodSubnetNodeMaskMaxDiff, and the
#: controller manager's default node-cidr-mask-size per family.
MAX_SERVICE_HOST_BITS = 20
POD_NODE_MASK_MAX_DIFF = 16
NODE_MASK = {4: 24, 6: 64}
MIN_SERVICE_ADDRESSES = 16  # room for the API server (.1) and cluster DNS (.10)
#: The subnet assumed for the nodes when `network { nodes ... }` does not say.
ASSUMED_NODE_PREFIX = {4: 24, 6: 64}


@dataclass(frozen=True)
class Networks:
    pods: tuple[IPNetwork, ...]
    services: tuple[IPNetwork, ...]
    nodes: tuple[IPNetwork, ...]
    domain: str
    span: Span  # the network block, or the cluster when it has none


def family_name(version: int) -> str:
    return f"IPv{version}"


class NetworkLowerer(Lowerer):
    def network(self, stmt: Node | None, cluster_span: Span) -> Networks:
        pods: tuple[IPNetwork, ...] = (DEFAULT_PODS,)
        services: tuple[IPNetwork, ...] = (DEFAULT_SERVICES,)
        nodes: tuple[IPNetwork, ...] = ()
        domain = "cluster.local"
        if stmt is None:
            return Networks(pods, services, nodes, domain, cluster_span)
        self.unique_stmts(stmt.body or (), "the network block")
        for item in stmt.body or ():
            if item.kind == "domain":
                domain = V.text(item.value())
                if not V.is_dns_subdomain(domain):
                    self.error("E103", f"`{domain}` is not a DNS domain", item.value().span)
                continue
            nets = self._family_pair(item.values(), self._cidr, "networks")
            if nets is None:
                continue
            if item.kind == "pods_cidr":
                pods = nets
            elif item.kind == "services_cidr":
                services = nets
            else:
                nodes = nets
        return Networks(pods, services, nodes, domain, stmt.span)

    def addresses(self, values: list[Value], families: tuple[int, ...],
                  node: str) -> tuple[IPAddress, IPAddress | None] | None:
        """A node's `address` values, ordered primary family first."""
        found = self._family_pair(values, self._address, "addresses")
        if found is None:
            return None
        have = {a.version: a for a in found}
        span = values[0].span
        missing = [f for f in families if f not in have]
        extra = [f for f in have if f not in families]
        if extra:
            self.error("E120", f"node `{node}` has an {family_name(extra[0])} address but the "
                       f"cluster's networks are {' and '.join(map(family_name, families))} only",
                       span, "declare that family's pods and services in `network`, "
                             "or drop the address")
            return None
        if missing:
            want = family_name(missing[0])
            hint = (f"a dual-stack node needs one address per family: `address "
                    f"{_example(families[0])} {_example(families[1])}`") if len(families) == 2 \
                else (f"the cluster is {want}; for an {family_name(found[0].version)} cluster "
                      "declare its pods and services in `network`")
            self.error("E120", f"node `{node}` has no {want} address", span, hint)
            return None
        primary = have[families[0]]
        return primary, have.get(families[1]) if len(families) == 2 else None

    # -- literals -----------------------------------------------------------------------------
    def _family_pair(self, values: list[Value], read, what: str) -> tuple | None:
        """One value, or two of different IP families (dual-stack), in the order given."""
        items = [read(v) for v in values]
        if any(i is None for i in items):
            return None
        if len(items) > 2:
            self.error("E110", f"at most two {what}, one per IP family (dual-stack)",
                       values[2].span)
            return None
        if len(items) == 2 and items[0].version == items[1].version:
            self.error("E110", f"two {family_name(items[0].version)} {what}: dual-stack takes "
                       "one IPv4 and one IPv6", values[1].span,
                       "kubeadm accepts one CIDR per IP family")
            return None
        return tuple(items)

    def _address(self, value: Value) -> IPAddress | None:
        try:
            return ipaddress.ip_address(value.text)
        except ValueError:
            self.error("E105", f"`{value.text}` is not an IP address", value.span)
            return None

    def _cidr(self, value: Value) -> IPNetwork | None:
        try:
            return ipaddress.ip_network(value.text)
        except ValueError:
            try:
                fixed = ipaddress.ip_network(value.text, strict=False)
            except ValueError:
                self.error("E110", f"`{value.text}` is not a valid CIDR", value.span)
                return None
            self.error("E110", f"`{value.text}` has host bits set", value.span,
                       f"did you mean `{fixed}`?")
            return None

    # -- checks -------------------------------------------------------------------------------
    def check(self, c: Cluster, net: Networks) -> None:
        span = net.span
        pod_families = tuple(n.version for n in c.pod_cidrs)
        if pod_families != c.ip_families:
            self.error("E110", f"the pod networks are {_families(pod_families)} but the service "
                       f"networks are {_families(c.ip_families)}", span,
                       "give pods and services the same IP families, primary first")
        for n in c.node_cidrs:
            if n.version not in c.ip_families:
                self.error("E110", f"the nodes' network {n} is {family_name(n.version)}, which "
                           f"the cluster's services are not", span)
        nets = [*(("pod", n) for n in c.pod_cidrs), *(("service", n) for n in c.service_cidrs),
                *(("node", n) for n in c.node_cidrs)]
        for i, (a_name, a) in enumerate(nets):
            for b_name, b in nets[i + 1:]:
                if a.version == b.version and a.overlaps(b):
                    self.error("E110", f"the {a_name} network {a} overlaps the {b_name} network {b}",
                               span, "give each network its own range")
        for s in c.service_cidrs:
            host_bits = s.max_prefixlen - s.prefixlen
            if s.num_addresses < MIN_SERVICE_ADDRESSES:
                self.error("E110", f"service network {s} is too small", span,
                           f"it needs at least {MIN_SERVICE_ADDRESSES} addresses")
            elif host_bits > MAX_SERVICE_HOST_BITS:
                self.error("E110", f"service network {s} is too large for kubeadm", span,
                           f"use a /{s.max_prefixlen - MAX_SERVICE_HOST_BITS} or smaller "
                           f"(at most {MAX_SERVICE_HOST_BITS} host bits)")
        for p in c.pod_cidrs:
            mask = NODE_MASK[p.version]
            if p.prefixlen > mask:
                self.error("E110", f"pod network {p} is smaller than one node's range (/{mask})",
                           span, f"use a /{mask} or larger")
            elif mask - p.prefixlen > POD_NODE_MASK_MAX_DIFF:
                self.error("E110", f"pod network {p} is too large for kubeadm: more than "
                           f"2^{POD_NODE_MASK_MAX_DIFF} node ranges of /{mask}", span,
                           f"use a /{mask - POD_NODE_MASK_MAX_DIFF} or smaller")

    def check_nodes(self, c: Cluster) -> None:
        """Node and VIP addresses against the pod, service and node networks, per family."""
        for node in c.nodes:
            for address in node.addresses:
                for net_name, nets in (("pod", c.pod_cidrs), ("service", c.service_cidrs)):
                    for net in nets:
                        if address in net:
                            self.error("E110", f"node `{node.name}` address {address} is inside "
                                       f"the {net_name} network {net}", node.span)
        cps = c.control_planes
        first = cps[0] if cps else (c.nodes[0] if c.nodes else None)
        lb = c.loadbalancer
        for family in c.ip_families:
            subnet = next((n for n in c.node_cidrs if n.version == family), None)
            assumed = ""
            if subnet is None and first is not None:
                anchor = next((a for a in first.addresses if a.version == family), None)
                if anchor is None:
                    continue
                prefix = ASSUMED_NODE_PREFIX[family]
                subnet = ipaddress.ip_network(f"{anchor}/{prefix}", strict=False)
                assumed = f" (assumed /{prefix}; declare `network {{ nodes CIDR }}`)"
            if subnet is None:
                continue
            for node in c.nodes:
                for address in node.addresses:
                    if address.version == family and address not in subnet:
                        self.error("E120", f"node `{node.name}` address {address} is outside "
                                   f"the nodes' subnet {subnet}{assumed}", node.span)
            if lb.vip is not None and lb.vip.version == family and lb.vip not in subnet:
                self.error("E120", f"VIP {lb.vip} is outside the nodes' subnet {subnet}{assumed}",
                           lb.span, "a VRRP or ARP VIP must be on the nodes' own network")
        if lb.vip is not None and lb.vip.version not in c.ip_families:
            self.error("E120", f"VIP {lb.vip} is {family_name(lb.vip.version)} but the cluster "
                       f"is {_families(c.ip_families)}", lb.span)


def _families(families: tuple[int, ...]) -> str:
    return " + ".join(map(family_name, families)) or "none"


def _example(family: int) -> str:
    return "192.0.2.10" if family == 4 else "2001:db8::10"
