"""Emitter (runs first): the offline bundle of ``install bundle path "DIR"``, checked whole.

The bundle (``kubeforge bundle build``) is read and verified here, at compile time, so a
corrupted or incomplete bundle is refused before any host is touched: every file's size and
sha256 against ``manifest.json``, and the Kubernetes version against the cluster's. Nothing
of the bundle is copied into the build: uploads name the bundle's files by absolute path (the
plan's ``source``), with the sha256 from the manifest, and the executors check that hash
again on the bytes they send. Later emitters read ``ctx.shared["bundle"]``
(:class:`BundleInput`): hostprep and kubeadm for the image names, the plan for the files and
images each host needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.dsl.diagnostics import NO_SPAN, Diagnostic, DiagnosticError
from kubeforge.fileio import path_problem


@dataclass(frozen=True)
class BundleInput:
    root: Path  # absolute
    manifest: object  # kubeforge.bundle.manifest.Manifest

    def source(self, relative: str) -> str:
        """The plan's upload source for a bundle file: its absolute path."""
        return str(self.root / relative)


def refuse(ctx: BuildContext, message: str, hint: str) -> DiagnosticError:
    span = ctx.cluster.install.span or NO_SPAN
    return DiagnosticError([Diagnostic("E150", message, span, hint=hint)])


def load(ctx: BuildContext) -> BundleInput | None:
    install = ctx.cluster.install
    if install.method != "bundle" or not install.path:
        return None
    from kubeforge.bundle.check import check_bundle  # only builds that use a bundle pay for it
    from kubeforge.bundle.errors import BundleError

    problem = path_problem(ctx.base_dir / install.path, want="dir")
    if problem:  # a loop or a name too long would raise from resolve() or the check
        raise refuse(ctx, f"install bundle: {install.path} {problem}",
                     f"build one with `kubeforge bundle build --kubernetes {ctx.cluster.version} "
                     f"-o {install.path}`")
    root = (ctx.base_dir / install.path).resolve()
    try:
        manifest = check_bundle(root)
    except BundleError as err:
        problems = "; ".join(err.problems[:5]) + (" ..." if len(err.problems) > 5 else "")
        raise refuse(ctx, f"install bundle: {err}" + (f": {problems}" if problems else ""),
                      f"rebuild it with `kubeforge bundle build --kubernetes "
                      f"{ctx.cluster.version} -o {install.path}`, then "
                      f"`kubeforge bundle check {install.path}`") from None
    wanted = f"v{ctx.cluster.version}"
    if manifest.kubernetes != wanted:
        raise refuse(ctx, f"install bundle: {root} holds Kubernetes {manifest.kubernetes}, "
                           f"the cluster declares {wanted}",
                      f"build a bundle for {wanted}: `kubeforge bundle build --kubernetes "
                      f"{ctx.cluster.version} -o DIR`")
    return BundleInput(root, manifest)


def emit(ctx: BuildContext) -> list[Artifact]:
    ctx.shared["bundle"] = load(ctx)
    return []
