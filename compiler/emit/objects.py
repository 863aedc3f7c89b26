"""Objects that are not workloads: namespaces, storage classes, config, secrets, claims,
services, ingresses and network policies. Pure functions of the IR (a ConfigMap reads the
files it names, a Secret the environment or files, unless told to stand in placeholders)."""

from __future__ import annotations

import base64
import os

from kubeforge.compiler.ir import (ConfigMap, Ingress, LabelSelector, Namespace, NetworkPolicy,
                                   Pvc, Secret, Service, StorageClass, Workload)
from kubeforge.dsl.diagnostics import Diagnostic, DiagnosticError
from kubeforge.fileio import OBJECT_DATA_LIMIT, FileProblem, decode_utf8, read_regular


# ------------------------------------------------------------------------------ helpers
def meta(name: str, namespace: str | None = None, labels=(), annotations=()) -> dict:
    out: dict = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(labels)
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def obj(api: str, kind: str, name: str, namespace: str | None, labels=(), annotations=(),
        **body) -> dict:
    doc = {"apiVersion": api, "kind": kind, "metadata": meta(name, namespace, labels, annotations)}
    doc.update({k: v for k, v in body.items() if v is not None})
    return doc


def prune(d: dict) -> dict:
    """Drop unset (None) fields and empty collections, keeping explicit False and 0."""
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


# ------------------------------------------------------------------------------ cluster-scoped
def namespace(ns: Namespace) -> dict:
    return obj("v1", "Namespace", ns.name, None, ns.labels, ns.annotations)


def storageclass(sc: StorageClass) -> dict:
    annotations = dict(sc.annotations)
    if sc.default:
        annotations["storageclass.kubernetes.io/is-default-class"] = "true"
    doc = obj("storage.k8s.io/v1", "StorageClass", sc.name, None, sc.labels,
              tuple(annotations.items()), provisioner=sc.provisioner, reclaimPolicy=sc.reclaim,
              volumeBindingMode=sc.binding, allowVolumeExpansion=sc.expansion)
    if sc.parameters:
        doc["parameters"] = dict(sc.parameters)
    return doc


# ------------------------------------------------------------------------------ config and storage
def configmap(cm: ConfigMap) -> dict:
    data = {}
    for entry in cm.entries:
        if entry.file is not None:
            # Checked when the source was lowered; read the same way again, in case the file
            # changed since.
            try:
                data[entry.key] = decode_utf8(read_regular(entry.file, OBJECT_DATA_LIMIT))
            except FileProblem as problem:
                raise DiagnosticError([Diagnostic("E117", f"file `{entry.file}` {problem}",
                                                  entry.span)]) from None
        else:
            data[entry.key] = entry.value
    return obj("v1", "ConfigMap", cm.name, cm.namespace, cm.labels, cm.annotations, data=data)


def secret(s: Secret, *, placeholders: bool = False) -> dict:
    """The Secret with its values read now; ``placeholders`` stands in dummies (for
    checking a patch without the secret values at hand)."""
    data = {}
    problems = []
    for entry in s.entries:
        if placeholders:
            data[entry.key] = ""
            continue
        if entry.source == "env":
            value = os.environ.get(entry.ref)
            if value is None:
                problems.append(Diagnostic(
                    "E117", f"environment variable `{entry.ref}` is not set (secret `{s.name}`)",
                    entry.span, f"export {entry.ref}=... before compiling; secrets are never "
                    "written in the source"))
                continue
            raw = value.encode()
        else:
            try:
                raw = read_regular(entry.ref, OBJECT_DATA_LIMIT)
            except FileProblem as problem:
                problems.append(Diagnostic("E117", f"file `{entry.ref}` {problem}", entry.span))
                continue
        data[entry.key] = base64.b64encode(raw).decode()
    if problems:
        raise DiagnosticError(problems)
    return obj("v1", "Secret", s.name, s.namespace, s.labels, s.annotations, type=s.type,
               data=data)


def pvc(c: Pvc) -> dict:
    spec = {"accessModes": [c.access], "resources": {"requests": {"storage": c.size}}}
    if c.storage_class:
        spec["storageClassName"] = c.storage_class
    return obj("v1", "PersistentVolumeClaim", c.name, c.namespace, c.labels, c.annotations,
               spec=spec)


# ------------------------------------------------------------------------------ services
def service(s: Service, target: Workload | None) -> dict:
    selector = dict(s.selector) if s.selector else dict(target.selector) if target else {}
    labels = s.labels if s.labels_given else (target.object_labels if target else ())
    ports = []
    for p in s.ports:
        port: dict = {"port": p.port}
        if p.name:
            port["name"] = p.name
        if p.target is not None:
            port["targetPort"] = p.target
        if p.protocol != "TCP":
            port["protocol"] = p.protocol
        if p.node_port is not None:
            port["nodePort"] = p.node_port
        ports.append(port)
    spec: dict = {"selector": selector, "ports": ports}
    if s.type != "ClusterIP":
        spec["type"] = s.type
    if s.headless:
        spec["clusterIP"] = "None"
    if s.session_affinity:
        spec["sessionAffinity"] = s.session_affinity
    if s.external_traffic:
        spec["externalTrafficPolicy"] = s.external_traffic
    return obj("v1", "Service", s.name, s.namespace, labels, s.annotations, spec=spec)


def ingress(i: Ingress, services: dict[str, Service]) -> dict:
    rules: dict[str, list] = {}
    for r in i.routes:
        port = {"number": r.port} if isinstance(r.port, int) else {"name": r.port}
        rules.setdefault(r.host, []).append({
            "path": r.path, "pathType": r.match,
            "backend": {"service": {"name": r.service, "port": port}},
        })
    spec: dict = {"rules": [prune({"host": host if host not in ("", "*") else None,
                                   "http": {"paths": paths}})
                            for host, paths in rules.items()]}
    if i.ingress_class:
        spec["ingressClassName"] = i.ingress_class
    if i.tls:
        spec["tls"] = [{"hosts": list(t.hosts), "secretName": t.secret} for t in i.tls]
    return obj("networking.k8s.io/v1", "Ingress", i.name, i.namespace, i.labels, i.annotations,
               spec=spec)


def networkpolicy(n: NetworkPolicy, workloads: dict[tuple[str, str], Workload]) -> dict:
    def selector_of(name: str | None, namespace: str) -> dict:
        w = workloads.get((namespace, name)) if name else None
        return w.label_selector.doc() if w else {}

    def ns_selector(peer) -> dict | None:
        if peer.namespace_selector is not None:
            return peer.namespace_selector.doc()
        if peer.namespace is not None:
            return _ns_by_name(peer.namespace)
        return None

    pods = n.pods_selector.doc() if n.pods_selector is not None else selector_of(n.pods, n.namespace)
    spec: dict = {"podSelector": pods}
    types: list[str] = []
    for direction in ("ingress", "egress"):
        rules = [r for r in n.rules if r.direction == direction]
        if not rules and direction not in n.deny:
            continue
        types.append(direction.capitalize())
        out_rules = []
        for r in rules:
            rule: dict = {}
            if not any(p.kind == "any" for p in r.peers):
                peers = []
                for p in r.peers:
                    if p.kind == "workload":
                        # A workload of another namespace, or of namespaces by label.
                        peer = {"podSelector": selector_of(p.value, p.namespace or n.namespace)}
                        if ns_selector(p) is not None:
                            peer["namespaceSelector"] = ns_selector(p)
                        peers.append(peer)
                    elif p.kind == "pods":
                        peer: dict = {"podSelector": (p.selector or LabelSelector()).doc()}
                        if ns_selector(p) is not None:
                            peer["namespaceSelector"] = ns_selector(p)
                        peers.append(peer)
                    elif p.kind == "namespace":
                        peers.append({"namespaceSelector": _ns_by_name(p.value)})
                    elif p.kind == "namespaces":
                        peers.append({"namespaceSelector": (p.selector or LabelSelector()).doc()})
                    elif p.kind == "cidr":
                        block: dict = {"cidr": p.value}
                        if p.excepts:
                            block["except"] = list(p.excepts)
                        peers.append({"ipBlock": block})
                rule["from" if direction == "ingress" else "to"] = peers
            if r.ports:
                rule["ports"] = [{"port": port, "protocol": proto} for port, proto in r.ports]
            out_rules.append(rule)
        spec[direction] = out_rules
    spec["policyTypes"] = types
    return obj("networking.k8s.io/v1", "NetworkPolicy", n.name, n.namespace, n.labels,
               n.annotations, spec=spec)


def _ns_by_name(name: str | None) -> dict:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}
