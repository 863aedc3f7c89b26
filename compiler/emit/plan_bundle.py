"""The plan's steps for `install bundle path "DIR"`: what each host needs from the bundle.

Every kubelet host gets the bundle's host files for its roles (binaries into
``/usr/local/bin``, runc, CNI plugins into ``/opt/cni/bin``, the kubelet and containerd
units) and the image archives of its roles, which it imports into containerd's ``k8s.io``
namespace and pins, so the kubelet's image garbage collector never removes them and kubeadm
(``imagePullPolicy: Never``) finds every image it names. Each upload is checked by sha256
first, so a re-apply sends only what changed, and an interrupted upload leaves no partial
file (the upload writes a temporary file and renames it once its hash matches).
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from kubeforge.compiler.plan import Check, Command, Upload, probe

if TYPE_CHECKING:
    from kubeforge.compiler.emit.bundle import BundleInput
    from kubeforge.compiler.ir import ClusterNode

#: Where image archives wait on a host until (and after) their import.
IMAGES_DIR = "/var/cache/kubeforge/images"
PINNED = "io.cri-containerd.pinned=pinned"
CTR = "ctr -n k8s.io"


def roles(maker: Any, node: "ClusterNode") -> tuple[str, ...]:
    """The bundle roles of ``node`` (a node may have several)."""
    found = []
    if node.is_control_plane:
        found.append("control-plane")
    if node.is_worker:
        found.append("worker")
    if node in maker.etcd_members:
        found.append("etcd")
    return tuple(found)


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "-")


def upload_host_files(maker: Any, bundle: "BundleInput", node: "ClusterNode",
                      phase: str) -> list[str]:
    """Uploads of the bundle's host files for ``node``'s roles; returns their step ids,
    also recorded among the phase's uploads so services restart when a binary changes."""
    ids = []
    seen: set[str] = set()
    for role in roles(maker, node):
        for entry in bundle.manifest.files_for(role):
            if entry.install in seen:
                continue
            seen.add(entry.install)
            ids.append(upload_file(maker, node, phase, entry.install, bundle.source(entry.path),
                               entry.sha256, entry.mode))
    maker.uploads.setdefault((node.name, phase), []).extend(ids)
    return ids


def upload_file(maker: Any, node: "ClusterNode", phase: str, path: str, source: str,
            sha256: str, mode: int) -> str:
    action = Upload(path, source, sha256, mode, "root:root", False)
    return maker.add(node, phase, "upload-" + _slug(path), action, check=Check("sha256", sha256))


def images(maker: Any, bundle: "BundleInput", node: "ClusterNode", phase: str,
           needs: list[str]) -> list[str]:
    """Upload and import every image of ``node``'s roles; returns the import step ids."""
    wanted = {}
    for role in roles(maker, node):
        for image in bundle.manifest.images_for(role):
            wanted.setdefault(image.name, image)
    done = []
    for name, image in sorted(wanted.items()):
        entry = bundle.manifest.file(image.archive)
        remote = f"{IMAGES_DIR}/{PurePosixPath(image.archive).name}"
        upload = upload_file(maker, node, phase, remote, bundle.source(image.archive),
                         entry.sha256, 0o644)
        ref = shlex.quote(name)
        # The name with the manifest digest the bundle recorded: a rebuilt image under the
        # same tag is imported again; the pin label keeps the kubelet's GC away from it.
        present = (f"{CTR} images ls 'name=={name}' | grep -F {image.manifest_digest} "
                   f"| grep -qF {PINNED}")
        done.append(maker.add(
            node, phase, "import-" + PurePosixPath(image.archive).stem,
            Command(shell=f"{CTR} images import {shlex.quote(remote)} >/dev/null && "
                          f"{CTR} images label {ref} {PINNED} >/dev/null", timeout=600),
            check=probe(present), needs=[upload, *needs],
            why=f"{name} from the bundle, pinned; kubeadm and the kubelet pull nothing"))
    return done
