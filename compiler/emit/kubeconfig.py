"""Emitter: the kubeconfig files kubeadm writes (reference section 2).

* ``kubeconfigs/admin.conf`` and ``kubeconfigs/super-admin.conf`` for the user (server = the
  control-plane endpoint);
* per control plane ``/etc/kubernetes/admin.conf``, ``controller-manager.conf`` and
  ``scheduler.conf`` (the last two point at the node's own apiserver, as kubeadm does);
* on the first control plane only, ``super-admin.conf`` and ``kubelet.conf``: both are
  written by ``kubeadm init`` alone. Joining nodes must not have ``kubelet.conf`` (join
  preflight error; they get it by TLS bootstrap), and ``super-admin.conf`` is a break-glass
  ``system:masters`` credential that should exist on as few hosts as possible.

Client certificates are stored in the state directory and reused like every leaf. The
admin and super-admin certificates are shared by the user's copy and the node's copy, so the
two files are identical, except on control planes that join a cluster whose endpoint is the
node-local proxy (local-proxy on loopback): their admin.conf names the first control plane's
API server, the only one their `kubeadm join` can reach (see
:func:`joins_through_first_control_plane`).
"""

from __future__ import annotations

import base64

import yaml

from kubeforge.compiler import pki, pki_specs, pki_store
from kubeforge.compiler.hostport import https_url
from kubeforge.compiler.pki_specs import kubeconfig_spec
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.ir import Cluster, ClusterNode

KUBERNETES_DIR = "/etc/kubernetes"


def endpoint_url(cluster: Cluster) -> str:
    """``https://<controlPlaneEndpoint>`` (section 2, GetControlPlaneEndpoint)."""
    return https_url(pki_specs.endpoint_host(cluster), cluster.endpoint_port)


def local_url(node: ClusterNode) -> str:
    """The node's own apiserver: ``https://<advertiseAddress>:<bindPort>``."""
    return https_url(str(node.address), pki.APISERVER_BIND_PORT)


def joins_through_first_control_plane(cluster: Cluster, node: ClusterNode) -> bool:
    """A control plane joining a cluster whose endpoint is the node-local proxy has no API
    server behind that endpoint yet (its own is what the join creates; the proxy, if it
    needs one, comes after the join). Token discovery is not enough: kubeadm then uses the
    server cluster-info names (the loopback endpoint) for the rest of the join. So it
    discovers through a file naming the first control plane's API server (as kubespray's
    joins use the first control plane's address), and its admin.conf, kubeadm join's client
    for the etcd and mark-control-plane phases, points there too."""
    return node.is_control_plane and node != cluster.first_control_plane \
        and cluster.endpoint_is_node_local


def first_api_server_url(cluster: Cluster) -> str:
    first = cluster.first_control_plane
    assert first is not None
    return local_url(first)


def render_kubeconfig(cluster_name: str, server: str, ca_pem: bytes, user: str,
                      cert_pem: bytes, key_pem: bytes) -> bytes:
    """A kubeconfig with everything embedded, named like kubeadm names its entries."""
    context = f"{user}@{cluster_name}"

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 20).encode()


def render_token_kubeconfig(cluster_name: str, server: str, ca_pem: bytes, user: str,
                            token: str) -> bytes:
    """A kubeconfig authenticating with a bootstrap token (kubeadm's file discovery)."""
    context = f"{user}@{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii")}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 20).encode()


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster, bundle = ctx.cluster, ctx.shared["pki"]
    ca = bundle.cas.ca

    def kubeconfig(state_rel: str, spec: pki.LeafSpec, server: str) -> bytes:
        leaf = pki_store.ensure_leaf(bundle.state, state_rel, spec, ca, cluster.pki.algorithm,
                                     cluster.pki.cert_validity_days, ctx.now)
        return render_kubeconfig(cluster.name, server, ca.cert_pem, spec.common_name,
                                 leaf.cert_pem, leaf.key_pem)

    endpoint = endpoint_url(cluster)
    admin = kubeconfig("kubeconfigs/admin", kubeconfig_spec(cluster, "admin"), endpoint)
    artifacts = [Artifact("kubeconfigs/admin.conf", admin, 0o600, secret=True)]
    super_admin = kubeconfig("kubeconfigs/super-admin",
                             kubeconfig_spec(cluster, "super-admin"), endpoint)
    artifacts.append(Artifact("kubeconfigs/super-admin.conf", super_admin, 0o600, secret=True))

    first = cluster.first_control_plane
    for node in cluster.control_planes:
        files = {"admin.conf": admin}
        if joins_through_first_control_plane(cluster, node):
            # The same admin certificate, pointing where this node can reach an API server.
            files["admin.conf"] = kubeconfig("kubeconfigs/admin",
                                             kubeconfig_spec(cluster, "admin"),
                                             first_api_server_url(cluster))
        for kind in ("controller-manager", "scheduler"):
            files[f"{kind}.conf"] = kubeconfig(f"kubeconfigs/nodes/{node.name}/{kind}",
                                               kubeconfig_spec(cluster, kind), local_url(node))
        if node == first:
            files["super-admin.conf"] = super_admin
            # ControlPlaneKubeletLocalMode (default on since 1.33, locked on 1.35, gate gone
            # 1.36): the first control plane's kubelet talks to its own apiserver.
            files["kubelet.conf"] = kubeconfig(f"kubeconfigs/nodes/{node.name}/kubelet",
                                               kubeconfig_spec(cluster, "kubelet", node),
                                               local_url(node))
        artifacts += [node_file(node.name, f"{KUBERNETES_DIR}/{name}", content, 0o600, secret=True)
                      for name, content in sorted(files.items())]
    return artifacts
