"""Workload manifests: one YAML file for cluster-scoped objects, one per namespace.

Files sort in apply order: ``00-cluster.yaml`` (namespaces, storage classes), then per
namespace ``10-<ns>-secrets.yaml`` (0600, never printed) and ``10-<ns>.yaml``. Inside a
file, objects come in dependency order (quota, config, claims, services, workloads,
autoscalers, budgets, ingresses, policies), each kind in source order.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.compiler.checks import IMPLICIT_NAMESPACES
from kubeforge.compiler.ir import (ConfigMap, Container, Ingress, Namespace, NetworkPolicy,
                                   Program, Pvc, Secret, Service, StorageClass, Workload)
from kubeforge.dsl.diagnostics import Diagnostic, DiagnosticError


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml when present
    """Multi-line strings (config files in ConfigMaps) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value and not value.strip(" \n") == "" and "\t" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_all(docs: list[dict]) -> bytes:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=True, explicit_start=True,
                         default_flow_style=False, width=100).encode()


def emit(ctx: BuildContext) -> list[Artifact]:
    return manifest_artifacts(ctx.program)


def manifest_artifacts(program: Program) -> list[Artifact]:
    out: list[Artifact] = []
    cluster_docs = [namespace(ns) for ns in program.namespaces
                    if ns.name not in IMPLICIT_NAMESPACES or ns.labels or ns.annotations]
    cluster_docs += [storageclass(sc) for sc in program.storageclasses]
    if cluster_docs:
        out.append(Artifact("manifests/00-cluster.yaml", dump_all(cluster_docs)))
    for ns in sorted({n.name for n in program.namespaces}):
        secrets = [secret(s) for s in program.secrets if s.namespace == ns]
        if secrets:
            out.append(Artifact(f"manifests/10-{ns}-secrets.yaml", dump_all(secrets), 0o600,
                                secret=True))
        docs = namespace_docs(program, ns)
        if docs:
            out.append(Artifact(f"manifests/10-{ns}.yaml", dump_all(docs)))
    return out


def namespace_docs(p: Program, ns: str) -> list[dict]:
    docs: list[dict] = []
    for n in p.namespaces:
        if n.name == ns and n.quota:
            docs.append(_obj("v1", "ResourceQuota", "quota", ns, spec={"hard": dict(n.quota)}))
    docs += [configmap(c) for c in p.configs if c.namespace == ns]
    docs += [pvc(c) for c in p.pvcs if c.namespace == ns]
    workloads = {w.name: w for w in p.workloads if w.namespace == ns}
    docs += [service(s, workloads.get(s.target)) for s in p.services if s.namespace == ns]
    services = [s for s in p.services if s.namespace == ns]
    for w in workloads.values():
        docs.append(workload(w, services))
    for w in workloads.values():
        if w.autoscale:
            docs.append(hpa(w))
    for w in workloads.values():
        if w.disruption:
            docs.append(pdb(w))
    svc_by_name = {s.name: s for s in services}
    docs += [ingress(i, svc_by_name) for i in p.ingresses if i.namespace == ns]
    docs += [networkpolicy(n, workloads) for n in p.networkpolicies if n.namespace == ns]
    return docs


# ------------------------------------------------------------------------------ helpers
def _meta(name: str, namespace: str | None = None, labels=(), annotations=()) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _obj(api: str, kind: str, name: str, namespace: str | None, labels=(), annotations=(),
         **body) -> dict:
    doc = {"apiVersion": api, "kind": kind, "metadata": _meta(name, namespace, labels, annotations)}
    doc.update({k: v for k, v in body.items() if v is not None})
    return doc


def _prune(d: dict) -> dict:
    """Drop unset (None) fields and empty collections, keeping explicit False and 0."""
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


# ------------------------------------------------------------------------------ cluster-scoped
def namespace(ns: Namespace) -> dict:
    return _obj("v1", "Namespace", ns.name, None, ns.labels, ns.annotations)


def storageclass(sc: StorageClass) -> dict:
    annotations = {}
    if sc.default:
        annotations["storageclass.kubernetes.io/is-default-class"] = "true"
    doc = _obj("storage.k8s.io/v1", "StorageClass", sc.name, None, (), tuple(annotations.items()),
               provisioner=sc.provisioner, reclaimPolicy=sc.reclaim,
               volumeBindingMode=sc.binding, allowVolumeExpansion=sc.expansion)
    if sc.parameters:
        doc["parameters"] = dict(sc.parameters)
    return doc


# ------------------------------------------------------------------------------ config and storage
def configmap(cm: ConfigMap) -> dict:
    data = {}
    for entry in cm.entries:
        if entry.file is not None:
            data[entry.key] = Path(entry.file).read_text(encoding="utf-8")
        else:
            data[entry.key] = entry.value
    return _obj("v1", "ConfigMap", cm.name, cm.namespace, data=data)


def secret(s: Secret) -> dict:
    data = {}
    problems = []
    for entry in s.entries:
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
                raw = Path(entry.ref).read_bytes()
            except OSError as exc:
                problems.append(Diagnostic("E117", f"cannot read `{entry.ref}`: {exc.strerror}",
                                           entry.span))
                continue
        data[entry.key] = base64.b64encode(raw).decode()
    if problems:
        raise DiagnosticError(problems)
    return _obj("v1", "Secret", s.name, s.namespace, type=s.type, data=data)


def pvc(c: Pvc) -> dict:
    spec = {"accessModes": [c.access], "resources": {"requests": {"storage": c.size}}}
    if c.storage_class:
        spec["storageClassName"] = c.storage_class
    return _obj("v1", "PersistentVolumeClaim", c.name, c.namespace, spec=spec)


# ------------------------------------------------------------------------------ services
def service(s: Service, target: Workload | None) -> dict:
    selector = dict(s.selector) if s.selector else dict(target.selector) if target else {}
    labels = s.labels or (target.labels if target else ())
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
    return _obj("v1", "Service", s.name, s.namespace, labels, s.annotations, spec=spec)


def ingress(i: Ingress, services: dict[str, Service]) -> dict:
    rules: dict[str, list] = {}
    for r in i.routes:
        port = {"number": r.port} if isinstance(r.port, int) else {"name": r.port}
        rules.setdefault(r.host, []).append({
            "path": r.path, "pathType": r.match,
            "backend": {"service": {"name": r.service, "port": port}},
        })
    spec: dict = {"rules": [_prune({"host": host if host not in ("", "*") else None,
                                    "http": {"paths": paths}})
                            for host, paths in rules.items()]}
    if i.ingress_class:
        spec["ingressClassName"] = i.ingress_class
    if i.tls:
        spec["tls"] = [{"hosts": list(t.hosts), "secretName": t.secret} for t in i.tls]
    return _obj("networking.k8s.io/v1", "Ingress", i.name, i.namespace, i.labels, i.annotations,
                spec=spec)


def networkpolicy(n: NetworkPolicy, workloads: dict[str, Workload]) -> dict:
    def selector_of(name: str | None) -> dict:
        w = workloads.get(name) if name else None
        return {"matchLabels": dict(w.selector)} if w else {}

    spec: dict = {"podSelector": selector_of(n.pods)}
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
                        peers.append({"podSelector": selector_of(p.value)})
                    elif p.kind == "namespace":
                        peers.append({"namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": p.value}}})
                    elif p.kind == "cidr":
                        peers.append({"ipBlock": {"cidr": p.value}})
                rule["from" if direction == "ingress" else "to"] = peers
            if r.ports:
                rule["ports"] = [{"port": port, "protocol": proto} for port, proto in r.ports]
            out_rules.append(rule)
        spec[direction] = out_rules
    spec["policyTypes"] = types
    return _obj("networking.k8s.io/v1", "NetworkPolicy", n.name, n.namespace, spec=spec)


# ------------------------------------------------------------------------------ workloads
def workload(w: Workload, services: list[Service]) -> dict:
    template = {"metadata": _prune({"labels": dict(w.labels),
                                    "annotations": dict(w.annotations) or None}),
                "spec": pod_spec(w)}
    selector = {"matchLabels": dict(w.selector)}
    r = w.rollout
    if w.kind == "Deployment":
        spec: dict = {"replicas": w.replicas, "selector": selector, "template": template,
                      "revisionHistoryLimit": r.history, "minReadySeconds": r.min_ready_seconds}
        spec["strategy"] = _strategy(r, "Recreate", maxSurge=r.max_surge,
                                     maxUnavailable=r.max_unavailable)
        return _obj("apps/v1", "Deployment", w.name, w.namespace, w.labels, w.annotations,
                    spec=_prune(spec))
    if w.kind == "StatefulSet":
        governing = next((s.name for s in services if s.target == w.name and s.headless),
                         next((s.name for s in services if s.target == w.name), w.name))
        spec = {"replicas": w.replicas, "selector": selector, "template": template,
                "serviceName": governing, "revisionHistoryLimit": r.history,
                "minReadySeconds": r.min_ready_seconds}
        spec["updateStrategy"] = _strategy(r, "OnDelete", partition=r.partition,
                                           maxUnavailable=r.max_unavailable)
        if w.claims:
            spec["volumeClaimTemplates"] = [
                {"metadata": {"name": c.name},
                 "spec": _prune({"accessModes": [c.access],
                                 "resources": {"requests": {"storage": c.size}},
                                 "storageClassName": c.storage_class})}
                for c in w.claims]
        return _obj("apps/v1", "StatefulSet", w.name, w.namespace, w.labels, w.annotations,
                    spec=_prune(spec))
    if w.kind == "DaemonSet":
        spec = {"selector": selector, "template": template, "revisionHistoryLimit": r.history,
                "minReadySeconds": r.min_ready_seconds}
        spec["updateStrategy"] = _strategy(r, "OnDelete", maxSurge=r.max_surge,
                                           maxUnavailable=r.max_unavailable)
        return _obj("apps/v1", "DaemonSet", w.name, w.namespace, w.labels, w.annotations,
                    spec=_prune(spec))
    job_spec = _prune({"completions": w.completions, "parallelism": w.parallelism,
                       "backoffLimit": w.backoff_limit,
                       "ttlSecondsAfterFinished": w.ttl_after_finished, "template": template})
    if w.kind == "Job":
        return _obj("batch/v1", "Job", w.name, w.namespace, w.labels, w.annotations, spec=job_spec)
    spec = _prune({"schedule": w.schedule, "concurrencyPolicy": w.concurrency,
                   "successfulJobsHistoryLimit": r.history, "failedJobsHistoryLimit": r.history,
                   "jobTemplate": {"metadata": {"labels": dict(w.labels)}, "spec": job_spec}})
    return _obj("batch/v1", "CronJob", w.name, w.namespace, w.labels, w.annotations, spec=spec)


def _strategy(r, other: str, **rolling) -> dict | None:
    """A rollout strategy block, or None when the language left Kubernetes' default."""
    if r.strategy == other:
        return {"type": other}
    settings = _prune(rolling)
    if settings or r.strategy:
        return _prune({"type": "RollingUpdate", "rollingUpdate": settings})
    return None


def pod_spec(w: Workload) -> dict:
    volumes: dict[str, dict] = {}
    for c in (*w.init_containers, *w.containers):
        for m in c.mounts:
            if m.source == "template" or m.name in volumes:
                continue
            volumes[m.name] = {"name": m.name, **_volume_source(m)}
    spec: dict = {
        "containers": [container(c) for c in w.containers],
        "initContainers": [container(c) for c in w.init_containers],
        "volumes": list(volumes.values()),
        "serviceAccountName": w.service_account,
        "automountServiceAccountToken": w.automount_token,
        "nodeSelector": dict(w.node_selector),
        "tolerations": [_prune({"key": t.key, "operator": "Equal" if t.value is not None else "Exists",
                                "value": t.value, "effect": t.effect}) for t in w.tolerations],
        "terminationGracePeriodSeconds": w.grace_seconds,
    }
    if w.kind in ("Job", "CronJob"):
        spec["restartPolicy"] = w.restart or "OnFailure"
    fs_group = next((c.security.fs_group for c in w.containers
                     if c.security and c.security.fs_group is not None), None)
    if fs_group is not None:
        spec["securityContext"] = {"fsGroup": fs_group}
    if w.spread:
        term = {"labelSelector": {"matchLabels": dict(w.selector)}, "topologyKey": w.spread_key}
        if w.spread == "hard":
            anti = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
        else:
            anti = {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}]}
        spec["affinity"] = {"podAntiAffinity": anti}
    return _prune(spec)


def _volume_source(m) -> dict:
    if m.source == "config":
        return {"configMap": {"name": m.ref}}
    if m.source == "secret":
        return {"secret": {"secretName": m.ref}}
    if m.source == "claim":
        return {"persistentVolumeClaim": {"claimName": m.ref}}
    if m.source == "host":
        return {"hostPath": {"path": m.ref}}
    return {"emptyDir": {"sizeLimit": m.size_limit} if m.size_limit else {}}


def container(c: Container) -> dict:
    env = []
    for e in c.env:
        if e.value is not None:
            env.append({"name": e.name, "value": e.value})
        elif e.ref_kind == "field":
            env.append({"name": e.name, "valueFrom": {"fieldRef": {"fieldPath": e.ref_key}}})
        else:
            ref = "configMapKeyRef" if e.ref_kind == "config" else "secretKeyRef"
            env.append({"name": e.name, "valueFrom": {ref: {"name": e.ref_name, "key": e.ref_key}}})
    env_from = [{"configMapRef" if f.kind == "config" else "secretRef": {"name": f.name}}
                for f in c.env_from]
    ports = []
    for p in c.ports:
        port: dict = {"containerPort": p.port}
        if p.name:
            port["name"] = p.name
        if p.protocol != "TCP":
            port["protocol"] = p.protocol
        ports.append(port)
    res = c.resources
    resources = _prune({
        "requests": _prune({"cpu": res.cpu, "memory": res.memory, "ephemeral-storage": res.ephemeral}),
        "limits": _prune({"cpu": res.limit_cpu, "memory": res.limit_memory,
                          "ephemeral-storage": res.limit_ephemeral}),
    })
    out: dict = {
        "name": c.name, "image": c.image, "imagePullPolicy": c.pull_policy,
        "command": list(c.command), "args": list(c.args), "workingDir": c.working_dir,
        "env": env, "envFrom": env_from, "ports": ports, "resources": resources,
        "volumeMounts": [_prune({"name": m.name, "mountPath": m.path,
                                 "readOnly": True if m.read_only else None}) for m in c.mounts],
    }
    for probe in c.probes:
        out[f"{probe.kind}Probe"] = _probe(probe)
    if c.security:
        s = c.security
        caps = _prune({"add": list(s.caps_add), "drop": list(s.caps_drop)})
        out["securityContext"] = _prune({
            "runAsUser": s.run_as_user, "runAsGroup": s.run_as_group,
            "runAsNonRoot": s.run_as_non_root, "readOnlyRootFilesystem": s.read_only_root,
            "privileged": s.privileged, "allowPrivilegeEscalation": s.allow_privilege_escalation,
            "capabilities": caps or None,
            "seccompProfile": {"type": s.seccomp} if s.seccomp else None,
        })
    return _prune(out)


def _probe(p) -> dict:
    if p.check == "http":
        action = {"httpGet": {"path": p.path, "port": p.port}}
    elif p.check == "tcp":
        action = {"tcpSocket": {"port": p.port}}
    elif p.check == "grpc":
        action = {"grpc": {"port": p.port}}
    else:
        action = {"exec": {"command": list(p.command)}}
    return _prune({**action, "initialDelaySeconds": p.initial_delay, "periodSeconds": p.period,
                   "timeoutSeconds": p.timeout, "failureThreshold": p.failure_threshold,
                   "successThreshold": p.success_threshold})


def hpa(w: Workload) -> dict:
    a = w.autoscale
    assert a is not None
    metrics = [{"type": "Resource", "resource": {
        "name": name, "target": {"type": "Utilization", "averageUtilization": pct}}}
        for name, pct in a.metrics]
    return _obj("autoscaling/v2", "HorizontalPodAutoscaler", w.name, w.namespace, w.labels,
                spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": w.kind, "name": w.name},
                      "minReplicas": a.min, "maxReplicas": a.max, "metrics": metrics})


def pdb(w: Workload) -> dict:
    d = w.disruption
    assert d is not None
    key = "minAvailable" if d.field == "min_available" else "maxUnavailable"
    return _obj("policy/v1", "PodDisruptionBudget", w.name, w.namespace, w.labels,
                spec={"selector": {"matchLabels": dict(w.selector)}, key: d.value})
