"""Where each bundle file lives in the bundle and on a host, and which hosts need it.

Roles: ``control-plane`` and ``worker`` hosts run containerd and the kubelet; ``etcd`` hosts
run an external etcd member as a systemd service. Paths on hosts follow the upstream release
archives: ``/usr/local/bin`` (containerd's unit runs ``/usr/local/bin/containerd``),
``/usr/local/sbin/runc``, ``/opt/cni/bin``.
"""

from __future__ import annotations

CONTROL_PLANE, WORKER, ETCD = "control-plane", "worker", "etcd"
ROLES = (CONTROL_PLANE, WORKER, ETCD)
KUBELET_ROLES = (CONTROL_PLANE, WORKER)

BIN, CNI_BIN, IMAGES, UNITS = "bin", "cni/bin", "images", "units"
HOST_BIN, HOST_SBIN, HOST_CNI_BIN = "/usr/local/bin", "/usr/local/sbin", "/opt/cni/bin"
HOST_UNITS = "/etc/systemd/system"

#: Bundle file name -> (host directory, roles) for the host binaries under bin/.
HOST_BINARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "kubeadm": (HOST_BIN, KUBELET_ROLES),
    "kubelet": (HOST_BIN, KUBELET_ROLES),
    "kubectl": (HOST_BIN, KUBELET_ROLES),
    "crictl": (HOST_BIN, KUBELET_ROLES),
    "containerd": (HOST_BIN, KUBELET_ROLES),
    "containerd-shim-runc-v2": (HOST_BIN, KUBELET_ROLES),
    "ctr": (HOST_BIN, KUBELET_ROLES),
    "runc": (HOST_SBIN, KUBELET_ROLES),
    "etcd": (HOST_BIN, (ETCD,)),
    "etcdctl": (HOST_BIN, (ETCD,)),
    "etcdutl": (HOST_BIN, (ETCD,)),
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "flannel")
#: units/ file -> host path (kubelet nodes only).
UNIT_FILES = {
    "containerd.service": f"{HOST_UNITS}/containerd.service",
    "kubelet.service": f"{HOST_UNITS}/kubelet.service",
    "10-kubeadm.conf": f"{HOST_UNITS}/kubelet.service.d/10-kubeadm.conf",
}


def placement(path: str) -> tuple[str | None, tuple[str, ...]]:
    """(host path or None, roles) of the bundle file at ``path`` (``bin/kubelet``, ...)."""
    folder, _, name = path.rpartition("/")
    if folder == BIN and name in HOST_BINARIES:
        directory, roles = HOST_BINARIES[name]
        return f"{directory}/{name}", roles
    if folder == CNI_BIN:
        return f"{HOST_CNI_BIN}/{name}", KUBELET_ROLES
    if folder == UNITS and name in UNIT_FILES:
        return UNIT_FILES[name], KUBELET_ROLES
    return None, ()
