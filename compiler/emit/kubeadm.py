"""Emitter: kubeadm configuration files, complete before any host is touched.

* First control plane: ``/etc/kubernetes/kubeadm/init.yaml`` = InitConfiguration +
  ClusterConfiguration + KubeletConfiguration + KubeProxyConfiguration.
* Every other control plane and every worker: ``/etc/kubernetes/kubeadm/join.yaml`` (only
  ``JoinConfiguration`` is read by ``kubeadm join``; the rest comes from the cluster).

API version: ``kubeadm.k8s.io/v1beta4`` (:data:`versions.KUBEADM_API`), which every supported
minor reads (1.37 removed v1beta3; its v1 is a placeholder). Control-plane joins carry no
``certificateKey``: the PKI emitter pre-distributes the shared CA and service-account
material, so no ``--upload-certs`` secret (and its 2-hour window) is involved. The files
hold the bootstrap token, so they are secret (0600).

Labels the kubelet may not set on its own Node (``node-role.kubernetes.io/*`` and the rest of
the ``kubernetes.io``/``k8s.io`` namespaces outside kubelet's allow-list) would make the
kubelet refuse to start if passed as ``--node-labels``; they are published in
``ctx.shared["node_labels_after_join"]`` (node -> ((key, value), ...)) for a step that labels
the Node through the API after it joined.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubeforge.compiler import hostport, versions
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.emit.kubeconfig import (first_api_server_url,
                                               joins_through_first_control_plane,
                                               render_token_kubeconfig)
from kubeforge.compiler.emit.render import dump_yaml_documents, go_duration
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.lower_version import KUBEADM_ALGORITHMS
from kubeforge.compiler.state import StateDir

KUBEADM_DIR = "/etc/kubernetes/kubeadm"
INIT_PATH = f"{KUBEADM_DIR}/init.yaml"
JOIN_PATH = f"{KUBEADM_DIR}/join.yaml"
DISCOVERY_PATH = f"{KUBEADM_DIR}/discovery.conf"

PKI_DIR = "/etc/kubernetes/pki"
API_SERVER_PORT = 6443  # localAPIEndpoint.bindPort on every control plane
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"

CRI_SOCKETS = {
    "containerd": "unix:///run/containerd/containerd.sock",
    "cri-o": "unix:///run/crio/crio.sock",
}

#: Labels inside kubernetes.io / k8s.io that the kubelet may still set itself
#: (k8s.io/kubelet/pkg/apis: kubeletLabels + kubeletLabelNamespaces).
_KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/instance-type", "kubernetes.io/os",
    "kubernetes.io/arch", "beta.kubernetes.io/instance-type", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch", "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region", "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region", "node.kubernetes.io/instance-type",
})
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def cidr_list(cidrs: Iterable[object]) -> str:
    return ",".join(map(str, cidrs))


def cri_socket(cluster: Cluster) -> str:
    return CRI_SOCKETS[cluster.runtime]


def kubelet_may_set_label(key: str) -> bool:
    namespace = key.rpartition("/")[0]
    restricted = any(namespace == ns or namespace.endswith("." + ns)
                     for ns in ("kubernetes.io", "k8s.io"))
    if not restricted or key in _KUBELET_LABELS:
        return True
    return any(namespace == ns or namespace.endswith("." + ns) for ns in _KUBELET_LABEL_NAMESPACES)


def extra_args(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Flags in v1beta4's shape: ``[{name, value}]``."""
    return [{"name": k, "value": v} for k, v in pairs]


def kubelet_args(cluster: Cluster, pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """``kubeletExtraArgs``; a flag the version's kubelet no longer has is a kubeforge bug
    (the kubelet would refuse to start)."""
    pairs = list(pairs)
    for flag, _ in pairs:
        removed = versions.kubelet_flag_removed(flag, cluster.version)
        if removed is not None:
            raise RuntimeError(f"kubelet 1.{removed} removed --{flag}, which kubeforge "
                                 f"would pass to Kubernetes {cluster.version}")
    return extra_args(pairs)


def _feature_gate_flag(cluster: Cluster) -> list[tuple[str, str]]:
    if not cluster.feature_gates:
        return []
    return [("feature-gates", ",".join(f"{k}={str(v).lower()}" for k, v in cluster.feature_gates))]


# ---------------------------------------------------------------------------- documents


def node_taints(node: ClusterNode) -> list[dict[str, str]]:
    """Always explicit: declared taints, else the control-plane taint unless the control plane
    also works as a worker (kubeadm reads an empty list as "no taint")."""
    if node.taints:
        return [{"key": t.key, "effect": t.effect, **({"value": t.value} if t.value else {})}
                for t in node.taints]
    if node.is_control_plane and not node.is_worker:
        return [dict(CONTROL_PLANE_TAINT)]
    return []


def node_registration(cluster: Cluster, node: ClusterNode) -> dict[str, Any]:
    # Dual-stack: both addresses, the cluster's primary family first (kubelet --node-ip).
    flags = [("node-ip", ",".join(map(str, node.addresses)))]
    labels = [f"{k}={v}" for k, v in node.labels if kubelet_may_set_label(k)]
    if labels:
        flags.append(("node-labels", ",".join(labels)))
    return {
        "name": node.name,
        "criSocket": cri_socket(cluster),
        # A bundle imported every image kubeadm needs: a pull would mean a wrong tag, and on
        # an offline host it would hang until kubeadm's timeout, so it is refused outright.
        "imagePullPolicy": "Never" if cluster.install.method == "bundle" else "IfNotPresent",
        "taints": node_taints(node),
        "kubeletExtraArgs": kubelet_args(cluster, flags),
    }


def local_api_endpoint(node: ClusterNode) -> dict[str, Any]:
    return {"advertiseAddress": str(node.address), "bindPort": API_SERVER_PORT}


def init_configuration(cluster: Cluster, node: ClusterNode, token: str) -> dict[str, Any]:
    return {
        "apiVersion": versions.KUBEADM_API,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{
            "token": token,
            "description": f"kubeforge join token for cluster {cluster.name}",
            "ttl": go_duration(cluster.token_ttl_seconds),
            "usages": ["signing", "authentication"],
            "groups": [BOOTSTRAP_GROUP],
        }],
        "localAPIEndpoint": local_api_endpoint(node),
        "nodeRegistration": node_registration(cluster, node),
    }


def etcd_section(cluster: Cluster) -> dict[str, Any]:
    if cluster.etcd == "external":
        return {"external": {
            "endpoints": [hostport.https_url(n.address, 2379) for n in cluster.etcd_nodes],
            "caFile": f"{PKI_DIR}/etcd/ca.crt",
            "certFile": f"{PKI_DIR}/apiserver-etcd-client.crt",
            "keyFile": f"{PKI_DIR}/apiserver-etcd-client.key",
        }}
    return {"local": {"dataDir": "/var/lib/etcd"}}


def cluster_configuration(cluster: Cluster, cert_sans: Iterable[str]) -> dict[str, Any]:
    gates = _feature_gate_flag(cluster)
    doc: dict[str, Any] = {
        "apiVersion": versions.KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": cluster.name,
        "kubernetesVersion": f"v{cluster.version}",
        "controlPlaneEndpoint": cluster.endpoint,
        "certificatesDir": PKI_DIR,
        "imageRepository": versions.IMAGE_REPOSITORY,
        "networking": {
            # kubeadm's dual-stack form: one CIDR per family, comma-separated, primary first.
            "podSubnet": cidr_list(cluster.pod_cidrs),
            "serviceSubnet": cidr_list(cluster.service_cidrs),
            "dnsDomain": cluster.domain,
        },
        "apiServer": {"certSANs": list(cert_sans)},
        "etcd": etcd_section(cluster),
    }
    if gates:
        for component in ("apiServer", "controllerManager", "scheduler"):
            doc.setdefault(component, {})["extraArgs"] = extra_args(gates)
    doc["encryptionAlgorithm"] = KUBEADM_ALGORITHMS[cluster.pki.algorithm]
    doc["certificateValidityPeriod"] = go_duration(cluster.pki.cert_validity_days * 86400)
    doc["caCertificateValidityPeriod"] = go_duration(cluster.pki.ca_validity_days * 86400)
    return doc


def kubelet_configuration(cluster: Cluster) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Must match the runtime's cgroup driver (hostprep writes SystemdCgroup = true).
        "cgroupDriver": "systemd",
        "clusterDNS": [str(cluster.dns_service_ip)],
        "clusterDomain": cluster.domain,
        "containerRuntimeEndpoint": cri_socket(cluster),
        "rotateCertificates": True,
        "failSwapOn": True,
    }
    if cluster.cgroups == "v1":
        # The kubelet refuses cgroup v1 hosts by default where the versions table says
        # fail_cgroup_v1 (1.35+); saying so explicitly is harmless before that.
        doc["failCgroupV1"] = False
    if cluster.hosts == "containers":
        # Every node's file systems are the one disk all containers share, so its free share
        # says nothing about one node: no disk-based eviction and no image GC, as kind does
        # for its nodes (kind's default KubeletConfiguration).
        doc["evictionHard"] = {"nodefs.available": "0%", "nodefs.inodesFree": "0%",
                               "imagefs.available": "0%"}
        doc["imageGCHighThresholdPercent"] = 100
    if cluster.feature_gates:
        doc["featureGates"] = dict(cluster.feature_gates)
    return doc


def kube_proxy_configuration(cluster: Cluster) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        # iptables: IPVS needs kernel modules that are not everywhere (reference 4.2).
        "mode": "iptables",
        # kubeadm defaults clusterCIDR to networking.podSubnet and warns on anything else.
        "clusterCIDR": cidr_list(cluster.pod_cidrs),
    }
    if cluster.hosts == "containers":
        # The conntrack table size and its TCP timeouts are machine-wide kernel settings a
        # container cannot write: 0 leaves them as they are (what kind does for the same case).
        doc["conntrack"] = {"maxPerCore": 0, "tcpEstablishedTimeout": "0s",
                            "tcpCloseWaitTimeout": "0s"}
    if cluster.feature_gates:
        doc["featureGates"] = dict(cluster.feature_gates)
    return doc


def join_configuration(cluster: Cluster, node: ClusterNode, token: str,
                       ca_cert_hash: str) -> dict[str, Any]:
    if joins_through_first_control_plane(cluster, node):
        # The file pins the CA itself (it embeds it), so no caCertHashes are needed.
        discovery: dict[str, Any] = {"file": {"kubeConfigPath": DISCOVERY_PATH},
                                     "tlsBootstrapToken": token}
    else:
        discovery = {"bootstrapToken": {
            "apiServerEndpoint": cluster.endpoint,
            "token": token,
            "caCertHashes": [ca_cert_hash],
        }}
    doc: dict[str, Any] = {
        "apiVersion": versions.KUBEADM_API,
        "kind": "JoinConfiguration",
        "nodeRegistration": node_registration(cluster, node),
        "discovery": discovery,
    }
    if node.is_control_plane:
        doc["controlPlane"] = {"localAPIEndpoint": local_api_endpoint(node)}
    return doc


def kubernetes_nodes(cluster: Cluster) -> tuple[ClusterNode, ...]:
    """Nodes that run a kubelet: control planes first (init before join), then workers."""
    return cluster.control_planes + cluster.workers


def init_documents(cluster: Cluster, node: ClusterNode, token: str,
                   cert_sans: Iterable[str]) -> list[dict[str, Any]]:
    return [init_configuration(cluster, node, token), cluster_configuration(cluster, cert_sans),
            kubelet_configuration(cluster), kube_proxy_configuration(cluster)]


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster = ctx.cluster
    bundle = ctx.shared["pki"]
    token = StateDir(ctx.state_dir).bootstrap_token()
    first = cluster.first_control_plane
    artifacts = []
    for node in kubernetes_nodes(cluster):
        if node == first:
            path = INIT_PATH
            docs = init_documents(cluster, node, token, bundle.apiserver_cert_sans)
        else:
            path = JOIN_PATH
            docs = [join_configuration(cluster, node, token, bundle.ca_cert_hash)]
            if joins_through_first_control_plane(cluster, node):
                artifacts.append(node_file(node.name, DISCOVERY_PATH, render_token_kubeconfig(
                    cluster.name, first_api_server_url(cluster), bundle.cas.ca.cert_pem,
                    "tls-bootstrap-token-user", token), 0o600, secret=True))
        artifacts.append(node_file(node.name, path, dump_yaml_documents(docs), 0o600,
                                   secret=True))
    ctx.shared["node_labels_after_join"] = {
        n.name: tuple((k, v) for k, v in n.labels if not kubelet_may_set_label(k))
        for n in kubernetes_nodes(cluster)
        if any(not kubelet_may_set_label(k) for k, _ in n.labels)
    }
    return artifacts
