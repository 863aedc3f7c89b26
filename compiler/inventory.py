"""Read the nodes of a cluster from an Ansible-format YAML inventory.

One inventory file serves kubeforge, ansible and testinfra: groups ``control_plane``,
``workers``, ``etcd`` and ``loadbalancers`` under ``all.children``; host variables in
Ansible's names. Unknown keys are errors, since a misspelt variable would otherwise be
silently ignored.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

GROUP_ROLES = {
    "control_plane": "control-plane",
    "workers": "worker",
    "etcd": "etcd",
    "loadbalancers": "loadbalancer",
}
HOST_VARS = {
    "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
    "ansible_become", "ansible_python_interpreter", "ansible_ssh_common_args",
    "kubeforge_cpus", "kubeforge_memory", "kubeforge_labels",
}
GROUP_KEYS = {"hosts", "vars", "children"}


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    roles: tuple[str, ...]
    vars: tuple[tuple[str, object], ...]
    line: int


class InventoryProblem(ValueError):
    def __init__(self, message: str, line: int = 1, hint: str | None = None):
        super().__init__(message)
        self.line = line
        self.hint = hint


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


def _lines(mapping: dict) -> dict:
    return mapping.get("__lines__", {}) if isinstance(mapping, dict) else {}


def _items(mapping: dict):
    return [(k, v) for k, v in mapping.items() if k != "__lines__"]


def load_inventory(path: Path) -> list[InventoryHost]:
    """Hosts of the kubeforge groups, in file order; raises InventoryProblem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryProblem(f"cannot read inventory `{path}`: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        line = exc.problem_mark.line + 1 if getattr(exc, "problem_mark", None) else 1
        raise InventoryProblem(f"inventory `{path}` is not valid YAML: {exc}", line) from None
    if not isinstance(data, dict) or "all" not in data:
        raise InventoryProblem(f"inventory `{path}` has no top-level `all` group",
                               hint="use Ansible's YAML inventory format: all: {children: ...}")
    hosts: dict[str, dict] = {}
    roles: dict[str, list[str]] = {}
    lines: dict[str, int] = {}

    def walk(group_name: str, group: dict, line: int) -> None:
        if group is None:
            return
        if not isinstance(group, dict):
            raise InventoryProblem(f"group `{group_name}` must be a mapping", line)
        for key, _ in _items(group):
            if key not in GROUP_KEYS:
                raise InventoryProblem(f"unknown key `{key}` in group `{group_name}`",
                                       _lines(group).get(key, line),
                                       "groups take `hosts`, `vars` and `children`")
        for host, hvars in _items(group.get("hosts") or {}):
            hline = _lines(group["hosts"]).get(host, line)
            hvars = hvars or {}
            if not isinstance(hvars, dict):
                raise InventoryProblem(f"host `{host}` must map to its variables", hline)
            for var, _ in _items(hvars):
                if var not in HOST_VARS:
                    import difflib

                    close = difflib.get_close_matches(var, sorted(HOST_VARS), n=1)
                    raise InventoryProblem(
                        f"unknown host variable `{var}` for host `{host}`",
                        _lines(hvars).get(var, hline),
                        f"did you mean `{close[0]}`?" if close else None)
            merged = hosts.setdefault(host, {})
            merged.update({k: v for k, v in _items(hvars)})
            lines.setdefault(host, hline)
            if group_name in GROUP_ROLES:
                role = GROUP_ROLES[group_name]
                if role not in roles.setdefault(host, []):
                    roles[host].append(role)
            else:
                roles.setdefault(host, [])
        for child, sub in _items(group.get("children") or {}):
            walk(child, sub, _lines(group["children"]).get(child, line))

    walk("all", data["all"], _lines(data).get("all", 1))
    out = []
    for host, hvars in hosts.items():
        if not roles.get(host):
            raise InventoryProblem(
                f"host `{host}` is in none of the groups {', '.join(GROUP_ROLES)}", lines[host])
        address = str(hvars.get("ansible_host", host))
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InventoryProblem(f"host `{host}`: ansible_host `{address}` is not an IP address",
                                   lines[host], "kubeforge needs each node's address") from None
        out.append(InventoryHost(host, address, tuple(roles[host]),
                                 tuple(sorted(hvars.items())), lines[host]))
    return out
