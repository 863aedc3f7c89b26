"""Lower workload statements (deployment, statefulset, daemonset, job, cronjob) to the IR.

Templates are resolved before this pass: a workload's effective body is its template chain's
statements followed by its own, and every singleton setting is "last one wins", so a workload
overrides what its template says while lists (env, ports, mounts) accumulate.
"""

from __future__ import annotations

import dataclasses

from kubeforge.compiler import values as V
from kubeforge.compiler.context import Lowerer, keyword
from kubeforge.compiler.ir import (Autoscale, ClaimTemplate, Container, ContainerPort,
                                   Disruption, EnvFrom, EnvVar, Mount, Probe, Resources, Rollout,
                                   Security, Toleration, Workload)
from kubeforge.dsl.ast import Node

KINDS = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "job": "Job",
    "cronjob": "CronJob",
}

_POD = {"container_name", "image", "command", "args", "working_dir", "env", "env_ref", "env_field", "env_from",
        "port", "named_port", "resources", "probe", "mount", "labels", "annotations",
        "node_selector", "toleration", "spread", "security", "service_account",
        "automount_token", "pull_policy", "sidecar", "init", "grace"}
_JOB = {"completions", "parallelism", "backoff_limit", "ttl_after", "restart"}
ALLOWED = {
    "Deployment": _POD | {"replicas", "rollout", "autoscale", "selector", "disruption"},
    "StatefulSet": _POD | {"replicas", "rollout", "autoscale", "selector", "disruption", "volume"},
    "DaemonSet": _POD | {"rollout", "selector"},
    "Job": _POD | _JOB,
    "CronJob": _POD | _JOB | {"schedule", "concurrency", "history"},
}
STRATEGIES = {
    "Deployment": ("RollingUpdate", "Recreate"),
    "StatefulSet": ("RollingUpdate", "OnDelete"),
    "DaemonSet": ("RollingUpdate", "OnDelete"),
}
PULL = ("Always", "IfNotPresent", "Never")
RESTART = ("OnFailure", "Never")
CONCURRENCY = ("Allow", "Forbid", "Replace")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SPREAD = ("hard", "soft")
METRICS = ("cpu", "memory")
ACCESS = {"ReadWriteOnce": "ReadWriteOnce", "ReadOnlyMany": "ReadOnlyMany",
          "ReadWriteMany": "ReadWriteMany", "ReadWriteOncePod": "ReadWriteOncePod"}
ACCESS_ALIASES = {"rwo": "ReadWriteOnce", "rox": "ReadOnlyMany", "rwx": "ReadWriteMany",
                  "rwop": "ReadWriteOncePod", "RWO": "ReadWriteOnce", "ROX": "ReadOnlyMany",
                  "RWX": "ReadWriteMany", "RWOP": "ReadWriteOncePod"}
SECCOMP = ("RuntimeDefault", "Unconfined", "Localhost")
ENV_SOURCES = ("config", "secret")


class WorkloadLowerer(Lowerer):
    def lower(self, stmt: Node, namespace: str, body: tuple[Node, ...]) -> Workload | None:
        kind = KINDS[stmt.kind]
        name = self.name(stmt.value(0), kind)
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
        last = {item.kind: item for item in body}

        main = self.container(name, body, stmt)
        sidecars = [self.container(str(s.value().py), tuple(s.body or ()), s)
                    for s in body if s.kind == "sidecar"]
        inits = [self.container(str(s.value().py), tuple(s.body or ()), s)
                 for s in body if s.kind == "init"]
        if main is None:
            return None

        labels = dict(self.merged_kv((s for s in body if s.kind == "labels"), labels=True))
        pod_labels = {"app": name, **labels}
        selector = dict(self.kv(last["selector"], labels=True)) if "selector" in last else dict(pod_labels)
        replicas = int(last["replicas"].value().text) if "replicas" in last else None
        claims = tuple(self.claim(s) for s in body if s.kind == "volume")
        workload = Workload(
            kind=kind, name=name, namespace=namespace, span=stmt.span,
            containers=tuple(c for c in (main, *sidecars) if c is not None),
            init_containers=tuple(c for c in inits if c is not None),
            replicas=replicas,
            labels=tuple(pod_labels.items()),
            annotations=self.merged_kv(s for s in body if s.kind == "annotations"),
            selector=tuple(selector.items()),
            rollout=self.rollout(last.get("rollout"), kind),
            autoscale=self.autoscale(last.get("autoscale")),
            claims=tuple(c for c in claims if c),
            node_selector=self.merged_kv((s for s in body if s.kind == "node_selector"), labels=True),
            tolerations=tuple(t for t in (self.toleration(s) for s in body if s.kind == "toleration") if t),
            spread=self.choice(last["spread"].value(), SPREAD, "spread mode") if "spread" in last else None,
            spread_key=str(last["spread"].clause("spread_key").value().py)
            if "spread" in last and last["spread"].clause("spread_key") else "kubernetes.io/hostname",
            service_account=str(last["service_account"].value().py) if "service_account" in last else None,
            automount_token=last["automount_token"].value().py if "automount_token" in last else None,
            restart=self.choice(last["restart"].value(), RESTART, "restart policy") if "restart" in last else None,
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
        )
        if kind == "CronJob" and workload.schedule is None:
            self.error("E115", f"cronjob `{name}` needs a schedule", stmt.span,
                       'add e.g. `schedule "*/15 * * * *"`')
        if kind == "CronJob" and "history" in last:
            workload = dataclasses.replace(workload, rollout=Rollout(history=self._int(last["history"])))
        return workload

    # -- containers -----------------------------------------------------------------------
    def container(self, name: str, body: tuple[Node, ...], stmt: Node) -> Container | None:
        last = {item.kind: item for item in body}
        if "image" not in last:
            self.error("E115", f"`{name}` needs an image", stmt.span,
                       'add e.g. `image "docker.io/nginx:1.27"`')
            return None
        image = str(last["image"].value().py)
        if not image or any(ch.isspace() for ch in image):
            self.error("E105", f"`{image}` is not a container image reference", last["image"].value().span)
        env: list[EnvVar] = []
        env_from: list[EnvFrom] = []
        ports: list[ContainerPort] = []
        mounts: list[Mount] = []
        probes: dict[str, Probe] = {}
        for item in body:
            if item.kind in ("env", "env_ref", "env_field"):
                var = self.env(item)
                if var:
                    env = [e for e in env if e.name != var.name] + [var]
            elif item.kind == "env_from":
                src = self.choice(item.values()[0], ENV_SOURCES, "env source")
                if src:
                    env_from.append(EnvFrom(src, str(item.values()[1].py), item.span))
            elif item.kind in ("port", "named_port"):
                port = self.port(item)
                if port:
                    ports.append(port)
            elif item.kind == "mount":
                mount = self.mount(item)
                if mount:
                    mounts.append(mount)
            elif item.kind == "volume":
                claim = item.values()
                mounts.append(Mount(str(claim[0].py), "template", str(claim[0].py),
                                    str(claim[2].py), span=item.span))
            elif item.kind == "probe":
                for probe in self.probes(item):
                    probes[probe.kind] = probe
        return Container(
            name=self.name_value(name, stmt, body),
            image=image,
            command=tuple(str(v.py) for v in last["command"].values()) if "command" in last else (),
            args=tuple(str(v.py) for v in last["args"].values()) if "args" in last else (),
            env=tuple(env),
            env_from=tuple(env_from),
            ports=tuple(ports),
            resources=self.resources(last.get("resources")),
            probes=tuple(probes[k] for k in ("liveness", "readiness", "startup") if k in probes),
            mounts=tuple(mounts),
            security=self.security(last.get("security")),
            pull_policy=self.choice(last["pull_policy"].value(), PULL, "pull policy")
            if "pull_policy" in last else None,
            working_dir=str(last["working_dir"].value().py) if "working_dir" in last else None,
            span=stmt.span,
        )

    def name_value(self, name: str, stmt: Node, body: tuple[Node, ...]) -> str:
        if stmt.kind in ("sidecar", "init"):
            return self.name(stmt.value(), "container")
        named = [s for s in body if s.kind == "container_name"]
        return self.name(named[-1].value(), "container") if named else name

    def env(self, item: Node) -> EnvVar | None:
        vals = item.values()
        name_v = vals[0]
        name = str(name_v.py)
        if not V.is_env_name(name):
            self.error("E105", f"`{name}` is not a valid environment variable name", name_v.span)
        if item.kind == "env":
            return EnvVar(name, value=V.text(vals[1]), span=item.span)
        if item.kind == "env_field":
            return EnvVar(name, ref_kind="field", ref_key=str(vals[1].py), span=item.span)
        src = self.choice(vals[1], ENV_SOURCES, "env source")
        if src is None:
            return None
        return EnvVar(name, ref_kind=src, ref_name=str(vals[2].py), ref_key=str(vals[3].py),
                      span=item.span)

    def port(self, item: Node) -> ContainerPort | None:
        vals = item.values()
        name = None
        if item.kind == "named_port":
            name = str(vals[0].py)
            if not V.is_port_name(name):
                self.error("E107", f"`{name}` is not a valid port name", vals[0].span,
                           "port names are at most 15 lower-case letters, digits and '-'")
            number_v = vals[1]
        else:
            number_v = vals[0]
        number = self.read(V.port_number, number_v, "E107")
        proto_clause = item.clause("port_proto")
        protocol = "TCP"
        if proto_clause is not None:
            protocol = _proto_of(proto_clause)
        if number is None:
            return None
        return ContainerPort(number, name, protocol, item.span)

    def mount(self, item: Node) -> Mount | None:
        vals = item.values()
        name = self.name(vals[0], "volume")
        source = item.first_clause()
        assert source is not None
        kind = source.kind.removeprefix("mount_")
        ref = None
        size = None
        if kind in ("config", "secret", "claim"):
            ref = str(source.value().py)
        elif kind == "host":
            ref = str(source.value().py)
            if not ref.startswith("/"):
                self.error("E105", f"host path `{ref}` is not absolute", source.value().span)
        elif kind == "empty" and source.values():
            size = self.read(V.quantity, source.value())
        path = str(vals[-1].py)
        if not path.startswith("/"):
            self.error("E105", f"mount path `{path}` is not absolute", vals[-1].span)
        return Mount(name, kind, ref, path, item.clause("mount_readonly") is not None, size, item.span)

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

    def resources(self, stmt: Node | None) -> Resources:
        if stmt is None:
            return Resources()
        requests = self._resource_block(stmt.body or ())
        limits_stmt = next((s for s in stmt.body or () if s.kind == "res_limits"), None)
        limits = self._resource_block(limits_stmt.body or ()) if limits_stmt else {}
        return Resources(requests.get("cpu"), requests.get("memory"), requests.get("ephemeral"),
                         limits.get("cpu"), limits.get("memory"), limits.get("ephemeral"))

    def _resource_block(self, body) -> dict[str, str]:
        self.unique_stmts(body, "a resources block")
        out = {}
        for item in body:
            if item.kind == "res_limits":
                continue
            value = item.value()
            q = self.read(V.quantity, value)
            if q is None:
                continue
            key = {"res_cpu": "cpu", "res_memory": "memory", "res_storage": "ephemeral"}[item.kind]
            if key == "memory" and q.endswith("m"):
                self.error("E105", f"`{q}` is millibytes of memory", value.span,
                           f"did you mean `{q[:-1]}Mi`?")
            if V.quantity_bytes(q) <= 0:
                self.error("E105", f"{key} must be more than zero", value.span)
            out[key] = q
        return out

    def probes(self, item: Node) -> list[Probe]:
        kind_clause = item.clause("probe_kind")
        assert kind_clause is not None
        word = str(kind_clause.value().py)
        kinds = ("liveness", "readiness") if word == "probe" else (word,)
        check = next(a for a in item.args if isinstance(a, Node) and a.kind.startswith("probe_")
                     and a.kind != "probe_kind")
        path = port = None
        command: tuple[str, ...] = ()
        check_kind = check.kind.removeprefix("probe_")
        vals = check.values()
        if check_kind == "http":
            path = str(vals[0].py)
            if not path.startswith("/"):
                self.error("E108", f"probe path `{path}` must start with /", vals[0].span)
            port = self._portref(vals[1])
        elif check_kind in ("tcp", "grpc"):
            port = self._portref(vals[0])
        else:
            command = tuple(str(v.py) for v in vals)
        timing = {}
        body = item.body or ()
        self.unique_stmts(body, "a probe block")
        for opt in body:
            if opt.kind in ("probe_failure", "probe_success"):
                number = int(opt.value().text)
                if number < 1:
                    self.error("E108", f"`{keyword(opt)}` must be at least 1", opt.value().span)
                timing[opt.kind] = number
            else:
                seconds = self.read(V.duration_seconds, opt.value(), "E106")
                if seconds is not None and opt.kind != "probe_delay" and seconds < 1:
                    self.error("E108", f"`{keyword(opt)}` must be at least 1s", opt.value().span)
                timing[opt.kind] = seconds
        if "probe_success" in timing and timing["probe_success"] != 1 and "readiness" not in kinds:
            self.error("E108", "liveness and startup probes need `successes 1`", item.span)
        return [Probe(k, check_kind, path, port, command, timing.get("probe_delay"),
                      timing.get("probe_period"), timing.get("probe_timeout"),
                      timing.get("probe_failure"),
                      timing.get("probe_success") if k == "readiness" else None, item.span)
                for k in kinds]

    def _portref(self, value) -> int | str | None:
        if value.kind == "INT":
            return self.read(V.port_number, value, "E107")
        return str(value.py)

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
        return Autoscale(low, high, tuple(metrics), stmt.span)

    def toleration(self, item: Node) -> Toleration | None:
        key = str(item.values()[0].py)
        value_clause = item.clause("toleration_value")
        effect_clause = item.clause("toleration_effect")
        effect = None
        if effect_clause is not None:
            effect = self.choice(effect_clause.value(), EFFECTS, "taint effect")
        return Toleration(key, str(value_clause.value().py) if value_clause else None, effect)

    def security(self, stmt: Node | None) -> Security | None:
        if stmt is None:
            return None
        body = stmt.body or ()
        self.unique_stmts(body, "a security block")
        fields: dict = {}
        names = {"run_as_user": "run_as_user", "run_as_group": "run_as_group", "fs_group": "fs_group",
                 "non_root": "run_as_non_root", "read_only_root": "read_only_root",
                 "privileged": "privileged", "privilege_escalation": "allow_privilege_escalation"}
        for item in body:
            if item.kind in names:
                fields[names[item.kind]] = item.value().py
            elif item.kind in ("caps_add", "caps_drop"):
                caps = tuple(str(v.py).upper() for v in item.values())
                fields[item.kind] = caps
            elif item.kind == "seccomp":
                fields["seccomp"] = self.choice(item.value(), SECCOMP, "seccomp profile")
        if fields.get("privileged") and fields.get("allow_privilege_escalation") is False:
            self.error("E105", "a privileged container always allows privilege escalation", stmt.span)
        if fields.get("run_as_non_root") and fields.get("run_as_user") == 0:
            self.error("E105", "run_as_non_root contradicts run_as_user 0", stmt.span)
        return Security(**fields)

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
        return Disruption(field, value, stmt.span)

    def _int(self, stmt: Node | None) -> int | None:
        return int(stmt.value().text) if stmt is not None else None


def _proto_of(clause: Node) -> str:
    # `!port_proto` keeps its keyword token as the clause's only value.
    return str(clause.value().py).upper()
