"""Shared helpers of the lowering passes: diagnostics with spans, enum and value readers."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, TypeVar

from kubeforge.compiler import values as V
from kubeforge.dsl.ast import Node, Value
from kubeforge.dsl.diagnostics import Collector, Span, did_you_mean

T = TypeVar("T")

#: Statements that may appear more than once in one block; all others are singletons.
REPEATABLE = frozenset({
    "env", "env_ref", "env_field", "env_from", "port", "named_port", "mount", "volume",
    "toleration", "sidecar", "init", "probe", "entry", "entry_file", "secret_entry", "node",
    "taint", "route", "ingress_tls", "np_allow", "np_deny", "rule", "url_rule", "bind",
    "san", "labels", "annotations", "member_of", "affinity", "anti_affinity", "topology_spread",
    "patch", "patch_file", "addon", "pod_labels", "pod_annotations", "object_labels", "object_annotations",
})


class Lowerer:
    """Base of the lowering passes: every problem goes to one collector."""

    def __init__(self, diags: Collector, base_dir: Path):
        self.diags = diags
        self.base_dir = base_dir

    # -- diagnostics ---------------------------------------------------------------------
    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diags.error(code, message, span, hint)

    def warn(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diags.warning(code, message, span, hint)

    # -- readers -------------------------------------------------------------------------
    def read(self, fn: Callable[[Value], T], value: Value, code: str = "E105") -> T | None:
        """Apply a literal reader, turning its ValueProblem into a diagnostic."""
        try:
            return fn(value)
        except V.ValueProblem as problem:
            self.error(code, str(problem), value.span, problem.hint)
            return None

    def choice(self, value: Value, choices: Iterable[str], what: str,
               aliases: dict[str, str] | None = None) -> str | None:
        """An enumeration value; unknown words get a did-you-mean."""
        word = str(value.py)
        aliases = aliases or {}
        options = list(choices)
        if word in options:
            return word
        if word in aliases:
            return aliases[word]
        lowered = {o.lower(): o for o in options}
        if word.lower() in lowered:
            return lowered[word.lower()]
        hint = did_you_mean(word, [*options, *aliases]) or "choose one of: " + ", ".join(options)
        self.error("E104", f"unknown {what} `{word}`", value.span, hint)
        return None

    def name(self, value: Value, what: str, subdomain: bool = False) -> str:
        """A Kubernetes object name; reported (but still returned) when not DNS-1123."""
        text = str(value.py)
        ok = V.is_dns_subdomain(text) if subdomain else V.is_dns_label(text)
        if not ok:
            self.error("E103", f"{what} name `{text}` is not a valid DNS-1123 "
                       f"{'subdomain' if subdomain else 'label'}", value.span, V.dns_hint(text))
        return text

    def unique_stmts(self, body: Iterable[Node], where: str) -> None:
        """Report singleton statements given twice in one block."""
        seen: dict[str, Node] = {}
        for stmt in body:
            if stmt.kind in REPEATABLE:
                continue
            if stmt.kind in seen:
                first = seen[stmt.kind].span
                self.error("E101", f"`{keyword(stmt)}` is given twice in {where}", stmt.span,
                           f"the first one is at line {first.line}")
            else:
                seen[stmt.kind] = stmt

    def kv(self, node: Node | None, labels: bool = False) -> tuple[tuple[str, str], ...]:
        """Key/value pairs of a `{ k = v ... }` body, in order, later keys replacing earlier."""
        out: dict[str, str] = {}
        for entry in (node.body or ()) if node else ():
            key_v, val_v = entry.values()[0], entry.values()[1]
            key, val = str(key_v.py), V.text(val_v)
            if labels:
                problem = V.label_key_problem(key)
                if problem:
                    self.error("E105", problem, key_v.span)
                problem = V.label_value_problem(val)
                if problem:
                    self.error("E105", problem, val_v.span)
            out[key] = val
        return tuple(out.items())

    def merged_kv(self, stmts: Iterable[Node], labels: bool = False) -> tuple[tuple[str, str], ...]:
        out: dict[str, str] = {}
        for stmt in stmts:
            out.update(self.kv(stmt, labels))
        return tuple(out.items())

    def path(self, value: Value) -> Path:
        p = Path(str(value.py))
        if not p.is_absolute():
            p = Path(value.span.file).parent / p
        return p


def keyword(stmt: Node) -> str:
    """The keyword a statement starts with, for messages."""
    return {
        "named_port": "port", "env_ref": "env", "env_field": "env", "env_from": "env from",
        "pods_cidr": "pods", "services_cidr": "services", "nodes_cidr": "nodes",
        "nodes_from": "nodes from", "node_role": "role", "node_cpus": "cpus",
        "node_memory": "memory", "node_user": "user", "lb_port": "port", "lb_mode": "as",
        "lb_image": "image", "res_cpu": "cpu", "res_memory": "memory", "res_storage": "ephemeral",
        "res_limits": "limits", "working_dir": "workdir", "ttl_after": "ttl_after_finished",
        "pull_policy": "pull", "backoff_limit": "backoff_limit", "member_of": "groups",
        "ingress_class": "class", "ingress_tls": "tls", "np_pods": "pods", "np_allow": "allow",
        "np_deny": "deny", "is_default": "default", "service_block": "service",
        "svc_type": "type", "node_selector": "node_selector", "session_affinity": "session_affinity",
        "traffic_policy": "external_traffic", "probe_delay": "delay", "probe_period": "period",
        "probe_timeout": "timeout", "probe_failure": "failures", "probe_success": "successes",
        "non_root": "run_as_non_root", "read_only_root": "read_only_root",
        "privilege_escalation": "allow_privilege_escalation", "caps_add": "add_caps",
        "caps_drop": "drop_caps", "toleration": "tolerate", "min_ready": "min_ready", "container_name": "container",
        "backup_keep": "keep", "backup_dir": "dir", "addon_path": "path",
        "addon_version": "version",
    }.get(stmt.kind, stmt.kind)
