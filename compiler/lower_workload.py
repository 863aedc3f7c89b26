"""Lower workload statements (deployment, statefulset, daemonset, job, cronjob, pod) to the IR.

Templates are resolved before this pass: a workload's effective body is its template chain's
statements followed by its own, and every singleton setting is "last one wins", so a workload
overrides what its template says while lists (env, ports, mounts) accumulate. Containers are
lowered by :mod:`lower_container`, placement by :mod:`lower_placement`.
"""

from __future__ import annotations

import dataclasses

from kubeforge.compiler import values as V
from kubeforge.compiler.context import keyword
from kubeforge.compiler.ir import (Autoscale, ClaimTemplate, Container, Disruption, Mount,
                                   Rollout, Workload)
from kubeforge.compiler.lower_container import ContainerLowerer
from kubeforge.compiler.lower_placement import PlacementLowerer
from kubeforge.dsl.ast import Node

KINDS = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "job": "Job",
    "cronjob": "CronJob",
    "pod": "Pod",
}

_POD = {"container_name", "image", "command", "command_file", "args", "args_file", "working_dir",
        "env", "env_ref", "env_field", "env_from", "port", "named_port", "resources", "probe",
        "mount", "labels", "annotations", "node_selector", "toleration", "spread", "security",
        "service_account", "automount_token", "pull_policy", "sidecar", "init", "grace",
        "lifecycle", "affinity", "anti_affinity", "topology_spread", "pod_security",
        "pod_labels", "pod_annotations", "object_labels", "object_annotations", "app_label",
        "patch", "patch_file"}
_JOB = {"completions", "parallelism", "backoff_limit", "ttl_after", "restart"}
ALLOWED = {
    "Deployment": _POD | {"replicas", "rollout", "autoscale", "selector", "disruption"},
    "StatefulSet": _POD | {"replicas", "rollout", "autoscale", "selector", "disruption", "volume",
                           "pod_management"},
    "DaemonSet": _POD | {"rollout", "selector"},
    "Job": _POD | _JOB,
    "CronJob": _POD | _JOB | {"schedule", "concurrency", "history"},
    "Pod": _POD | {"restart"},
}
STRATEGIES = {
    "Deployment": ("RollingUpdate", "Recreate"),
    "StatefulSet": ("RollingUpdate", "OnDelete"),
    "DaemonSet": ("RollingUpdate", "OnDelete"),
}
RESTART = {"Pod": ("Always", "OnFailure", "Never")}
CONCURRENCY = ("Allow", "Forbid", "Replace")
SPREAD = ("hard", "soft")
METRICS = ("cpu", "memory")
POD_MANAGEMENT = ("OrderedReady", "Parallel")
ACCESS = {"ReadWriteOnce": "ReadWriteOnce", "ReadOnlyMany": "ReadOnlyMany",
          "ReadWriteMany": "ReadWriteMany", "ReadWriteOncePod": "ReadWriteOncePod"}
ACCESS_ALIASES = {"rwo": "ReadWriteOnce", "rox": "ReadOnlyMany", "rwx": "ReadWriteMany",
                  "rwop": "ReadWriteOncePod", "RWO": "ReadWriteOnce", "ROX": "ReadOnlyMany",
                  "RWX": "ReadWriteMany", "RWOP": "ReadWriteOncePod"}
DEFAULT_APP_LABEL = "app"


class WorkloadLowerer(ContainerLowerer, PlacementLowerer):
    def lower(self, stmt: Node, namespace: str, bodies: list[tuple[Node, ...]]) -> Workload | None:
        """``bodies``: the template chain's blocks, outermost first, then the workload's own."""
        kind = KINDS[stmt.kind]
        name = self.name(stmt.value(0), kind)
        body = tuple(s for b in bodies for s in b)
        allowed = ALLOWED[kind]
        for item in body:
            if item.kind not in allowed:
                hint = None
                if item.kind == "volume":
                    hint = "persistent volumes per replica need a statefulset; " \
                           "otherwise declare a `pvc` and `mount NAME claim PVC at PATH`"
                elif item.kind == "replicas" and kind == "DaemonSet":
                    hint = "a daemonset runs one pod per node"
                self.error("E116", f"`{keyword(item)}` is not valid in a {stmt.kind}", item.span, hint)
        for block in bodies:
            self.unique_env(block, f"`{name}`")
        last = {item.kind: item for item in body}

        main = self.container(name, body, stmt)
        sidecars, inits = [], []
        for s in body:
            if s.kind in ("sidecar", "init"):
                self.unique_env(tuple(s.body or ()), f"`{s.value().py}`")
                c = self.container(str(s.value().py), tuple(s.body or ()), s)
                (sidecars if s.kind == "sidecar" else inits).append(c)
        if main is None:
            return None
        claims = tuple(c for c in (self.claim(s) for s in body if s.kind == "volume") if c)
        containers = tuple(c for c in (main, *sidecars) if c is not None)
        init_containers = tuple(c for c in inits if c is not None)
        containers, init_containers = self._resolve_volumes(containers, init_containers, claims)

        pod_labels, object_labels = self._labels(name, body, last)
        if "selector" in last:
            sel = self.selector(last["selector"])
            selector, expressions = dict(sel.match_labels), sel.expressions
        else:
            selector, expressions = dict(pod_labels), ()
        if not selector and not expressions:
            self.error("E115", f"`{name}` selects no pods", stmt.span,
                       "with `app_label none` give `labels { ... }` or a `selector`")
        annotations = self.merged_kv(s for s in body if s.kind == "annotations")
        pod_annotations = {**dict(annotations),
                           **dict(self.merged_kv(s for s in body if s.kind == "pod_annotations"))}
        object_annotations = {**dict(annotations), **dict(
            self.merged_kv(s for s in body if s.kind == "object_annotations"))}
        replicas = int(last["replicas"].value().text) if "replicas" in last else None
        workload = Workload(
            kind=kind, name=name, namespace=namespace, span=stmt.span,
            containers=containers,
            init_containers=init_containers,
            replicas=replicas,
            labels=tuple(pod_labels.items()),
            annotations=tuple(pod_annotations.items()),
            selector=tuple(selector.items()),
            selector_expressions=tuple(expressions),
            object_labels=tuple(object_labels.items()),
            object_annotations=tuple(object_annotations.items()),
            rollout=self.rollout(last.get("rollout"), kind),
            autoscale=self.autoscale(last.get("autoscale")),
            claims=claims,
            node_selector=self.merged_kv((s for s in body if s.kind == "node_selector"), labels=True),
            tolerations=tuple(t for t in (self.toleration(s) for s in body if s.kind == "toleration") if t),
            spread=self.choice(last["spread"].value(), SPREAD, "spread mode") if "spread" in last else None,
            spread_key=str(last["spread"].clause("spread_key").value().py)
            if "spread" in last and last["spread"].clause("spread_key") else "kubernetes.io/hostname",
            service_account=str(last["service_account"].value().py) if "service_account" in last else None,
            automount_token=last["automount_token"].value().py if "automount_token" in last else None,
            restart=self.choice(last["restart"].value(), RESTART.get(kind, ("OnFailure", "Never")),
                                "restart policy") if "restart" in last else None,
            completions=self._int(last.get("completions")),
            parallelism=self._int(last.get("parallelism")),
            backoff_limit=self._int(last.get("backoff_limit")),
            ttl_after_finished=self.read(V.duration_seconds, last["ttl_after"].value(), "E106")
            if "ttl_after" in last else None,
            schedule=self.schedule(last.get("schedule")),
            concurrency=self.choice(last["concurrency"].value(), CONCURRENCY, "concurrency policy")
            if "concurrency" in last else None,
            disruption=self.disruption(last.get("disruption")),
            grace_seconds=self.read(V.duration_seconds, last["grace"].value(), "E106")
            if "grace" in last else None,
            affinities=tuple(self.affinity(s) for s in body
                             if s.kind in ("affinity", "anti_affinity")),
            spreads=tuple(self.topology_spread(s) for s in body if s.kind == "topology_spread"),
            pod_security=self._pod_security(last.get("pod_security"), containers, init_containers),
            pod_management=self.choice(last["pod_management"].value(), POD_MANAGEMENT,
                                       "pod management policy")
            if "pod_management" in last else None,
            patches=self.patches(body),
        )
        if kind == "CronJob" and workload.schedule is None:
            self.error("E115", f"cronjob `{name}` needs a schedule", stmt.span,
                       'add e.g. `schedule "*/15 * * * *"`')
        if kind == "CronJob" and "history" in last:
            workload = dataclasses.replace(workload, rollout=Rollout(history=self._int(last["history"])))
        return workload

    # -- labels ----------------------------------------------------------------------------
    def _labels(self, name: str, body: tuple[Node, ...], last: dict) -> tuple[dict, dict]:
        """(pod labels, object labels): the implicit app label, then `labels`, then
        `pod_labels` or `object_labels`."""
        implicit: dict[str, str] = {DEFAULT_APP_LABEL: name}
        if "app_label" in last:
            value = last["app_label"].value()
            key = str(value.py)
            if value.kind == "NAME" and key == "none":
                implicit = {}
            elif value.kind == "NAME":
                self.error("E105", f"`app_label {key}`: give a quoted label key or `none`",
                           value.span, 'e.g. `app_label "app.kubernetes.io/name"`')
            else:
                problem = V.label_key_problem(key)
                if problem:
                    self.error("E105", problem, value.span)
                implicit = {key: name}
        common = dict(self.merged_kv((s for s in body if s.kind == "labels"), labels=True))
        pods = dict(self.merged_kv((s for s in body if s.kind == "pod_labels"), labels=True))
        objects = dict(self.merged_kv((s for s in body if s.kind == "object_labels"), labels=True))
        return {**implicit, **common, **pods}, {**implicit, **common, **objects}

    # -- volumes ---------------------------------------------------------------------------
    def _resolve_volumes(self, containers: tuple[Container, ...], inits: tuple[Container, ...],
                         claims: tuple[ClaimTemplate, ...]):
        """Give `mount NAME at PATH` the source declared elsewhere in the pod, and report one
        name used for two different volumes."""
        declared: dict[str, Mount] = {}
        claim_names = {c.name: c for c in claims}
        for c in (*inits, *containers):
            for m in c.mounts:
                if m.named_only or m.source == "template":
                    continue
                if m.name in claim_names:
                    self.error("E100", f"volume `{m.name}` is also a volume claim template",
                               m.span, f"the claim template is at line "
                               f"{claim_names[m.name].span.line}; mount it with "
                               f"`mount {m.name} at \"{m.path}\"`")
                    continue
                first = declared.get(m.name)
                if first is None:
                    declared[m.name] = m
                elif first.volume_key != m.volume_key:
                    self.error("E100", f"volume `{m.name}` is declared with two different sources",
                               m.span, f"the first one is at line {first.span.line}; give the "
                               "second another name, or mount it by name only: "
                               f"`mount {m.name} at \"{m.path}\"`")

        def resolve(m: Mount) -> Mount:
            if not m.named_only:
                return m
            if m.name in claim_names:
                return dataclasses.replace(m, source="template", ref=m.name)
            source = declared.get(m.name)
            if source is None:
                from kubeforge.dsl.diagnostics import did_you_mean

                self.error("E102", f"unknown volume `{m.name}`", m.span,
                           did_you_mean(m.name, [*declared, *claim_names]) or
                           f"give its source (`mount {m.name} empty at ...`, `config C`, "
                           "`secret S`, `claim PVC`, `host \"/p\"`) or declare a `volume` "
                           "claim template")
                return dataclasses.replace(m, source="empty")
            return dataclasses.replace(m, source=source.source, ref=source.ref,
                                       size_limit=source.size_limit)

        def fix(c: Container) -> Container:
            return dataclasses.replace(c, mounts=tuple(resolve(m) for m in c.mounts))
        return tuple(fix(c) for c in containers), tuple(fix(c) for c in inits)

    def claim(self, item: Node) -> ClaimTemplate | None:
        vals = item.values()
        name = self.name(vals[0], "volume")
        size = self.read(V.quantity, vals[1])
        cls = item.clause("volume_class")
        access = item.clause("volume_access")
        mode = "ReadWriteOnce"
        if access is not None:
            mode = self.choice(access.value(), ACCESS, "access mode", ACCESS_ALIASES) or mode
        if size is None:
            return None
        return ClaimTemplate(name, size, str(vals[2].py), str(cls.value().py) if cls else None, mode,
                             item.span)

    def _pod_security(self, stmt: Node | None, containers, inits):
        """`pod_security`, plus `fs_group` written in any container's `security` (it is a
        pod setting; two containers disagreeing is an error, never a silent pick)."""
        pod = self.security(stmt, pod=True)
        groups = {c.security.fs_group: c for c in (*inits, *containers)
                  if c.security and c.security.fs_group is not None}
        if pod is not None and pod.fs_group is not None:
            for group, c in groups.items():
                if group != pod.fs_group:
                    self.error("E105", f"container `{c.name}` sets fs_group {group} but "
                               f"pod_security sets {pod.fs_group}", c.span,
                               "fs_group is one setting of the whole pod")
            return pod
        if len(groups) > 1:
            names = ", ".join(f"`{c.name}` ({g})" for g, c in groups.items())
            self.error("E105", f"containers set different fs_group values: {names}",
                       list(groups.values())[-1].span,
                       "fs_group is one setting of the whole pod: set it once in pod_security")
        if groups:
            from kubeforge.compiler.ir import Security

            base = pod or Security()
            return dataclasses.replace(base, fs_group=next(iter(groups)))
        return pod

    def rollout(self, stmt: Node | None, kind: str) -> Rollout:
        if stmt is None:
            return Rollout()
        body = stmt.body or ()
        self.unique_stmts(body, "a rollout block")
        fields: dict = {}
        for item in body:
            value = item.value()
            if item.kind == "strategy":
                fields["strategy"] = self.choice(value, STRATEGIES.get(kind, ("RollingUpdate",)),
                                                 f"{kind} update strategy")
            elif item.kind in ("max_surge", "max_unavailable"):
                fields[item.kind] = self.read(V.int_or_percent, value)
            elif item.kind in ("history", "partition"):
                fields[item.kind] = int(value.text)
            elif item.kind == "min_ready":
                fields["min_ready_seconds"] = self.read(V.duration_seconds, value, "E106")
        if "partition" in fields and kind != "StatefulSet":
            self.error("E116", "`partition` is only valid for statefulsets", stmt.span)
        if "max_surge" in fields and kind == "StatefulSet":
            self.error("E116", "`max_surge` is not valid for statefulsets", stmt.span)
        if fields.get("max_surge") in (0, "0%") and fields.get("max_unavailable") in (0, "0%"):
            self.error("E105", "max_surge and max_unavailable cannot both be 0", stmt.span,
                       "a rolling update could never make progress")
        return Rollout(**fields)

    def autoscale(self, stmt: Node | None) -> Autoscale | None:
        if stmt is None:
            return None
        range_v = stmt.values()[0]
        low, high = (int(x) for x in range_v.text.split(".."))
        if low < 1:
            self.error("E109", "autoscale minimum must be at least 1", range_v.span)
        if low > high:
            self.error("E109", f"autoscale minimum {low} is above its maximum {high}", range_v.span,
                       f"did you mean `{high}..{low}`?")
        metrics = []
        for metric in stmt.clauses("autoscale_metric"):
            m_name = self.choice(metric.values()[0], METRICS, "autoscale metric")
            pct = self.read(V.percent, metric.values()[1], "E109")
            if m_name and pct:
                metrics.append((m_name, pct))
        if not metrics:
            metrics.append(("cpu", 80))
        return Autoscale(low, high, tuple(metrics), stmt.span, self.meta(stmt.body or (), "autoscaler"))

    def schedule(self, stmt: Node | None) -> str | None:
        if stmt is None:
            return None
        text = str(stmt.value().py)
        fields = text.split()
        if not (text.startswith("@") or len(fields) == 5):
            self.error("E105", f"`{text}` is not a cron schedule", stmt.value().span,
                       'five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *"')
        return text

    def disruption(self, stmt: Node | None) -> Disruption | None:
        if stmt is None:
            return None
        field = self.choice(stmt.values()[0], ("min_available", "max_unavailable"), "disruption budget")
        value = self.read(V.int_or_percent, stmt.values()[1])
        if field is None or value is None:
            return None
        return Disruption(field, value, stmt.span, self.meta(stmt.body or (), "disruption budget"))

    def _int(self, stmt: Node | None) -> int | None:
        return int(stmt.value().text) if stmt is not None else None

