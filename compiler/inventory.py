"""Read the nodes of a cluster from an Ansible inventory, in its YAML or its INI form.

One inventory file serves kubeforge, ansible and testinfra: groups ``control_plane``,
``workers``, ``etcd`` and ``loadbalancers`` (directly under ``all`` or nested through
``children``); variables in Ansible's names, on hosts or on groups. Unknown keys are errors,
since a misspelt variable would otherwise be silently ignored.

Both forms are parsed into the same group table first, so membership and variable precedence
are decided once: a host belongs to every ancestor of a group that lists it, and its effective
variables are ``all`` vars, then each group's vars from the outermost to the innermost, then
its own (Ansible's order for a tree of groups).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GROUP_ROLES = {
    "control_plane": "control-plane",
    "workers": "worker",
    "etcd": "etcd",
    "loadbalancers": "loadbalancer",
}
HOST_VARS = {
    "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
    "ansible_become", "ansible_become_user", "ansible_python_interpreter",
    "ansible_ssh_common_args", "ansible_ssh_args", "ansible_host_key_checking",
    "kubeforge_cpus", "kubeforge_memory", "kubeforge_labels",
}
GROUP_KEYS = {"hosts", "vars", "children"}


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    roles: tuple[str, ...]
    vars: tuple[tuple[str, object], ...]  # the host's own variables
    line: int
    group_vars: tuple[tuple[str, object], ...] = ()  # inherited from its groups

    def settings(self) -> dict[str, object]:
        """Effective variables: group variables overridden by the host's own."""
        return {**dict(self.group_vars), **dict(self.vars)}


class InventoryProblem(ValueError):
    def __init__(self, message: str, line: int = 1, hint: str | None = None):
        super().__init__(message)
        self.line = line
        self.hint = hint


@dataclass
class _Group:
    line: int
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    host_lines: dict[str, int] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)


def _check_vars(values: dict[str, Any], lines: dict[str, int], where: str, line: int) -> None:
    for var in values:
        if var not in HOST_VARS:
            close = difflib.get_close_matches(str(var), sorted(HOST_VARS), n=1)
            raise InventoryProblem(f"unknown variable `{var}` for {where}", lines.get(var, line),
                                   f"did you mean `{close[0]}`?" if close else None)


# ================================================================================ YAML form


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.setdefault("__lines__", {})[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _lines(mapping: Any) -> dict:
    return mapping.get("__lines__", {}) if isinstance(mapping, dict) else {}


def _plain(mapping: Any) -> dict:
    return {k: v for k, v in mapping.items() if k != "__lines__"} if mapping else {}


def _strip(value: Any) -> Any:
    """Drop the line bookkeeping from nested values (kubeforge_labels is a mapping)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "__lines__"}
    return value


def _parse_yaml(path: Path, text: str) -> dict[str, _Group]:
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        line = exc.problem_mark.line + 1 if getattr(exc, "problem_mark", None) else 1
        raise InventoryProblem(f"inventory `{path}` is not valid YAML: {exc}", line) from None
    if not isinstance(data, dict) or "all" not in data:
        raise InventoryProblem(f"inventory `{path}` has no top-level `all` group",
                               hint="use Ansible's YAML inventory format: all: {children: ...}")
    groups: dict[str, _Group] = {}

    def walk(name: str, body: Any, line: int) -> None:
        group = groups.setdefault(name, _Group(line))
        if body is None:
            return
        if not isinstance(body, dict):
            raise InventoryProblem(f"group `{name}` must be a mapping", line)
        for key in _plain(body):
            if key not in GROUP_KEYS:
                raise InventoryProblem(f"unknown key `{key}` in group `{name}`",
                                       _lines(body).get(key, line),
                                       "groups take `hosts`, `vars` and `children`")
        gvars = body.get("vars") or {}
        _check_vars(_plain(gvars), _lines(gvars), f"group `{name}`", line)
        group.vars.update(_strip(_plain(gvars)))
        hosts = body.get("hosts") or {}
        for host, hvars in _plain(hosts).items():
            hline = _lines(hosts).get(host, line)
            hvars = hvars or {}
            if not isinstance(hvars, dict):
                raise InventoryProblem(f"host `{host}` must map to its variables", hline)
            _check_vars(_plain(hvars), _lines(hvars), f"host `{host}`", hline)
            group.hosts.setdefault(str(host), {}).update(_strip(_plain(hvars)))
            group.host_lines.setdefault(str(host), hline)
        children = body.get("children") or {}
        for child, sub in _plain(children).items():
            if child not in group.children:
                group.children.append(child)
            walk(child, sub, _lines(children).get(child, line))

    walk("all", data["all"], _lines(data).get("all", 1))
    return groups


# ================================================================================ INI form

_SECTION = re.compile(r"^\[([^\]:]+)(?::(vars|children))?\]$")


def _ini_value(raw: str) -> Any:
    """INI values are YAML scalars (numbers, booleans) or quoted strings, as in Ansible."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if value is None else value


def _ini_pairs(tokens: list[str], lineno: int) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        if not sep:
            raise InventoryProblem(f"expected key=value, found `{token}`", lineno)
        pairs[key] = _ini_value(raw)
    return pairs


def _parse_ini(text: str) -> dict[str, _Group]:
    import shlex

    groups: dict[str, _Group] = {"all": _Group(1)}
    name, kind = "all", "hosts"  # hosts before any section belong to `all` (ungrouped)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        section = _SECTION.match(line)
        if section:
            name, kind = section.group(1).strip(), section.group(2) or "hosts"
            groups.setdefault(name, _Group(lineno))
            if name != "all" and name not in groups["all"].children:
                groups["all"].children.append(name)
            continue
        group = groups[name]
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryProblem(f"cannot parse `{line}`: {exc}", lineno) from None
        if kind == "vars":
            values = _ini_pairs(tokens, lineno)
            _check_vars(values, {}, f"group `{name}`", lineno)
            group.vars.update(values)
        elif kind == "children":
            group.children.append(tokens[0])
            groups.setdefault(tokens[0], _Group(lineno))
        else:
            host, values = tokens[0], _ini_pairs(tokens[1:], lineno)
            _check_vars(values, {}, f"host `{host}`", lineno)
            group.hosts.setdefault(host, {}).update(values)
            group.host_lines.setdefault(host, lineno)
    # A group named under [x:children] is listed under `all` only through its parent.
    nested = {c for g, body in groups.items() if g != "all" for c in body.children}
    groups["all"].children = [c for c in groups["all"].children if c not in nested]
    return groups


def _is_ini(text: str) -> bool:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            return line.startswith("[")
    return False


# ================================================================================ resolution


def _resolve(groups: dict[str, _Group]) -> list[InventoryHost]:
    """Hosts with roles from every enclosing kubeforge group and vars by group depth."""
    found: dict[str, dict[str, Any]] = {}  # host -> {"roles", "line", "layers"}

    def visit(name: str, ancestry: tuple[str, ...]) -> None:
        if name in ancestry:
            raise InventoryProblem(f"group `{name}` contains itself", groups[name].line)
        group = groups.get(name) or _Group(1)
        chain = (*ancestry, name)
        for host, hvars in group.hosts.items():
            entry = found.setdefault(host, {"roles": [], "line": group.host_lines[host],
                                            "own": {}, "groups": {}})
            for g in chain:
                if g in GROUP_ROLES and GROUP_ROLES[g] not in entry["roles"]:
                    entry["roles"].append(GROUP_ROLES[g])
                entry["groups"].setdefault(g, len(chain) - chain.index(g))
            entry["own"].update(hvars)
        for child in group.children:
            visit(child, chain)

    visit("all", ())
    out = []
    for host, entry in found.items():
        if not entry["roles"]:
            raise InventoryProblem(
                f"host `{host}` is in none of the groups {', '.join(GROUP_ROLES)}", entry["line"])
        inherited: dict[str, Any] = {}
        # Outermost group first (largest distance from the host), so inner groups win.
        for g, _ in sorted(entry["groups"].items(), key=lambda item: -item[1]):
            inherited.update(groups[g].vars)
        settings = {**inherited, **entry["own"]}
        address = str(settings.get("ansible_host", host))
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InventoryProblem(f"host `{host}`: ansible_host `{address}` is not an IP address",
                                   entry["line"], "kubeforge needs each node's address") from None
        out.append(InventoryHost(host, address, tuple(entry["roles"]),
                                 tuple(sorted(entry["own"].items())), entry["line"],
                                 tuple(sorted(inherited.items()))))
    return out


def load_inventory(path: Path) -> list[InventoryHost]:
    """Hosts of the kubeforge groups, in file order; raises InventoryProblem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryProblem(f"cannot read inventory `{path}`: {exc.strerror}") from None
    groups = _parse_ini(text) if _is_ini(text) else _parse_yaml(Path(path), text)
    return _resolve(groups)
