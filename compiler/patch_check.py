"""Check every `patch` at compile time (`kubeforge check` too): build each patched object
exactly as the emitter will, apply its patches and validate the result against the cluster
version's schema. Secrets are checked with placeholder values, so no secret is read."""

from __future__ import annotations

from kubeforge.compiler.emit.manifests import (cluster_objects, namespace_objects,
                                               secret_objects)
from kubeforge.compiler.ir import Program
from kubeforge.compiler.patch import PatchProblem, apply_patches
from kubeforge.dsl.diagnostics import Collector


def check_patches(program: Program, diags: Collector) -> None:
    if not _any_patch(program):
        return
    version = program.cluster.version if program.cluster else None
    groups = [cluster_objects(program)]
    for ns in sorted({n.name for n in program.namespaces}):
        groups += [secret_objects(program, ns, placeholders=True), namespace_objects(program, ns)]
    for group in groups:
        for what, doc, patches, _ in group:
            if not patches:
                continue
            try:
                apply_patches(doc, patches, version, what)
            except PatchProblem as problem:
                diags.items.append(problem.diagnostic)


def _any_patch(p: Program) -> bool:
    objects = (*p.namespaces, *p.storageclasses, *p.secrets, *p.configs, *p.pvcs, *p.services,
               *p.workloads, *p.ingresses, *p.networkpolicies)
    if any(o.patches for o in objects):
        return True
    return any((w.autoscale and w.autoscale.meta.patches) or (w.disruption and w.disruption.meta.patches)
               for w in p.workloads)
