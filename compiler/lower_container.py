"""Lower the statements of one container: image, command, env, ports, mounts, probes,
lifecycle hooks, resources and security (the main container, sidecars and init containers)."""

from __future__ import annotations

from kubeforge.compiler import values as V
from kubeforge.compiler.context import keyword
from kubeforge.compiler.ir import (Container, ContainerPort, EnvFrom, EnvVar, Hook, Mount, Probe,
                                   Resources, Security)
from kubeforge.compiler.lower_meta import MetaLowerer
from kubeforge.dsl.ast import Node, Value

PULL = ("Always", "IfNotPresent", "Never")
SECCOMP = ("RuntimeDefault", "Unconfined", "Localhost")
FS_GROUP_CHANGE = ("Always", "OnRootMismatch")
ENV_SOURCES = ("config", "secret")
ENV_KINDS = ("env", "env_ref", "env_field")
#: security statements valid only for a container, or only for the whole pod.
CONTAINER_ONLY = ("read_only_root", "privileged", "privilege_escalation", "caps_add", "caps_drop")
POD_ONLY = ("supplemental_groups", "fs_group_change")
_SOURCES = ("mount_config", "mount_secret", "mount_claim", "mount_empty", "mount_host")
_SECURITY_FIELDS = {"run_as_user": "run_as_user", "run_as_group": "run_as_group",
                    "fs_group": "fs_group", "non_root": "run_as_non_root",
                    "read_only_root": "read_only_root", "privileged": "privileged",
                    "privilege_escalation": "allow_privilege_escalation"}


class ContainerLowerer(MetaLowerer):
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
        # `mount NAME at PATH` of a claim template replaces the mount its `volume` makes.
        remounted = {str(i.values()[0].py) for i in body
                     if i.kind == "mount" and not any(isinstance(a, Node) and a.kind in _SOURCES
                                                      for a in i.args)}
        for item in body:
            if item.kind in ENV_KINDS:
                var = self.env(item)
                if var:
                    # A workload's own `env` replaces its template's (the duplicate check
                    # runs per block, see unique_env).
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
                mounts.append(self.mount(item))
            elif item.kind == "volume" and str(item.values()[0].py) not in remounted:
                claim = item.values()
                mounts.append(Mount(str(claim[0].py), "template", str(claim[0].py),
                                    str(claim[2].py), span=item.span))
            elif item.kind == "probe":
                for probe in self.probes(item):
                    probes[probe.kind] = probe
        self._unique_mount_paths(mounts)
        hooks = self.hooks(last.get("lifecycle"))
        if hooks and stmt.kind == "init":
            self.error("E116", "init containers cannot have lifecycle hooks", last["lifecycle"].span,
                       "they run to completion before the pod starts; move the work into `command`")
        return Container(
            name=self.name_value(name, stmt, body),
            image=image,
            command=self.words(last.get("command") or last.get("command_file")),
            args=self.words(last.get("args") or last.get("args_file")),
            env=tuple(env),
            env_from=tuple(env_from),
            ports=tuple(ports),
            resources=self.resources(last.get("resources")),
            probes=tuple(probes[k] for k in ("liveness", "readiness", "startup") if k in probes),
            mounts=tuple(mounts),
            security=self.security(last.get("security"), pod=False),
            pull_policy=self.choice(last["pull_policy"].value(), PULL, "pull policy")
            if "pull_policy" in last else None,
            working_dir=str(last["working_dir"].value().py) if "working_dir" in last else None,
            span=stmt.span,
            hooks=hooks,
        )

    def name_value(self, name: str, stmt: Node, body: tuple[Node, ...]) -> str:
        if stmt.kind in ("sidecar", "init"):
            return self.name(stmt.value(), "container")
        named = [s for s in body if s.kind == "container_name"]
        return self.name(named[-1].value(), "container") if named else name

    def words(self, stmt: Node | None) -> tuple[str, ...]:
        """`command`/`args` words; `from file "x"` adds the file's text as the last word."""
        if stmt is None:
            return ()
        words = [str(v.py) for v in stmt.values()]
        source = stmt.clause("from_file")
        if source is not None:
            text = self.read_file(source.value())
            words.append(text if text is not None else "")
        return tuple(words)

    def unique_env(self, body: tuple[Node, ...], where: str) -> None:
        """One block (a template, a workload, a sidecar) sets each variable once."""
        seen: dict[str, Node] = {}
        for item in body:
            if item.kind not in ENV_KINDS:
                continue
            name = str(item.values()[0].py)
            if name in seen:
                self.error("E100", f"env `{name}` is set twice in {where}", item.span,
                           f"the first one is at line {seen[name].span.line}; Kubernetes "
                           "would silently keep only one")
            else:
                seen[name] = item

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
            protocol = proto_of(proto_clause)
        if number is None:
            return None
        return ContainerPort(number, name, protocol, item.span)

    # -- mounts ----------------------------------------------------------------------------
    def mount(self, item: Node) -> Mount:
        vals = item.values()
        name = self.name(vals[0], "volume")
        source = next((a for a in item.args if isinstance(a, Node) and a.kind in _SOURCES), None)
        kind, ref, size = "named", None, None
        if source is not None:
            kind = source.kind.removeprefix("mount_")
            if kind in ("config", "secret", "claim"):
                ref = str(source.value().py)
            elif kind == "host":
                ref = str(source.value().py)
                if not ref.startswith("/"):
                    self.error("E105", f"host path `{ref}` is not absolute", source.value().span)
            elif kind == "empty" and source.values():
                size = self.read(V.quantity, source.value())
        path_v = next(v for v in vals if v.kind == "STRING")
        path = str(path_v.py)
        if not path.startswith("/"):
            self.error("E105", f"mount path `{path}` is not absolute", path_v.span)
        sub = self._sub_path(item.clause("mount_subpath"))
        sub_expr = self._sub_path(item.clause("mount_subpath_expr"))
        if sub is not None and sub_expr is not None:
            self.error("E105", "a mount takes `subpath` or `subpath_expr`, not both", item.span)
        return Mount(name, kind, ref, path, item.clause("mount_readonly") is not None, size,
                     item.span, sub, sub_expr, named_only=source is None)

    def _sub_path(self, clause: Node | None) -> str | None:
        if clause is None:
            return None
        value = clause.value()
        text = str(value.py)
        if not text or text.startswith("/") or ".." in text.split("/"):
            self.error("E105", f"`{text}` is not a relative path inside the volume", value.span,
                       'e.g. `subpath "pgdata"` (no leading /, no ..)')
        return text

    def _unique_mount_paths(self, mounts: list[Mount]) -> None:
        seen: dict[str, Mount] = {}
        for m in mounts:
            if m.path in seen:
                self.error("E100", f"two mounts at `{m.path}` in one container", m.span,
                           f"the first one is at line {seen[m.path].span.line}")
            seen.setdefault(m.path, m)

    # -- resources, probes, hooks ------------------------------------------------------------
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
            path = self._http_path(vals[0])
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

    def _http_path(self, value: Value) -> str:
        path = str(value.py)
        if not path.startswith("/"):
            self.error("E108", f"path `{path}` must start with /", value.span)
        return path

    def _portref(self, value) -> int | str | None:
        if value.kind == "INT":
            return self.read(V.port_number, value, "E107")
        return str(value.py)

    def hooks(self, stmt: Node | None) -> tuple[Hook, ...]:
        if stmt is None:
            return ()
        body = stmt.body or ()
        self.unique_stmts(body, "a lifecycle block")
        out = []
        for item in body:
            event = "preStop" if item.kind == "pre_stop" else "postStart"
            action = item.first_clause()
            assert action is not None
            vals = action.values()
            if action.kind == "probe_http":
                out.append(Hook(event, "http", path=self._http_path(vals[0]),
                                port=self._portref(vals[1]), span=item.span))
            elif action.kind == "probe_exec":
                out.append(Hook(event, "exec", command=tuple(str(v.py) for v in vals),
                                span=item.span))
            else:
                seconds = self.read(V.duration_seconds, vals[0], "E106")
                if seconds is not None and seconds < 1:
                    self.error("E105", "a lifecycle sleep must be at least 1s", vals[0].span)
                out.append(Hook(event, "sleep", seconds=seconds, span=item.span))
        return tuple(sorted(out, key=lambda h: h.event != "postStart"))

    # -- security --------------------------------------------------------------------------
    def security(self, stmt: Node | None, *, pod: bool) -> Security | None:
        if stmt is None:
            return None
        body = stmt.body or ()
        self.unique_stmts(body, "a security block")
        fields: dict = {}
        for item in body:
            if pod and item.kind in CONTAINER_ONLY:
                self.error("E116", f"`{keyword(item)}` is set per container, not in pod_security",
                           item.span, "write it in the container's `security { ... }` block")
                continue
            if not pod and item.kind in POD_ONLY:
                self.error("E116", f"`{keyword(item)}` is a pod setting", item.span,
                           "write it in `pod_security { ... }`")
                continue
            if item.kind in _SECURITY_FIELDS:
                fields[_SECURITY_FIELDS[item.kind]] = item.value().py
            elif item.kind in ("caps_add", "caps_drop"):
                fields[item.kind] = tuple(str(v.py).upper() for v in item.values())
            elif item.kind == "seccomp":
                fields["seccomp"] = self.choice(item.value(), SECCOMP, "seccomp profile")
            elif item.kind == "supplemental_groups":
                fields["supplemental_groups"] = tuple(int(v.text) for v in item.values())
            elif item.kind == "fs_group_change":
                fields["fs_group_change"] = self.choice(item.value(), FS_GROUP_CHANGE,
                                                        "fs_group_change policy")
        if fields.get("privileged") and fields.get("allow_privilege_escalation") is False:
            self.error("E105", "a privileged container always allows privilege escalation", stmt.span)
        if fields.get("run_as_non_root") and fields.get("run_as_user") == 0:
            self.error("E105", "run_as_non_root contradicts run_as_user 0", stmt.span)
        return Security(**fields)


def proto_of(clause: Node) -> str:
    # `!port_proto` keeps its keyword token as the clause's only value.
    return str(clause.value().py).upper()
