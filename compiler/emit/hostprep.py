"""Emitter: operating-system preparation files for every node that runs a kubelet.

Reference section 4.2: kernel modules, sysctls, the container runtime's configuration
(systemd cgroup driver, the pause image kubeadm expects), ``/etc/crictl.yaml`` and the
package source for kubeadm/kubelet/kubectl. Turning swap off is a command, not a file; the
plan runs it. How the Kubernetes packages get installed is published as
``ctx.shared["install"]`` (:class:`InstallPlan`) for the plan, since downloading the
repository key or copying a bundle are actions on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeforge.compiler import versions
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.emit.kubeadm import cri_socket, kubernetes_nodes
from kubeforge.compiler.emit.render import dump_yaml, render_template
from kubeforge.compiler.ir import Cluster

MODULES = ("overlay", "br_netfilter")
SYSCTLS = (
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.ipv4.ip_forward", "1"),
)
#: With IPv6 in use kubeadm preflight also checks /proc/sys/net/ipv6/conf/default/forwarding;
#: `all` turns forwarding on for the interfaces that exist already.
IPV6_SYSCTLS = (
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.conf.default.forwarding", "1"),
)


def sysctls(cluster: Cluster) -> tuple[tuple[str, str], ...]:
    return SYSCTLS + (IPV6_SYSCTLS if 6 in cluster.ip_families else ())

KUBERNETES_PACKAGES = ("kubeadm", "kubelet", "kubectl")
RUNTIME_PACKAGES = {"containerd": ("containerd",), "cri-o": ("cri-o",)}
KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
APT_PIN = "/etc/apt/preferences.d/kubernetes"


@dataclass(frozen=True)
class InstallPlan:
    """How kubeadm, kubelet and kubectl reach the nodes."""

    method: str  # packages | preinstalled | bundle
    version: str  # "1.37.2": the exact version to install or expect
    packages: tuple[str, ...]  # what `apt-get install` installs (runtime included)
    repository: str | None = None  # packages: the pkgs.k8s.io repository of the minor
    keyring: str | None = None  # packages: where the repository's key goes (dearmored)
    keyring_url: str | None = None  # packages: the armored key to fetch into `keyring`


def pause_image(cluster: Cluster) -> str:
    """The pause image kubeadm expects (the version table's ``pause``); the runtime's sandbox
    image must match it or kubeadm warns and the kubelet pulls a second pause image."""
    return versions.pause_image(cluster.version)


def repository_url(cluster: Cluster) -> str:
    return f"https://pkgs.k8s.io/core:/stable:/v1.{cluster.minor}/deb/"


def install_plan(cluster: Cluster) -> InstallPlan:
    method = cluster.install.method
    runtime = RUNTIME_PACKAGES[cluster.runtime]
    if method == "packages":
        repo = repository_url(cluster)
        return InstallPlan(method, cluster.version, runtime + KUBERNETES_PACKAGES, repo,
                           KEYRING, repo + "Release.key")
    # `bundle`: the plan uploads the bundle's binaries and images (compiler/emit/plan_bundle).
    return InstallPlan(method, cluster.version, ())


def runtime_files(cluster: Cluster) -> list[tuple[str, str]]:
    common = {"cluster": cluster.name, "version": cluster.version,
              "pause_image": pause_image(cluster), "containers": cluster.hosts == "containers"}
    if cluster.runtime == "containerd":
        return [("/etc/containerd/config.toml",
                 render_template("containerd-config.toml.j2", **common))]
    # A drop-in, not crio.conf: CRI-O merges crio.conf.d over its packaged defaults.
    return [("/etc/crio/crio.conf.d/10-kubeforge.conf",
             render_template("crio-kubeforge.conf.j2", **common))]


def node_files(cluster: Cluster) -> list[tuple[str, str]]:
    """(host path, content) that every kubelet node gets; identical on all of them."""
    socket = cri_socket(cluster)
    files = [
        ("/etc/modules-load.d/k8s.conf",
         render_template("modules-load-k8s.conf.j2", cluster=cluster.name, modules=MODULES)),
        ("/etc/sysctl.d/99-kubernetes.conf",
         render_template("sysctl-k8s.conf.j2", cluster=cluster.name, settings=sysctls(cluster))),
        *runtime_files(cluster),
        ("/etc/crictl.yaml", dump_yaml({"runtime-endpoint": socket, "image-endpoint": socket,
                                        "timeout": 10})),
    ]
    if cluster.install.method == "packages":
        files += [
            (APT_SOURCE, render_template("kubernetes.list.j2", cluster=cluster.name,
                                         minor=f"1.{cluster.minor}", keyring=KEYRING,
                                         repository=repository_url(cluster))),
            (APT_PIN, render_template("kubernetes-apt-pin.j2", cluster=cluster.name,
                                      packages=KUBERNETES_PACKAGES, version=cluster.version)),
        ]
    return files


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster = ctx.cluster
    ctx.shared["install"] = install_plan(cluster)
    files = node_files(cluster)
    return [node_file(node.name, path, content)
            for node in kubernetes_nodes(cluster) for path, content in files]
