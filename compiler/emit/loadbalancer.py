"""Emitter: the API load balancer (reference section 5), per ``cluster.loadbalancer.mode``.

* ``keepalived-haproxy``: haproxy (TCP, ``/healthz`` checks over TLS against every control
  plane's :6443, frontend on ``loadbalancer.port``) and keepalived (VRRP VIP on
  ``interface``, highest priority on the first node, ``check_apiserver.sh``) on the nodes with
  role ``loadbalancer``, or on the control planes when there are none.
* ``kube-vip``: a static pod on every control plane (ARP mode, leader election via a Lease).
* ``local-proxy``: haproxy on 127.0.0.1 on every node that is not a control plane, balancing
  over all API servers (kubespray's design); control planes reach their own API server.
* ``external``: nothing; the endpoint is somebody else's load balancer.

``deploy_as == "services"`` writes the configuration where the distribution's haproxy and
keepalived services read it; ``"static-pods"`` adds pod manifests that mount those files.

Static pods are never written into ``/etc/kubernetes/manifests`` directly. ``kubeadm join``
preflight refuses a non-empty manifests directory (``DirAvailable--etc-kubernetes-manifests``),
and kube-vip on the first control plane needs a different manifest during ``kubeadm init``
(``super-admin.conf``: ``admin.conf`` has no RBAC rights until init has bound
``kubeadm:cluster-admins``, which it does through the VIP kube-vip provides) than afterwards.
So every manifest is staged in ``/etc/kubernetes/kubeforge/static-pods/`` and
``ctx.shared["loadbalancer"]`` (:class:`LoadBalancerPlan`) tells the plan when to copy which
staged file into the manifests directory: ``before-init`` (first control plane, so the VIP
exists when ``kubeadm init`` needs it; init only minds its own four manifests),
``after-init`` (kube-vip switching to ``admin.conf``) or ``after-join``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from kubeforge.compiler import hostport
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.emit.kubeadm import API_SERVER_PORT
from kubeforge.compiler.emit.render import dump_yaml, render_template
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.dsl.diagnostics import Diagnostic, DiagnosticError

STAGING_DIR = "/etc/kubernetes/kubeforge/static-pods"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT = "/etc/keepalived/check_apiserver.sh"
#: local-proxy: haproxy's own liveness endpoint (kubespray's port), for the static pod probe.
LOCAL_PROXY_HEALTH_PORT = 8081

IMAGES = {
    "haproxy": "docker.io/library/haproxy:2.8",
    "keepalived": "docker.io/osixia/keepalived:2.0.20",
    "kube-vip": "ghcr.io/kube-vip/kube-vip:v0.8.9",
}


@dataclass(frozen=True)
class StaticPod:
    node: str
    staged: str  # host path this emitter writes
    target: str  # host path the plan copies it to
    when: str  # before-init | after-init | after-join


@dataclass(frozen=True)
class LoadBalancerPlan:
    mode: str
    nodes: tuple[str, ...]  # where the load balancer runs
    packages: tuple[str, ...] = ()  # OS packages those nodes need (services deployment)
    services: tuple[str, ...] = ()  # systemd services to enable and (re)start there
    static_pods: tuple[StaticPod, ...] = ()
    #: Nodes whose services start only after their `kubeadm join` (they join without them).
    after_join: tuple[str, ...] = ()


def _error(cluster: Cluster, message: str, hint: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic("E121", message, cluster.loadbalancer.span, hint)])


# ---------------------------------------------------------------------------- haproxy


def haproxy_config(cluster: Cluster, *, purpose: str, bind: str, balance: str,
                   monitor_bind: str | None = None) -> str:
    servers = [{"name": n.name, "address": hostport.join(n.address, API_SERVER_PORT)}
               for n in cluster.control_planes]
    return render_template("haproxy.cfg.j2", cluster=cluster.name, purpose=purpose, bind=bind,
                           balance=balance, monitor_bind=monitor_bind, servers=servers)


def haproxy_pod(image: str, probe: dict[str, Any]) -> dict[str, Any]:
    return _pod("haproxy", image, probe=probe, mounts=[
        # The official image reads /usr/local/etc/haproxy/haproxy.cfg.
        ("config", HAPROXY_CFG, "/usr/local/etc/haproxy/haproxy.cfg"),
    ])


# ---------------------------------------------------------------------------- keepalived


def vrrp_auth_pass(cluster: Cluster) -> str:
    # VRRP PASS authentication travels in clear text, so it is no secret: it only keeps two
    # clusters on one segment with the same router id from adopting each other's adverts.
    # Derived, so every compile and every peer agrees (keepalived uses at most 8 chars).
    lb = cluster.loadbalancer
    seed = f"{cluster.name}/{lb.vip}/{lb.router_id}".encode()
    return hashlib.sha256(seed).hexdigest()[:8]


def keepalived_config(cluster: Cluster, hosts: tuple[ClusterNode, ...], index: int) -> str:
    lb = cluster.loadbalancer
    node = hosts[index]
    count = len(hosts)
    return render_template(
        "keepalived.conf.j2", cluster=cluster.name, node=node.name, check_script=CHECK_SCRIPT,
        # Priorities 100+count down to 101; a failed check (weight -count) drops a node to
        # at most 100, below every healthy peer.
        priority=100 + count - index, weight=-count,
        state="MASTER" if index == 0 else "BACKUP", interface=lb.interface,
        router_id=lb.router_id, address=_in_family(node, lb.vip),
        peers=[_in_family(h, lb.vip) for h in hosts if h != node],
        # VRRPv3, which keepalived uses for an IPv6 VIP, has no authentication.
        auth_pass=vrrp_auth_pass(cluster) if lb.vip.version == 4 else None, vip=lb.vip)


def _in_family(node: ClusterNode, vip) -> object:
    """The node's address in the VIP's family: VRRP adverts travel in that family."""
    return next(a for a in node.addresses if a.version == vip.version)


def keepalived_pod(image: str) -> dict[str, Any]:
    pod = _pod("keepalived", image, mounts=[
        # osixia/keepalived starts keepalived with this file.
        ("config", KEEPALIVED_CONF, "/usr/local/etc/keepalived/keepalived.conf"),
        ("check", CHECK_SCRIPT, CHECK_SCRIPT),
    ])
    pod["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": ["NET_ADMIN", "NET_BROADCAST", "NET_RAW"]}}
    return pod


# ---------------------------------------------------------------------------- kube-vip


def kube_vip_pod(cluster: Cluster, kubeconfig: str) -> dict[str, Any]:
    lb = cluster.loadbalancer
    env = [
        ("vip_arp", "true"), ("port", str(cluster.endpoint_port)),
        ("vip_interface", lb.interface), ("vip_cidr", str(lb.vip.max_prefixlen)),
        ("cp_enable", "true"), ("cp_namespace", "kube-system"),
        ("vip_leaderelection", "true"),
        ("vip_leaseduration", "5"), ("vip_renewdeadline", "3"), ("vip_retryperiod", "1"),
        ("address", str(lb.vip)),
    ]
    pod = _pod("kube-vip", lb.image or IMAGES["kube-vip"],
               mounts=[("kubeconfig", kubeconfig, "/etc/kubernetes/admin.conf")])
    container = pod["spec"]["containers"][0]
    container["args"] = ["manager"]
    container["env"] = [{"name": k, "value": v} for k, v in env] + [
        {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    container["securityContext"] = {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}
    # As in kube-vip's own generated manifest (reference 5.4).
    pod["spec"]["hostAliases"] = [{"hostnames": ["kubernetes"], "ip": "127.0.0.1"}]
    return pod


# ---------------------------------------------------------------------------- pods


def _pod(name: str, image: str, *, mounts: list[tuple[str, str, str]],
         probe: dict[str, Any] | None = None) -> dict[str, Any]:
    """A host-network static pod in kube-system mounting host files (volume, host, container)."""
    container: dict[str, Any] = {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "volumeMounts": [{"name": v, "mountPath": inside, "readOnly": True}
                         for v, _, inside in mounts],
    }
    if probe is not None:
        container["livenessProbe"] = {"failureThreshold": 8, "httpGet": probe}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"component": name, "tier": "control-plane"}},
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "containers": [container],
            "volumes": [{"name": v, "hostPath": {"path": host, "type": "File"}}
                        for v, host, _ in mounts],
        },
    }


class _Out:
    """Collects artifacts and staged static pods while a mode is being emitted."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.artifacts: list[Artifact] = []
        self.pods: list[StaticPod] = []

    def file(self, node: ClusterNode, path: str, content: str, mode: int = 0o644) -> None:
        self.artifacts.append(node_file(node.name, path, content, mode))

    def pod(self, node: ClusterNode, manifest: dict[str, Any], when: str,
            staged_name: str | None = None) -> None:
        name = manifest["metadata"]["name"]
        staged = f"{STAGING_DIR}/{staged_name or name + '.yaml'}"
        self.file(node, staged, dump_yaml(manifest), 0o600)
        self.pods.append(StaticPod(node.name, staged, f"{MANIFESTS_DIR}/{name}.yaml", when))

    def joined_when(self, node: ClusterNode) -> str:
        return "before-init" if node == self.cluster.first_control_plane else "after-join"


# ---------------------------------------------------------------------------- modes


def _keepalived_haproxy(cluster: Cluster, out: _Out) -> LoadBalancerPlan:
    lb = cluster.loadbalancer
    hosts = cluster.loadbalancer_nodes or cluster.control_planes
    static = lb.deploy_as == "static-pods"
    if static and cluster.loadbalancer_nodes:
        raise _error(cluster, "static-pod load balancers need a kubelet before the VIP exists; "
                     "dedicated loadbalancer nodes have none",
                     "use `mode services` or drop the loadbalancer role to run them on the "
                     "control planes")
    for i, node in enumerate(hosts):
        out.file(node, HAPROXY_CFG, haproxy_config(cluster, purpose=f"VIP {lb.vip}",
                                                   bind=_any_address(lb), balance="roundrobin"))
        out.file(node, KEEPALIVED_CONF, keepalived_config(cluster, hosts, i))
        out.file(node, CHECK_SCRIPT, render_template("check_apiserver.sh.j2",
                                                     cluster=cluster.name, port=lb.port), 0o755)
        if static:
            probe = {"host": "localhost", "path": "/healthz", "port": lb.port, "scheme": "HTTPS"}
            out.pod(node, haproxy_pod(IMAGES["haproxy"], probe), out.joined_when(node))
            out.pod(node, keepalived_pod(lb.image or IMAGES["keepalived"]), out.joined_when(node))
    names = tuple(n.name for n in hosts)
    if static:
        return LoadBalancerPlan(lb.mode, names, static_pods=tuple(out.pods))
    return LoadBalancerPlan(lb.mode, names, ("haproxy", "keepalived"), ("haproxy", "keepalived"))


def _kube_vip(cluster: Cluster, out: _Out) -> LoadBalancerPlan:
    first = cluster.first_control_plane
    for node in cluster.control_planes:
        if node == first:
            out.pod(node, kube_vip_pod(cluster, "/etc/kubernetes/super-admin.conf"),
                    "before-init", "kube-vip.init.yaml")
        out.pod(node, kube_vip_pod(cluster, "/etc/kubernetes/admin.conf"),
                "after-init" if node == first else "after-join")
    return LoadBalancerPlan(cluster.loadbalancer.mode,
                            tuple(n.name for n in cluster.control_planes),
                            static_pods=tuple(out.pods))


def _local_proxy(cluster: Cluster, out: _Out) -> LoadBalancerPlan:
    lb = cluster.loadbalancer
    # On the API server's own port (kubespray's choice) a control plane's loopback endpoint
    # is its own API server, so it needs no proxy. On any other port it does: the first one
    # before `kubeadm init` (its kubeconfigs point there), the others after their join, which
    # goes through the first control plane's API server (kubeadm emitter).
    cps_need_proxy = lb.port != API_SERVER_PORT
    hosts = tuple(n for n in cluster.nodes if n in cluster.workers
                  or (cps_need_proxy and n.is_control_plane))
    after_join = tuple(n.name for n in cluster.control_planes[1:]) \
        if cps_need_proxy and cluster.endpoint_is_node_local else ()
    static = lb.deploy_as == "static-pods"
    if static and cluster.endpoint_is_node_local:
        raise _error(cluster, f"the endpoint {cluster.endpoint} is the local proxy itself, so "
                     "`kubeadm join` needs the proxy before the kubelet that would run it "
                     "as a static pod", "use `mode services` for local-proxy, or an endpoint "
                     "name that reaches the control planes directly")
    loopback = _loopback(cluster.endpoint_host)
    config = haproxy_config(cluster, purpose="per-node proxy",
                            bind=hostport.join(loopback, lb.port), balance="leastconn",
                            monitor_bind=hostport.join(loopback, LOCAL_PROXY_HEALTH_PORT))
    for node in hosts:
        out.file(node, HAPROXY_CFG, config)
        if static:
            probe = {"host": loopback, "path": "/healthz", "port": LOCAL_PROXY_HEALTH_PORT,
                     "scheme": "HTTP"}
            out.pod(node, haproxy_pod(IMAGES["haproxy"], probe), out.joined_when(node))
    names = tuple(n.name for n in hosts)
    if static:
        return LoadBalancerPlan(lb.mode, names, static_pods=tuple(out.pods))
    return LoadBalancerPlan(lb.mode, names, ("haproxy",), ("haproxy",), after_join=after_join)


def _any_address(lb) -> str:
    """haproxy's wildcard bind in the VIP's family (`*` is IPv4 only)."""
    return hostport.join("::", lb.port) if lb.vip is not None and lb.vip.version == 6 \
        else f"*:{lb.port}"


def _loopback(endpoint_host: str | None) -> str:
    """The per-node proxy listens where the endpoint points: ::1 or 127.0.0.1."""
    return "::1" if endpoint_host and hostport.is_ipv6(endpoint_host) else "127.0.0.1"


MODES = {"keepalived-haproxy": _keepalived_haproxy, "kube-vip": _kube_vip,
         "local-proxy": _local_proxy}


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster = ctx.cluster
    mode = cluster.loadbalancer.mode
    if mode not in MODES:  # external: the endpoint is provided from outside
        ctx.shared["loadbalancer"] = LoadBalancerPlan(mode, ())
        return []
    out = _Out(cluster)
    ctx.shared["loadbalancer"] = MODES[mode](cluster, out)
    return out.artifacts
