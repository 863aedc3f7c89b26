"""Workload manifests: one YAML file for cluster-scoped objects, one per namespace.

Files sort in apply order: ``00-cluster.yaml`` (namespaces, storage classes), then per
namespace ``10-<ns>-secrets.yaml`` (0600, never printed) and ``10-<ns>.yaml``. Inside a
file, objects come in dependency order (quota, config, claims, services, workloads,
autoscalers, budgets, ingresses, policies), each kind in source order. Each object's
`patch` statements are applied last (:mod:`kubeforge.compiler.patch`). The objects
themselves are built by :mod:`objects` and :mod:`pods`.
"""

from __future__ import annotations

from typing import Iterator

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from kubeforge.compiler import text_memo
from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.compiler.checks import IMPLICIT_NAMESPACES
from kubeforge.compiler.emit.objects import (configmap, ingress, namespace, networkpolicy, obj,
                                             pvc, secret, service, storageclass)
from kubeforge.compiler.emit.pods import hpa, pdb, workload
from kubeforge.compiler.ir import Patch, Program
from kubeforge.compiler.patch import PatchProblem, apply_patches
from kubeforge.dsl.diagnostics import DiagnosticError, Span

#: An object before its patches: (what it is, for messages; the document; its patches; the
#: span of the statement it comes from).
Unpatched = tuple[str, dict, tuple[Patch, ...], Span]


class _SlowDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml when present
    """Multi-line strings (config files in ConfigMaps) as readable `|` blocks."""


def _style(value: str) -> str | None:
    return "|" if "\n" in value and not value.strip(" \n") == "" and "\t" not in value else None


def _str(dumper: yaml.SafeDumper, value: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=_style(value))


_SlowDumper.add_representer(str, _str)

_TAG = "tag:yaml.org,2002:"


class _Dumper(_SlowDumper):
    """_SlowDumper's nodes, built without its per-node dispatch (represent_data's type
    lookups and alias bookkeeping for scalars): the same node tree, so libyaml writes the
    same text. Types other than dict, list, str, int, bool and None take the usual path."""

    def represent_data(self, data):
        kind = type(data)
        if kind is str:
            return ScalarNode(_TAG + "str", data, style=_style(data))
        if kind is dict or kind is list:
            key = id(data)
            node = self.represented_objects.get(key)
            if node is not None:
                return node  # met before: libyaml writes an alias, as with _SlowDumper
            self.object_keeper.append(data)
            value: list = []
            if kind is list:
                node = SequenceNode(_TAG + "seq", value, flow_style=False)
                self.represented_objects[key] = node
                value.extend(self.represent_data(item) for item in data)
                return node
            items = list(data.items())
            if self.sort_keys:
                try:
                    items = sorted(items)  # represent_mapping's: mixed keys stay as they were
                except TypeError:
                    pass
            node = MappingNode(_TAG + "map", value, flow_style=False)
            self.represented_objects[key] = node
            value.extend((self.represent_data(k), self.represent_data(v)) for k, v in items)
            return node
        if kind is int:
            return ScalarNode(_TAG + "int", str(data))
        if kind is bool:
            return ScalarNode(_TAG + "bool", "true" if data else "false")
        if data is None:
            return ScalarNode(_TAG + "null", "null")
        return super().represent_data(data)


def dump_all(docs: list[dict]) -> bytes:
    """The documents as one YAML stream (not memoised: for secrets)."""
    return _dump_stream(docs).encode()


def _dump_stream(docs: list[dict]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=True, explicit_start=True,
                         default_flow_style=False, width=100)


def _dump_one(doc: dict) -> str:
    return _dump_stream([doc])


def dump_documents(docs: list[dict]) -> bytes:
    """What :func:`dump_all` writes, a document at a time through :mod:`text_memo` (an edit
    to one workload writes one workload again). The emitter keeps no state from one
    document to the next but whether the last one was left open (a ``|+`` block at its
    end), which the stream's end closes with ``...`` and the next document's start does
    not: such a document anywhere but last makes the stream be written whole."""
    pieces = [text_memo.text(_dump_one, doc) for doc in docs]
    if any(piece.endswith("\n...\n") for piece in pieces[:-1]):
        return dump_all(docs)
    return "".join(pieces).encode()


def emit(ctx: BuildContext) -> list[Artifact]:
    return manifest_artifacts(ctx.program)


def manifest_artifacts(program: Program) -> list[Artifact]:
    out: list[Artifact] = []
    cluster_docs = _patched(program, cluster_objects(program))
    if cluster_docs:
        out.append(Artifact("manifests/00-cluster.yaml", dump_documents(cluster_docs)))
    for ns in sorted({n.name for n in program.namespaces}):
        secrets = _patched(program, secret_objects(program, ns))
        if secrets:
            out.append(Artifact(f"manifests/10-{ns}-secrets.yaml", dump_all(secrets), 0o600,
                                secret=True))
        docs = _patched(program, namespace_objects(program, ns))
        if docs:
            out.append(Artifact(f"manifests/10-{ns}.yaml", dump_documents(docs)))
    return out


def namespace_docs(p: Program, ns: str) -> list[dict]:
    return _patched(p, namespace_objects(p, ns))


def _patched(p: Program, objects: Iterator[Unpatched]) -> list[dict]:
    version = p.cluster.version if p.cluster else None
    docs = []
    for what, doc, patches, _ in objects:
        try:
            docs.append(apply_patches(doc, patches, version, what))
        except PatchProblem as problem:  # check_patches reports these before any emit
            raise DiagnosticError([problem.diagnostic]) from None
    return docs


# ------------------------------------------------------------------------------ objects
def cluster_objects(p: Program) -> Iterator[Unpatched]:
    for ns in p.namespaces:
        if ns.name not in IMPLICIT_NAMESPACES or ns.labels or ns.annotations or ns.patches:
            yield f"namespace `{ns.name}`", namespace(ns), ns.patches, ns.span
    for sc in p.storageclasses:
        yield f"storageclass `{sc.name}`", storageclass(sc), sc.patches, sc.span


def secret_objects(p: Program, ns: str, *, placeholders: bool = False) -> Iterator[Unpatched]:
    for s in p.secrets:
        if s.namespace == ns:
            yield (f"secret `{s.name}`", secret(s, placeholders=placeholders), s.patches,
                   s.span)


def namespace_objects(p: Program, ns: str) -> Iterator[Unpatched]:
    for n in p.namespaces:
        if n.name == ns and n.quota:
            yield ("quota", obj("v1", "ResourceQuota", "quota", ns, spec={"hard": dict(n.quota)}),
                   (), n.span)
    for c in p.configs:
        if c.namespace == ns:
            yield f"config `{c.name}`", configmap(c), c.patches, c.span
    for c in p.pvcs:
        if c.namespace == ns:
            yield f"pvc `{c.name}`", pvc(c), c.patches, c.span
    workloads = {w.name: w for w in p.workloads if w.namespace == ns}
    everywhere = {(w.namespace, w.name): w for w in p.workloads}
    services = [s for s in p.services if s.namespace == ns]
    for s in services:
        yield f"service `{s.name}`", service(s, workloads.get(s.target)), s.patches, s.span

    def selectors(name: str):
        w = workloads.get(name)
        return w.label_selector if w else None

    for w in workloads.values():
        yield f"{w.kind.lower()} `{w.name}`", workload(w, services, selectors), w.patches, w.span
    for w in workloads.values():
        if w.autoscale:
            yield f"autoscaler of `{w.name}`", hpa(w), w.autoscale.meta.patches, w.span
    for w in workloads.values():
        if w.disruption:
            yield f"disruption budget of `{w.name}`", pdb(w), w.disruption.meta.patches, w.span
    svc_by_name = {s.name: s for s in services}
    for i in p.ingresses:
        if i.namespace == ns:
            yield f"ingress `{i.name}`", ingress(i, svc_by_name), i.patches, i.span
    for n in p.networkpolicies:
        if n.namespace == ns:
            yield f"networkpolicy `{n.name}`", networkpolicy(n, everywhere), n.patches, n.span
