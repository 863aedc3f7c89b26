"""Workload objects: Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods, and the
autoscalers and disruption budgets made for them. Pure functions of the IR."""

from __future__ import annotations

from typing import Callable

from kubeforge.compiler.emit.objects import obj, prune
from kubeforge.compiler.ir import Affinity, Container, LabelSelector, Security, Service, Workload

#: Finds a workload's selector by name in its namespace (for `pods NAME` terms).
Selectors = Callable[[str], "LabelSelector | None"]


def workload(w: Workload, services: list[Service], selectors: Selectors) -> dict:
    template = {"metadata": prune({"labels": dict(w.labels),
                                   "annotations": dict(w.annotations) or None}),
                "spec": pod_spec(w, selectors)}
    selector = w.label_selector.doc()
    labels, annotations = w.object_labels, w.object_annotations
    r = w.rollout
    # Under an autoscaler the replica count is the autoscaler's: declaring it too would set
    # it back on every apply (Kubernetes' advice is to leave it out).
    replicas = None if w.autoscale else w.replicas
    if w.kind == "Pod":
        return obj("v1", "Pod", w.name, w.namespace, w.labels, w.annotations,
                   spec=template["spec"])
    if w.kind == "Deployment":
        spec: dict = {"replicas": replicas, "selector": selector, "template": template,
                      "revisionHistoryLimit": r.history, "minReadySeconds": r.min_ready_seconds}
        spec["strategy"] = _strategy(r, "Recreate", maxSurge=r.max_surge,
                                     maxUnavailable=r.max_unavailable)
        return obj("apps/v1", "Deployment", w.name, w.namespace, labels, annotations,
                   spec=prune(spec))
    if w.kind == "StatefulSet":
        governing = next((s.name for s in services if s.target == w.name and s.headless),
                         next((s.name for s in services if s.target == w.name), w.name))
        spec = {"replicas": replicas, "selector": selector, "template": template,
                "serviceName": governing, "revisionHistoryLimit": r.history,
                "minReadySeconds": r.min_ready_seconds,
                "podManagementPolicy": w.pod_management}
        spec["updateStrategy"] = _strategy(r, "OnDelete", partition=r.partition,
                                           maxUnavailable=r.max_unavailable)
        if w.claims:
            spec["volumeClaimTemplates"] = [
                {"metadata": {"name": c.name},
                 "spec": prune({"accessModes": [c.access],
                                "resources": {"requests": {"storage": c.size}},
                                "storageClassName": c.storage_class})}
                for c in w.claims]
        return obj("apps/v1", "StatefulSet", w.name, w.namespace, labels, annotations,
                   spec=prune(spec))
    if w.kind == "DaemonSet":
        spec = {"selector": selector, "template": template, "revisionHistoryLimit": r.history,
                "minReadySeconds": r.min_ready_seconds}
        spec["updateStrategy"] = _strategy(r, "OnDelete", maxSurge=r.max_surge,
                                           maxUnavailable=r.max_unavailable)
        return obj("apps/v1", "DaemonSet", w.name, w.namespace, labels, annotations,
                   spec=prune(spec))
    job_spec = prune({"completions": w.completions, "parallelism": w.parallelism,
                      "backoffLimit": w.backoff_limit,
                      "ttlSecondsAfterFinished": w.ttl_after_finished, "template": template})
    if w.kind == "Job":
        return obj("batch/v1", "Job", w.name, w.namespace, labels, annotations, spec=job_spec)
    spec = prune({"schedule": w.schedule, "concurrencyPolicy": w.concurrency,
                  "successfulJobsHistoryLimit": r.history, "failedJobsHistoryLimit": r.history,
                  "jobTemplate": {"metadata": {"labels": dict(w.labels)}, "spec": job_spec}})
    return obj("batch/v1", "CronJob", w.name, w.namespace, labels, annotations, spec=spec)


def _strategy(r, other: str, **rolling) -> dict | None:
    """A rollout strategy block, or None when the language left Kubernetes' default."""
    if r.strategy == other:
        return {"type": other}
    settings = prune(rolling)
    if settings or r.strategy:
        return prune({"type": "RollingUpdate", "rollingUpdate": settings})
    return None


def pod_spec(w: Workload, selectors: Selectors) -> dict:
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
        "tolerations": [prune({"key": t.key, "operator": "Equal" if t.value is not None else "Exists",
                               "value": t.value, "effect": t.effect}) for t in w.tolerations],
        "terminationGracePeriodSeconds": w.grace_seconds,
        "topologySpreadConstraints": [_spread(s, w) for s in w.spreads],
    }
    if w.kind in ("Job", "CronJob"):
        spec["restartPolicy"] = w.restart or "OnFailure"
    elif w.kind == "Pod" and w.restart:
        spec["restartPolicy"] = w.restart
    if w.pod_security is not None:
        spec["securityContext"] = pod_security(w.pod_security) or None
    affinity = _affinity(w, selectors)
    if affinity:
        spec["affinity"] = affinity
    return prune(spec)


def pod_security(s: Security) -> dict:
    return prune({
        "runAsUser": s.run_as_user, "runAsGroup": s.run_as_group,
        "runAsNonRoot": s.run_as_non_root, "fsGroup": s.fs_group,
        "fsGroupChangePolicy": s.fs_group_change,
        "supplementalGroups": list(s.supplemental_groups),
        "seccompProfile": {"type": s.seccomp} if s.seccomp else None,
    })


def _affinity(w: Workload, selectors: Selectors) -> dict:
    out: dict[str, dict] = {}
    if w.spread:
        term = {"labelSelector": w.label_selector.doc(), "topologyKey": w.spread_key}
        if w.spread == "hard":
            out["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
        else:
            out["podAntiAffinity"] = {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}]}
    for a in w.affinities:
        if a.kind == "node":
            node = out.setdefault("nodeAffinity", {})
            term = {"matchExpressions": _node_expressions(a.selector)}
            if a.weight is None:
                node.setdefault("requiredDuringSchedulingIgnoredDuringExecution",
                                {"nodeSelectorTerms": []})["nodeSelectorTerms"].append(term)
            else:
                node.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
                    {"weight": a.weight, "preference": term})
            continue
        field = "podAntiAffinity" if a.kind == "anti" else "podAffinity"
        term = _pod_term(a, selectors)
        group = out.setdefault(field, {})
        if a.weight is None:
            group.setdefault("requiredDuringSchedulingIgnoredDuringExecution", []).append(term)
        else:
            group.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
                {"weight": a.weight, "podAffinityTerm": term})
    return out


def _pod_term(a: Affinity, selectors: Selectors) -> dict:
    selector = a.selector
    if a.workload is not None:
        selector = selectors(a.workload) or selector
    term: dict = {"labelSelector": selector.doc(), "topologyKey": a.topology_key}
    if a.namespaces:
        term["namespaces"] = list(a.namespaces)
    if a.namespace_selector is not None:
        term["namespaceSelector"] = a.namespace_selector.doc()
    return term


def _node_expressions(selector: LabelSelector) -> list[dict]:
    """Node selector terms have no matchLabels: `k = "v"` becomes `k In [v]`."""
    exprs = [{"key": k, "operator": "In", "values": [v]} for k, v in selector.match_labels]
    exprs += [prune({"key": e.key, "operator": e.operator, "values": list(e.values)})
              for e in selector.expressions]
    return exprs


def _spread(s, w: Workload) -> dict:
    selector = s.selector if s.selector is not None else w.label_selector
    return prune({"maxSkew": s.max_skew, "topologyKey": s.topology_key,
                  "whenUnsatisfiable": "DoNotSchedule" if s.hard else "ScheduleAnyway",
                  "labelSelector": selector.doc(), "minDomains": s.min_domains})


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
    resources = prune({
        "requests": prune({"cpu": res.cpu, "memory": res.memory, "ephemeral-storage": res.ephemeral}),
        "limits": prune({"cpu": res.limit_cpu, "memory": res.limit_memory,
                         "ephemeral-storage": res.limit_ephemeral}),
    })
    out: dict = {
        "name": c.name, "image": c.image, "imagePullPolicy": c.pull_policy,
        "command": list(c.command), "args": list(c.args), "workingDir": c.working_dir,
        "env": env, "envFrom": env_from, "ports": ports, "resources": resources,
        "volumeMounts": [prune({"name": m.name, "mountPath": m.path,
                                "readOnly": True if m.read_only else None,
                                "subPath": m.sub_path, "subPathExpr": m.sub_path_expr})
                         for m in c.mounts],
        "lifecycle": {h.event: _handler(h) for h in c.hooks} or None,
    }
    for probe in c.probes:
        out[f"{probe.kind}Probe"] = _probe(probe)
    if c.security:
        s = c.security
        caps = prune({"add": list(s.caps_add), "drop": list(s.caps_drop)})
        out["securityContext"] = prune({
            "runAsUser": s.run_as_user, "runAsGroup": s.run_as_group,
            "runAsNonRoot": s.run_as_non_root, "readOnlyRootFilesystem": s.read_only_root,
            "privileged": s.privileged, "allowPrivilegeEscalation": s.allow_privilege_escalation,
            "capabilities": caps or None,
            "seccompProfile": {"type": s.seccomp} if s.seccomp else None,
        })
    return prune(out)


def _handler(h) -> dict:
    if h.action == "http":
        return {"httpGet": {"path": h.path, "port": h.port}}
    if h.action == "sleep":
        return {"sleep": {"seconds": h.seconds}}
    return {"exec": {"command": list(h.command)}}


def _probe(p) -> dict:
    if p.check == "http":
        action = {"httpGet": {"path": p.path, "port": p.port}}
    elif p.check == "tcp":
        action = {"tcpSocket": {"port": p.port}}
    elif p.check == "grpc":
        action = {"grpc": {"port": p.port}}
    else:
        action = {"exec": {"command": list(p.command)}}
    return prune({**action, "initialDelaySeconds": p.initial_delay, "periodSeconds": p.period,
                  "timeoutSeconds": p.timeout, "failureThreshold": p.failure_threshold,
                  "successThreshold": p.success_threshold})


def hpa(w: Workload) -> dict:
    a = w.autoscale
    assert a is not None
    metrics = [{"type": "Resource", "resource": {
        "name": name, "target": {"type": "Utilization", "averageUtilization": pct}}}
        for name, pct in a.metrics]
    labels = a.meta.labels if a.meta.labels is not None else w.object_labels
    return obj("autoscaling/v2", "HorizontalPodAutoscaler", a.meta.name or w.name, w.namespace,
               labels, a.meta.annotations,
               spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": w.kind, "name": w.name},
                     "minReplicas": a.min, "maxReplicas": a.max, "metrics": metrics})


def pdb(w: Workload) -> dict:
    d = w.disruption
    assert d is not None
    key = "minAvailable" if d.field == "min_available" else "maxUnavailable"
    labels = d.meta.labels if d.meta.labels is not None else w.object_labels
    return obj("policy/v1", "PodDisruptionBudget", d.meta.name or w.name, w.namespace, labels,
               d.meta.annotations, spec={"selector": w.label_selector.doc(), key: d.value})
