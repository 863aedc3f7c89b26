"""Emitter: a ``Vagrantfile`` at the build root with one machine per declared node.

The machines are the cluster's topology and nothing more: hostname, private-network address,
CPUs and memory, a box for ``cluster.os``. Cluster work stays with kubeforge over SSH, so the
same plan deploys to Vagrant machines and to real hosts. Three providers: ``virtualbox`` and
``libvirt`` for laptops, ``docker`` (a local systemd + sshd image, see
:mod:`kubeforge.targets.vagrant`) for machines without virtualisation.

The file lives at the build root, not under ``nodes/``, so the plan never uploads it.
"""

from __future__ import annotations

import ipaddress

from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.compiler.emit.render import render_template
from kubeforge.compiler.ir import Cluster, ClusterNode

PATH = "Vagrantfile"

#: A box per ``cluster.os`` that exists for both virtualbox and libvirt where one does
#: (kubespray's choices for Ubuntu); KUBEFORGE_BOX overrides it at ``vagrant up`` time.
BOXES = {
    "debian12": "debian/bookworm64",
    "ubuntu2204": "generic/ubuntu2204",
    "ubuntu2404": "bento/ubuntu-24.04",
}

#: kubeadm's preflight minimums: NumCPU and Mem fail below these on control planes.
CONTROL_PLANE_CPUS, CONTROL_PLANE_MIB = 2, 2048
OTHER_CPUS, OTHER_MIB = 1, 1024


def machine_size(node: ClusterNode) -> tuple[int, int]:
    """(CPUs, MiB) for a node: what it declares, else the minimum for its roles."""
    cpus, mib = (CONTROL_PLANE_CPUS, CONTROL_PLANE_MIB) if node.is_control_plane \
        else (OTHER_CPUS, OTHER_MIB)
    return node.cpus or cpus, node.memory_mib or mib


def network_options(cluster: Cluster) -> str:
    """Ruby keyword options for ``private_network``. Providers disagree about ``netmask``
    (virtualbox wants dotted quads, docker turns it into ``--subnet``), so a declared node
    network is passed both ways (an IPv6 netmask is its prefix length, as Vagrant takes it);
    without one every provider uses its default around the address (/24, or /64 for IPv6)."""
    net = cluster.node_cidr
    if net is None:
        return "{}"
    mask = net.netmask if isinstance(net, ipaddress.IPv4Network) else net.prefixlen
    return f'{{ netmask: "{mask}", subnet: "{net}" }}'


def render(cluster: Cluster) -> str:
    nodes = []
    for node in cluster.nodes:
        cpus, mib = machine_size(node)
        nodes.append({"name": node.name, "address": node.address, "cpus": cpus,
                      "memory": mib, "roles": " ".join(node.roles)})
    return render_template("Vagrantfile.j2", cluster=cluster.name, os=cluster.os,
                           box=BOXES[cluster.os], network=network_options(cluster),
                           nodes=nodes)


def emit(ctx: BuildContext) -> list[Artifact]:
    return [Artifact(PATH, render(ctx.cluster).encode())]
