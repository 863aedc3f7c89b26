"""Helpers for the plan tests: a Cluster IR built by hand and artifacts shaped like the other
emitters' outputs, so these tests do not depend on how far those emitters have come.

Key material is generated at run time (real EC keys, a random bootstrap token): the tests
check that none of it reaches plan.json or plan.txt. A module with a unique name rather than
conftest.py, so test modules import it unambiguously.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import secrets
import string
from pathlib import Path
from types import SimpleNamespace

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.ir import Cluster, ClusterNode, LoadBalancer, PkiSettings, Program
from kubeforge.dsl.diagnostics import NO_SPAN

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
VIP = "10.0.0.100"


def node(name: str, address: str, *roles: str, **more) -> ClusterNode:
    return ClusterNode(name, ipaddress.ip_address(address), tuple(roles), **more)


CONTROL_PLANES = tuple(node(f"cp{i}", f"10.0.0.1{i}", "control-plane") for i in (1, 2, 3))
WORKERS = tuple(node(f"w{i}", f"10.0.0.2{i}", "worker") for i in (1, 2))
ETCD_NODES = tuple(node(f"etcd{i}", f"10.0.0.3{i}", "etcd") for i in (1, 2, 3))


def make_cluster(*, etcd: str = "stacked", deploy_as: str = "services", nodes=None,
                 **changes) -> Cluster:
    """3 control planes + 2 workers (+ 3 etcd nodes when external) behind a keepalived VIP."""
    if nodes is None:
        nodes = CONTROL_PLANES + WORKERS + (ETCD_NODES if etcd == "external" else ())
    cluster = Cluster(
        name="lab", version="1.37.2", span=NO_SPAN, endpoint_host=VIP, endpoint_port=8443,
        pod_cidr=ipaddress.ip_network("10.244.0.0/16"),
        service_cidr=ipaddress.ip_network("10.96.0.0/12"), node_cidr=None,
        domain="cluster.local", runtime="containerd", cni="calico", cni_version=None,
        etcd=etcd, loadbalancer=LoadBalancer("keepalived-haproxy", ipaddress.ip_address(VIP),
                                             "eth1", 8443, deploy_as=deploy_as),
        pki=PkiSettings(), nodes=tuple(nodes))
    return dataclasses.replace(cluster, **changes)


@dataclasses.dataclass
class Secrets:
    token: str
    keys: list[bytes]  # every private-key PEM placed in an artifact

    def key(self) -> bytes:
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
        self.keys.append(pem)
        return pem


def new_secrets() -> Secrets:
    alphabet = string.ascii_lowercase + string.digits
    token = "".join(secrets.choice(alphabet) for _ in range(6)) + "." + \
        "".join(secrets.choice(alphabet) for _ in range(16))
    return Secrets(token, [])


def _pki(cluster: Cluster, n: ClusterNode, s: Secrets) -> list[Artifact]:
    names: list[str] = []
    if n.is_control_plane:
        names += ["ca", "front-proxy-ca", "apiserver", "apiserver-kubelet-client",
                  "front-proxy-client", "apiserver-etcd-client"]
        if cluster.etcd == "stacked":
            names += ["etcd/ca", "etcd/server", "etcd/peer", "etcd/healthcheck-client"]
    elif n.is_etcd:
        names += ["etcd/server", "etcd/peer", "etcd/healthcheck-client"]
    out = []
    for name in names:
        out.append(node_file(n.name, f"/etc/kubernetes/pki/{name}.crt", f"cert {name} {n.name}"))
        out.append(node_file(n.name, f"/etc/kubernetes/pki/{name}.key", s.key(), 0o600, True))
    if n.is_control_plane:
        out.append(node_file(n.name, "/etc/kubernetes/pki/sa.key", s.key(), 0o600, True))
        out.append(node_file(n.name, "/etc/kubernetes/pki/sa.pub", "public key"))
    if n.is_etcd and cluster.etcd == "external":
        out.append(node_file(n.name, "/etc/kubernetes/pki/etcd/ca.crt", "etcd ca"))
    return out


def _kubeconfigs(cluster: Cluster, n: ClusterNode, s: Secrets) -> list[Artifact]:
    if not n.is_control_plane:
        return []
    names = ["admin.conf", "controller-manager.conf", "scheduler.conf"]
    if n == cluster.first_control_plane:
        names += ["super-admin.conf", "kubelet.conf"]
    key = s.key().decode()
    return [node_file(n.name, f"/etc/kubernetes/{name}", f"client-key-data: {key}", 0o600, True)
            for name in names]


def synthetic_artifacts(cluster: Cluster, s: Secrets) -> list[Artifact]:
    """Files like those of pki, kubeconfig, hostprep, loadbalancer, etcd, kubeadm, manifests."""
    out: list[Artifact] = []
    first = cluster.first_control_plane
    static = cluster.loadbalancer.deploy_as == "static-pods"
    for n in cluster.nodes:
        k8s = n.is_control_plane or n.is_worker
        out += _pki(cluster, n, s) + _kubeconfigs(cluster, n, s)
        if k8s:
            out += [
                node_file(n.name, "/etc/modules-load.d/k8s.conf",
                          "# modules\noverlay\nbr_netfilter\n"),
                node_file(n.name, "/etc/sysctl.d/99-kubernetes.conf",
                          "# sysctls\nnet.ipv4.ip_forward = 1\n"
                          "net.bridge.bridge-nf-call-iptables = 1\n"),
                node_file(n.name, "/etc/containerd/config.toml", "version = 2\n"),
                node_file(n.name, "/etc/crictl.yaml", "runtime-endpoint: unix:///x\n"),
                node_file(n.name, "/etc/apt/sources.list.d/kubernetes.list", "deb x /\n"),
            ]
            kubeadm = "init" if n == first else "join"
            out.append(node_file(n.name, f"/etc/kubernetes/kubeadm/{kubeadm}.yaml",
                                 f"token: {s.token}\n", 0o600, True))
        if n.is_control_plane:
            out += [node_file(n.name, "/etc/haproxy/haproxy.cfg", f"haproxy {n.name}\n"),
                    node_file(n.name, "/etc/keepalived/keepalived.conf", f"vrrp {n.name}\n"),
                    node_file(n.name, "/etc/keepalived/check_apiserver.sh", "#!/bin/sh\n", 0o755)]
            if static:
                for pod in ("haproxy", "keepalived"):
                    staged = f"/etc/kubernetes/kubeforge/static-pods/{pod}.yaml"
                    out.append(node_file(n.name, staged, f"kind: Pod\nname: {pod}\n", 0o600))
        if n.is_etcd and cluster.etcd == "external":
            out += [node_file(n.name, "/etc/default/etcd", f'ETCD_NAME="{n.name}"\n'),
                    node_file(n.name, "/etc/systemd/system/etcd.service", "[Service]\n")]
    out += [
        Artifact("manifests/00-cluster.yaml", b"kind: Namespace\n"),
        Artifact("manifests/10-app-secrets.yaml", b"kind: Secret\ndata: {password: aHVudGVyMg==}\n",
                 0o600, secret=True),
        Artifact("manifests/10-app.yaml", b"kind: Deployment\n"),
        Artifact("kubeconfigs/admin.conf", s.key(), 0o600, secret=True),  # stays local
        Artifact("pki/ca.crt", b"root ca"),
    ]
    return out


def shared_for(cluster: Cluster) -> dict:
    """ctx.shared as the hostprep, loadbalancer and etcd emitters publish it."""
    cps = tuple(n.name for n in cluster.control_planes)
    first = cluster.first_control_plane.name
    static = cluster.loadbalancer.deploy_as == "static-pods"
    pods = tuple(SimpleNamespace(node=n, staged=f"/etc/kubernetes/kubeforge/static-pods/{p}.yaml",
                                 target=f"/etc/kubernetes/manifests/{p}.yaml",
                                 when="before-init" if n == first else "after-join")
                 for n in cps for p in ("haproxy", "keepalived")) if static else ()
    services = () if static else ("haproxy", "keepalived")
    external = cluster.etcd == "external"
    return {
        "install": SimpleNamespace(
            method="packages", version=cluster.version,
            packages=("containerd", "kubeadm", "kubelet", "kubectl"),
            keyring="/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
            keyring_url="https://pkgs.k8s.io/core:/stable:/v1.31/deb/Release.key",
            bundle_dir=None),
        "loadbalancer": SimpleNamespace(mode="keepalived-haproxy", nodes=cps, packages=services,
                                        services=services, static_pods=pods),
        "etcd": SimpleNamespace(
            topology=cluster.etcd, nodes=tuple(n.name for n in cluster.etcd_nodes),
            packages=("etcd-server", "etcd-client") if external else (),
            services=("etcd",) if external else ()),
        "node_labels_after_join": {"w1": (("node-role.kubernetes.io/worker", ""),)},
    }


def context(cluster: Cluster, s: Secrets | None = None, *, shared: bool = True,
            tmp: Path = Path(".")) -> tuple[BuildContext, Secrets]:
    s = s or new_secrets()
    ctx = BuildContext(program=Program(cluster=cluster), state_dir=tmp / "state", now=NOW,
                       base_dir=tmp)
    ctx.artifacts.extend(synthetic_artifacts(cluster, s))
    if shared:
        ctx.shared.update(shared_for(cluster))
    return ctx, s


def assert_golden(name: str, actual: str) -> None:
    """Compare with ``golden/<name>``; KUBEFORGE_UPDATE_GOLDENS=1 rewrites it instead."""
    path = GOLDEN / name
    if os.environ.get("KUBEFORGE_UPDATE_GOLDENS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"golden {path} is missing; run with KUBEFORGE_UPDATE_GOLDENS=1"
    assert actual == path.read_text(), \
        f"{path} differs; run with KUBEFORGE_UPDATE_GOLDENS=1 if the change is intended"
