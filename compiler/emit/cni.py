"""Emitter: the CNI that an offline bundle carries, written for this cluster.

With ``install bundle`` and ``cni flannel`` nothing is fetched: kubeforge writes flannel's
manifest itself, for the cluster's pod network and the flannel image in the bundle, and
every kubelet node gets the CNI network configuration as a file (the bundle already put the
``flannel``, ``bridge``, ``host-local``, ``loopback`` and ``portmap`` plugins into
``/opt/cni/bin``, so upstream's install-cni init containers have nothing to do).

One difference from upstream's kube-flannel.yml, on purpose: flanneld reaches the API server
through the cluster's endpoint (``KUBERNETES_SERVICE_HOST``/``_PORT``), not through the
``kubernetes`` Service IP. It runs on the host network before any Service works, and hosts
without a default route (air-gapped ones, kubeforge's sandbox) have no route to the Service
network at all; Cilium and Calico do the same in their kube-proxy-free modes.
"""

from __future__ import annotations

import json
from typing import Any

from kubeforge.compiler import hostport
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.emit.kubeadm import kubernetes_nodes
from kubeforge.compiler.emit.render import dump_yaml_documents
from kubeforge.compiler.ir import Cluster

#: Where the plan applies CNI manifests from (compiler/emit/plan.py REMOTE_CNI).
REMOTE_CNI = "/etc/kubernetes/kubeforge/cni"
CONFLIST = "/etc/cni/net.d/10-flannel.conflist"
NAMESPACE = "kube-flannel"
LABELS = {"app": "flannel", "k8s-app": "flannel", "tier": "node"}


def conflist() -> str:
    """The network configuration the flannel CNI plugin reads (cniVersion 0.3.1: the newest
    the bundle's flannel plugin, from containernetworking/plugins v0.9.1, speaks)."""
    return json.dumps({
        "name": "cbr0", "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"


def net_conf(cluster: Cluster) -> str:
    """flannel's network, per IP family (its dual-stack keys: EnableIPv6, IPv6Network)."""
    by_family = {n.version: str(n) for n in cluster.pod_cidrs}
    conf: dict[str, Any] = {}
    if 4 in by_family:
        conf["Network"] = by_family[4]
    else:
        conf["EnableIPv4"] = False
    if 6 in by_family:
        conf["EnableIPv6"] = True
        conf["IPv6Network"] = by_family[6]
    conf["Backend"] = {"Type": "vxlan"}
    return json.dumps(conf, indent=2) + "\n"


def _env(name: str, value: str | None = None, field: str | None = None) -> dict[str, Any]:
    if field is not None:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}
    return {"name": name, "value": value}


def flannel_documents(cluster: Cluster, image: str) -> list[dict[str, Any]]:
    meta = {"name": "flannel", "namespace": NAMESPACE}
    host, port = hostport.parse(cluster.endpoint)
    pod = {
        "metadata": {"labels": LABELS},
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "serviceAccountName": "flannel",
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "kube-flannel",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["/opt/bin/flanneld"],
                # --iface by address: the node IP the kubelet registered, which works on
                # hosts without a default route (flanneld's own default).
                "args": ["--ip-masq", "--kube-subnet-mgr", "--iface=$(POD_IP)"],
                "env": [_env("POD_NAME", field="metadata.name"),
                        _env("POD_NAMESPACE", field="metadata.namespace"),
                        _env("POD_IP", field="status.podIP"),
                        _env("KUBERNETES_SERVICE_HOST", host),
                        _env("KUBERNETES_SERVICE_PORT", str(port)),
                        _env("EVENT_QUEUE_DEPTH", "5000")],
                "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
                "securityContext": {"privileged": False,
                                    "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                "volumeMounts": [{"name": "run", "mountPath": "/run/flannel"},
                                 {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                                 {"name": "xtables-lock", "mountPath": "/run/xtables.lock"}],
            }],
            "volumes": [
                {"name": "run", "hostPath": {"path": "/run/flannel"}},
                {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
                {"name": "xtables-lock",
                 "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
            ],
        },
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE,
                      "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "flannel"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "flannel"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "flannel"},
         "subjects": [{"kind": "ServiceAccount", **meta}]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "kube-flannel-cfg", "namespace": NAMESPACE, "labels": LABELS},
         "data": {"net-conf.json": net_conf(cluster)}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "kube-flannel-ds", "namespace": NAMESPACE, "labels": LABELS},
         "spec": {"selector": {"matchLabels": LABELS}, "template": pod}},
    ]


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster, bundle = ctx.cluster, ctx.shared.get("bundle")
    if bundle is None or cluster.cni == "none" or cluster.first_control_plane is None:
        return []
    from kubeforge.bundle.errors import BundleError
    from kubeforge.compiler.emit.bundle import refuse

    if cluster.cni != "flannel":
        raise refuse(ctx, f"install bundle: an offline bundle carries flannel, not {cluster.cni}",
                     "declare `cni flannel` (or `cni none` and install a CNI yourself)")
    try:
        image = bundle.manifest.image("ghcr.io/flannel-io/flannel").name
    except BundleError as err:
        raise refuse(ctx, f"install bundle: {err}", "rebuild the bundle with "
                                                    "`kubeforge bundle build`") from None
    manifest = dump_yaml_documents(flannel_documents(cluster, image))
    first = cluster.first_control_plane.name
    return [node_file(first, f"{REMOTE_CNI}/flannel.yaml", manifest),
            *(node_file(node.name, CONFLIST, conflist()) for node in kubernetes_nodes(cluster))]
