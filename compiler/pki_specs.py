"""Which leaf certificates kubeadm issues for a cluster: subject, SANs and usages of every
certificate of a node and of every kubeconfig's client certificate (reference sections 1.2,
1.3 and 2). :mod:`kubeforge.compiler.pki` makes them and :mod:`kubeforge.compiler.pki_store`
keeps them.

Version-dependent facts come from :mod:`kubeforge.compiler.versions`;
``tests/pki/test_pki_kubeadm_conformance.py`` compares the result with what each supported
version's own ``kubeadm init phase certs all`` / ``kubeconfig all`` writes.
"""

from __future__ import annotations

import ipaddress

from kubeforge.compiler import versions
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.pki import LeafSpec


def _split_sans(names) -> tuple[list[str], list[str]]:
    dns, ips = [], []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return dns, ips


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def endpoint_host(cluster: Cluster) -> str:
    """The control-plane endpoint host; the first control plane when none is declared
    (the same fallback :attr:`Cluster.endpoint` uses, so the SAN covers what configs say)."""
    if cluster.endpoint_host:
        return cluster.endpoint_host
    first = cluster.first_control_plane
    return str(first.address) if first else "127.0.0.1"


def apiserver_extra_sans(cluster: Cluster) -> tuple[str, ...]:
    """What the kubeadm config must list in ``apiServer.certSANs``: the declared extra SANs,
    the VIP, and for per-node proxies the loopback names kubelets dial (section 5.6)."""
    extra = list(cluster.pki.extra_sans)
    if cluster.loadbalancer.vip is not None:
        extra.append(str(cluster.loadbalancer.vip))
    if cluster.loadbalancer.mode == "local-proxy":
        extra += ["localhost", "127.0.0.1"]
    return _unique(extra)


def apiserver_sans(cluster: Cluster, node: ClusterNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Section 1.3: (DNS names sorted, IPs in kubeadm's order)."""
    dns = [node.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{cluster.domain}"]
    ips = [str(cluster.kubernetes_service_ip), *map(str, node.addresses)]
    extra_dns, extra_ips = _split_sans([endpoint_host(cluster), *apiserver_extra_sans(cluster)])
    return tuple(sorted(set(dns + extra_dns))), _unique(ips + extra_ips)


def etcd_sans(node: ClusterNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Section 1.3: the node itself and loopback; never the VIP or the service IP."""
    return tuple(sorted({node.name, "localhost"})), _unique([str(node.address), "127.0.0.1", "::1"])


#: The group of admin.conf (KEP 4214, kubeadm 1.29+), bound to cluster-admin by kubeadm.
CLUSTER_ADMINS = "kubeadm:cluster-admins"


def apiserver_kubelet_client_orgs(cluster: Cluster) -> tuple[str, ...]:
    """O of apiserver-kubelet-client: kubeadm patches with the kubelet-api-admin binding
    (versions table) issue none and bind the user itself; older ones use cluster-admins."""
    return () if versions.kubelet_api_admin_binding(cluster.version) else (CLUSTER_ADMINS,)


def node_leaf_specs(cluster: Cluster, node: ClusterNode) -> tuple[LeafSpec, ...]:
    """Every leaf under /etc/kubernetes/pki that ``node`` needs (table 1.2)."""
    specs: list[LeafSpec] = []
    if node.is_control_plane:
        dns, ips = apiserver_sans(cluster, node)
        specs += [
            LeafSpec("apiserver", "ca", "kube-apiserver", server_auth=True,
                     dns_names=dns, ip_addresses=ips),
            LeafSpec("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
                     apiserver_kubelet_client_orgs(cluster), client_auth=True),
            LeafSpec("front-proxy-client", "front-proxy", "front-proxy-client", client_auth=True),
            LeafSpec("apiserver-etcd-client", "etcd", "kube-apiserver-etcd-client",
                     client_auth=True),
        ]
    if node in cluster.etcd_nodes:
        dns, ips = etcd_sans(node)
        # etcd uses its server cert for its own client connections too, hence clientAuth.
        specs += [
            LeafSpec("etcd/server", "etcd", node.name, server_auth=True, client_auth=True,
                     dns_names=dns, ip_addresses=ips),
            LeafSpec("etcd/peer", "etcd", node.name, server_auth=True, client_auth=True,
                     dns_names=dns, ip_addresses=ips),
            LeafSpec("etcd/healthcheck-client", "etcd", "kube-etcd-healthcheck-client",
                     client_auth=True),
        ]
    return tuple(specs)


def kubeconfig_spec(cluster: Cluster, kind: str, node: ClusterNode | None = None) -> LeafSpec:
    """The client certificate kubeadm embeds in a kubeconfig (section 2)."""
    if kind == "admin":
        return LeafSpec("admin", "ca", "kubernetes-admin", (CLUSTER_ADMINS,), client_auth=True)
    if kind == "super-admin":
        return LeafSpec("super-admin", "ca", "kubernetes-super-admin", ("system:masters",),
                        client_auth=True)
    if kind == "controller-manager":
        return LeafSpec("controller-manager", "ca", "system:kube-controller-manager",
                        client_auth=True)
    if kind == "scheduler":
        return LeafSpec("scheduler", "ca", "system:kube-scheduler", client_auth=True)
    if kind == "kubelet" and node is not None:
        return LeafSpec("kubelet", "ca", f"system:node:{node.name}", ("system:nodes",),
                        client_auth=True)
    raise ValueError(f"unknown kubeconfig kind {kind!r}")
