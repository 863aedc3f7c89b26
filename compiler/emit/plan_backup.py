"""The plan's steps for the etcd backup policy and the etcd tools the control planes need.

The policy's files (script, service, timer; ``compiler.emit.etcd_backup``) are uploaded in
the member's etcd phase; the timer is enabled only once the member runs: after ``kubeadm
init``/``join`` on a stacked control plane, after the member's health check on an external
etcd host. A change of any of the three files restarts the timer (after a daemon-reload, so
the next run uses the new service).

With ``install bundle`` and stacked etcd, the control planes also get the bundle's etcdctl
and etcdutl in ``/usr/local/bin`` (etcd itself runs from an image there): the backup
timer, ``kubeforge etcd backup`` and ``kubeforge etcd restore`` need them on the host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeforge.compiler.emit.etcd_backup import TIMER_FILE
from kubeforge.compiler.etcd_scripts import BACKUP_SCRIPT, UNIT
from kubeforge.compiler.plan import Check, Upload

if TYPE_CHECKING:
    from kubeforge.compiler.emit.bundle import BundleInput
    from kubeforge.compiler.ir import ClusterNode

#: Host paths of the policy's files: the plan places them in the etcd phase.
PATHS = (BACKUP_SCRIPT, f"/etc/systemd/system/{UNIT}.")
ETCD_TOOLS = ("etcdctl", "etcdutl")


def has_policy(maker: Any, node: "ClusterNode") -> bool:
    return any(a.host_path == TIMER_FILE for a in maker.i.files.get(node.name, []))


def timer(maker: Any, node: "ClusterNode", phase: str, needs: list[str]) -> str | None:
    """Enable and start the backup timer of ``node`` in ``phase`` after ``needs``."""
    if not has_policy(maker, node):
        return None
    files = maker.ups(node, "etcd", PATHS)
    return maker.service(node, phase, f"{UNIT}.timer", [*needs, *files], files,
                         why="snapshots only once this etcd member runs; a changed script, "
                             "service or timer restarts the timer")


def etcd_tools(maker: Any, bundle: "BundleInput", node: "ClusterNode", phase: str) -> list[str]:
    """Uploads of the bundle's etcdctl and etcdutl to a stacked control plane."""
    if maker.i.etcd.topology != "stacked" or not node.is_control_plane:
        return []
    ids = []
    for name in ETCD_TOOLS:
        entry = bundle.manifest.file(f"bin/{name}")
        path = f"/usr/local/bin/{name}"
        ids.append(maker.add(node, phase, "upload-usr-local-bin-" + name,
                             Upload(path, bundle.source(entry.path), entry.sha256, entry.mode,
                                    "root:root", False),
                             check=Check("sha256", entry.sha256),
                             why="etcd runs from an image here; snapshots and restores "
                                 "(kubeforge etcd, the backup timer) run these on the host"))
    maker.uploads.setdefault((node.name, phase), []).extend(ids)
    return ids
