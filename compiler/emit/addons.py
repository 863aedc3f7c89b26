"""Emitter: the manifests of the declared cluster addons (`addon KIND PROVIDER`).

Each addon is one file on the first control plane under ``/etc/kubernetes/kubeforge/addons``,
which the plan applies in its ``addons`` phase: after the CNI, before the workloads (a
statefulset's claims find the default StorageClass). With ``install bundle`` an addon's image
must be in the bundle (its archive is then imported on every kubelet node like the other
images); a bundle without it is refused with E150, as a bundle without flannel is.
"""

from __future__ import annotations

from kubeforge.compiler import addon_storage
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.emit.manifests import dump_documents
from kubeforge.dsl.diagnostics import Diagnostic, DiagnosticError, Span


def bundled_image(ctx: BuildContext, repository: str, version: str, span: Span
                  ) -> str | None:
    """``repository:version`` when the build installs from a bundle that has it; refused
    when the bundle lacks it; None without a bundle."""
    bundle = ctx.shared.get("bundle")
    if bundle is None:
        return None
    from kubeforge.bundle.errors import BundleError

    wanted = f"{repository}:{version}"
    try:
        name = bundle.manifest.image(repository).name
    except BundleError:
        name = None
    if name != wanted:
        raise DiagnosticError([Diagnostic(
            "E150", f"install bundle: the bundle has no {wanted}"
                    + (f" (it has {name})" if name else ""), span,
            hint="rebuild it with `kubeforge bundle build` (a bundle built by this kubeforge "
                 "carries the addons' images)")])
    return wanted


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster = ctx.cluster
    if cluster.storage is None or cluster.first_control_plane is None:
        return []
    image = bundled_image(ctx, addon_storage.BUNDLE_IMAGE, cluster.storage.version,
                          cluster.storage.span)
    text = dump_documents(addon_storage.documents(cluster, image))
    return [node_file(cluster.first_control_plane.name, addon_storage.MANIFEST, text)]
