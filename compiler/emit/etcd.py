"""Emitter: etcd member configuration, the same flags for both topologies.

* ``etcd external`` (reference 4.7): each node with role ``etcd`` gets ``/etc/default/etcd``
  (``ETCD_*`` variables, one per etcd flag) and ``/etc/systemd/system/etcd.service`` running
  ``/usr/bin/etcd`` with it. The unit overrides the distribution package's own (which runs
  as user ``etcd`` and could not read the root-only keys), and ``/etc/default/etcd`` is the
  file that package reads too, so placing both files before installing ``etcd-server`` makes
  its first start already the right one. All members start together: ``initial-cluster``
  lists every member, state ``new``; clients and peers talk TLS with client-certificate
  authentication on the node address, using the PKI emitter's files under
  ``/etc/kubernetes/pki/etcd/``.
* ``etcd stacked``: kubeadm writes the etcd static pod itself. For every member the build
  root still gets ``etcd/<member>.env`` with exactly the flags kubeadm generates (reference
  1.5): the first control plane starts alone, each joining one lists the members before it
  plus itself with state ``existing``. Tests run real etcd from these files and the verify
  suite can compare them with ``/etc/kubernetes/manifests/etcd.yaml``.

``ctx.shared["etcd"]`` (:class:`EtcdPlan`) tells the plan what to install and start.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler import hostport
from kubeforge.compiler.emit.kubeadm import PKI_DIR
from kubeforge.compiler.emit.render import render_template
from kubeforge.compiler.ir import Cluster, ClusterNode

ETCD_PKI = f"{PKI_DIR}/etcd"
DATA_DIR = "/var/lib/etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381
ENV_FILE = "/etc/default/etcd"
UNIT_FILE = "/etc/systemd/system/etcd.service"
BINARY = "/usr/bin/etcd"  # Debian's etcd-server
BUNDLE_BINARY = "/usr/local/bin/etcd"  # `install bundle`: kubeforge bundle's etcd


@dataclass(frozen=True)
class EtcdPlan:
    topology: str  # stacked | external
    nodes: tuple[str, ...]  # the members, in initial-cluster order
    packages: tuple[str, ...] = ()  # external: what provides /usr/bin/etcd and etcdctl
    services: tuple[str, ...] = ()  # external: systemd services to enable and start


def peer_url(node: ClusterNode) -> str:
    return hostport.https_url(node.address, PEER_PORT)


def client_url(node: ClusterNode) -> str:
    return hostport.https_url(node.address, CLIENT_PORT)


def tls_flags() -> list[tuple[str, str]]:
    """Server and peer TLS with mandatory client certificates, kubeadm's file layout."""
    return [
        ("cert-file", f"{ETCD_PKI}/server.crt"),
        ("key-file", f"{ETCD_PKI}/server.key"),
        ("trusted-ca-file", f"{ETCD_PKI}/ca.crt"),
        ("client-cert-auth", "true"),
        ("peer-cert-file", f"{ETCD_PKI}/peer.crt"),
        ("peer-key-file", f"{ETCD_PKI}/peer.key"),
        ("peer-trusted-ca-file", f"{ETCD_PKI}/ca.crt"),
        ("peer-client-cert-auth", "true"),
    ]


def member_flags(cluster: Cluster, node: ClusterNode) -> list[tuple[str, str]]:
    """The etcd flags (without ``--``) of one member, in a stable order."""
    members = cluster.etcd_nodes
    if cluster.etcd == "external":
        initial, state = members, "new"
        # Only the node address: an external member has no local apiserver to serve.
        listen_client = client_url(node)
        extra = [("initial-cluster-token", f"{cluster.name}-etcd")]
    else:
        index = members.index(node)
        initial, state = members[:index + 1], "new" if index == 0 else "existing"
        loopback = "::1" if node.address.version == 6 else "127.0.0.1"
        listen_client = f"{hostport.https_url(loopback, CLIENT_PORT)},{client_url(node)}"
        extra = [("listen-metrics-urls", f"http://{hostport.join(loopback, METRICS_PORT)}")]
    return [
        ("name", node.name),
        ("data-dir", DATA_DIR),
        ("listen-client-urls", listen_client),
        ("advertise-client-urls", client_url(node)),
        ("listen-peer-urls", peer_url(node)),
        ("initial-advertise-peer-urls", peer_url(node)),
        ("initial-cluster", ",".join(f"{m.name}={peer_url(m)}" for m in initial)),
        ("initial-cluster-state", state),
        *extra,
        *tls_flags(),
        ("snapshot-count", "10000"),
    ]


def env_name(flag: str) -> str:
    return "ETCD_" + flag.upper().replace("-", "_")


def member_env(cluster: Cluster, node: ClusterNode) -> str:
    note = None
    if cluster.etcd == "stacked":
        note = ("Reference only: kubeadm runs this member as a static pod with these flags "
                "(initial-cluster as of the moment the member joins).")
    return render_template("etcd.env.j2", name=node.name, cluster=cluster.name,
                           topology=cluster.etcd, note=note,
                           variables=[(env_name(k), v) for k, v in member_flags(cluster, node)])


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster = ctx.cluster
    members = cluster.etcd_nodes
    artifacts = []
    for node in members:
        env = member_env(cluster, node)
        artifacts.append(Artifact(f"etcd/{node.name}.env", env.encode()))
        if cluster.etcd == "external":
            artifacts += [
                node_file(node.name, ENV_FILE, env),
                node_file(node.name, UNIT_FILE, render_template(
                    "etcd.service.j2", name=node.name, cluster=cluster.name,
                    env_file=ENV_FILE,
                    binary=BUNDLE_BINARY if cluster.install.method == "bundle" else BINARY)),
            ]
    names = tuple(n.name for n in members)
    if cluster.etcd == "external":
        packages = () if cluster.install.method == "bundle" else ("etcd-server", "etcd-client")
        ctx.shared["etcd"] = EtcdPlan("external", names, packages, ("etcd",))
    else:
        ctx.shared["etcd"] = EtcdPlan("stacked", names)
    return artifacts
