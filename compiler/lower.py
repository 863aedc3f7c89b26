"""AST -> IR: resolve imports and templates, lower every statement, run every check.

All diagnostics of all passes are collected and raised together, sorted by position.
Workloads are lowered by :mod:`lower_workload`, other namespaced objects by
:mod:`lower_objects`, the cluster by :mod:`lower_cluster` and RBAC by :mod:`lower_rbac`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kubeforge.compiler.gc_batch import fewer_collections
from kubeforge.compiler.ir import Namespace, Program
from kubeforge.compiler.lower_cluster import ClusterLowerer
from kubeforge.compiler.lower_meta import MetaLowerer
from kubeforge.compiler.lower_objects import ObjectLowerer
from kubeforge.compiler.lower_rbac import RbacLowerer
from kubeforge.compiler.lower_workload import KINDS, WorkloadLowerer
from kubeforge.dsl.ast import Module, Node
from kubeforge.dsl.diagnostics import Collector, SourceMap, did_you_mean
from kubeforge.dsl.parser import load


def load_program(path: str | Path, *, strict: bool = False) -> tuple[Program, SourceMap]:
    """Parse ``path`` (and its imports), lower it and check it; raise DiagnosticError."""
    with fewer_collections():
        return _load_program(path, strict)


def _load_program(path: str | Path, strict: bool) -> tuple[Program, SourceMap]:
    modules, sources = load(path)
    diags = Collector()
    program = ProgramLowerer(diags, Path(path).parent).lower(modules)
    if program is not None:
        from kubeforge.compiler.api_schema import check_manifests
        from kubeforge.compiler.checks import check_program
        from kubeforge.compiler.patch_check import check_patches

        check_program(program, diags)
        if not diags.errors:
            # Needs objects the emitters can build, so only a program that checks clean.
            check_manifests(program, diags)
        _lint_rbac(program, diags)
        if not diags.errors:
            check_patches(program, diags)
    if strict:
        diags.items = [dataclasses.replace(d, severity="error") for d in diags.items]
    diags.raise_if_errors(sources)
    assert program is not None
    warnings = tuple(sorted(diags.warnings, key=lambda d: (d.span, d.code)))
    return dataclasses.replace(program, source=str(path), warnings=warnings), sources


def _lint_rbac(program: Program, diags: Collector) -> None:
    try:
        from kubeforge.compiler.rbac_lint import lint
    except ImportError:  # the RBAC lint ships in its own module
        return
    diags.items.extend(lint(program))


class ProgramLowerer(MetaLowerer):
    def lower(self, modules: list[Module]) -> Program:
        items = [item for module in modules for item in module.items]
        clusters = [i for i in items if i.kind == "cluster"]
        for extra in clusters[1:]:
            self.error("E100", "only one cluster block is allowed", extra.span,
                       f"the first one is at {clusters[0].span}")
        cluster = ClusterLowerer(self.diags, self.base_dir).lower(clusters[0]) if clusters else None

        templates = self._templates([i for i in items if i.kind == "template"], None)
        workloads_l = WorkloadLowerer(self.diags, self.base_dir)
        objects_l = ObjectLowerer(self.diags, self.base_dir)
        rbac_l = RbacLowerer(self.diags, self.base_dir)
        out: dict[str, list] = {k: [] for k in ("namespaces", "workloads", "services", "configs",
                                                "secrets", "pvcs", "storageclasses", "ingresses",
                                                "networkpolicies", "roles", "subjects")}
        namespaces: dict[str, Namespace] = {}
        for item in items:
            if item.kind == "namespace":
                ns = self._namespace(item, namespaces)
                local = {**templates, **self._templates(list(item.stmts("template")), ns)}
                for stmt in item.body or ():
                    self._namespaced(stmt, ns, local, out, workloads_l, objects_l, rbac_l)
            elif item.kind == "storageclass":
                out["storageclasses"].append(objects_l.storageclass(item))
            elif item.kind in ("role", "clusterrole"):
                scope = item.clause("role_scope")
                if item.kind == "role" and scope is None:
                    self.error("E115", f"role `{item.value().py}` needs a namespace", item.span,
                               "write `role NAME in NAMESPACE { ... }`, declare it inside a "
                               "namespace block, or make it a `clusterrole`")
                    continue
                out["roles"].append(rbac_l.role(item, str(scope.value().py) if scope else None))
            elif item.kind in ("user", "group", "serviceaccount", "token"):
                subject = rbac_l.subject(item, None)
                if subject:
                    out["subjects"].append(subject)
        out["namespaces"] = list(namespaces.values())
        return Program(cluster=cluster, base_dir=str(self.base_dir),
                       **{k: tuple(v) for k, v in out.items()})

    # -- namespaces ------------------------------------------------------------------------
    def _namespace(self, stmt: Node, seen: dict[str, Namespace]) -> str:
        name = self.name(stmt.value(), "namespace")
        labels = self.merged_kv((s for s in stmt.stmts("labels")), labels=True)
        annotations = self.merged_kv(s for s in stmt.stmts("annotations"))
        quota = self.merged_kv(s for s in stmt.stmts("quota"))
        patches = self.patches(stmt.body or ())
        for key, _ in quota:
            if not (key in ("pods", "services", "secrets", "configmaps",
                            "persistentvolumeclaims") or key.startswith(("requests.", "limits."))
                    or key.startswith("count/") or key.endswith("storage")):
                self.warn("W102", f"`{key}` is not a common ResourceQuota key",
                          stmt.span)
        previous = seen.get(name)
        if previous is not None:
            labels = tuple({**dict(previous.labels), **dict(labels)}.items())
            annotations = tuple({**dict(previous.annotations), **dict(annotations)}.items())
            quota = tuple({**dict(previous.quota), **dict(quota)}.items())
            patches = previous.patches + patches
        seen[name] = Namespace(name, previous.span if previous else stmt.span, labels,
                               annotations, quota, patches)
        return name

    def _templates(self, stmts: list[Node], namespace: str | None) -> dict[str, Node]:
        found: dict[str, Node] = {}
        for stmt in stmts:
            name = str(stmt.value().py)
            if name in found:
                self.error("E100", f"template `{name}` is declared twice", stmt.span,
                           f"first declared at {found[name].span}")
            found[name] = stmt
        return found

    def _effective_bodies(self, stmt: Node, templates: dict[str, Node]) -> list[tuple[Node, ...]]:
        """The template chain's blocks, outermost first, then the workload's own."""
        chain: list[Node] = []
        current = stmt
        seen = {id(stmt)}
        where = f"{stmt.kind} `{stmt.value().py}`"
        self.unique_stmts(stmt.body or (), where)
        while True:
            ext = current.clause("extends")
            if ext is None:
                break
            parent_name = str(ext.value().py)
            parent = templates.get(parent_name)
            if parent is None:
                self.error("E102", f"unknown template `{parent_name}`", ext.value().span,
                           did_you_mean(parent_name, templates) or
                           ("declare it with `template NAME { ... }`" if not templates else None))
                break
            if id(parent) in seen:
                self.error("E119", f"template `{parent_name}` extends itself", ext.value().span)
                break
            seen.add(id(parent))
            self.unique_stmts(parent.body or (), f"template `{parent_name}`")
            chain.append(parent)
            current = parent
        return [tuple(parent.body or ()) for parent in reversed(chain)] + [tuple(stmt.body or ())]

    def _namespaced(self, stmt: Node, ns: str, templates, out, workloads_l: WorkloadLowerer,
                    objects_l: ObjectLowerer, rbac_l: RbacLowerer) -> None:
        kind = stmt.kind
        if kind in KINDS:
            workload = workloads_l.lower(stmt, ns, self._effective_bodies(stmt, templates))
            if workload:
                out["workloads"].append(workload)
        elif kind in ("service", "service_block"):
            out["services"].append(objects_l.service(stmt, ns))
        elif kind == "config":
            out["configs"].append(objects_l.config(stmt, ns))
        elif kind == "secret":
            secret = objects_l.secret(stmt, ns)
            if secret:
                out["secrets"].append(secret)
        elif kind == "pvc":
            out["pvcs"].append(objects_l.pvc(stmt, ns))
        elif kind == "ingress":
            out["ingresses"].append(objects_l.ingress(stmt, ns))
        elif kind == "networkpolicy":
            out["networkpolicies"].append(objects_l.netpol(stmt, ns))
        elif kind in ("role", "serviceaccount"):
            scope = stmt.clause("role_scope")
            if scope is not None and str(scope.value().py) != ns:
                self.error("E105", f"{kind} inside namespace `{ns}` names namespace "
                           f"`{scope.value().py}`", scope.span, "drop the `in` clause")
            if kind == "role":
                out["roles"].append(rbac_l.role(stmt, ns))
                return
            subject = rbac_l.subject(stmt, ns)
            if subject:
                out["subjects"].append(subject)
        # templates, labels, annotations, quota and patches were read with the namespace
