"""Read cluster nodes and how to reach them from an Ansible inventory, as Ansible reads it.

The inventory goes through ansible-core's own machinery (``InventoryManager`` and
``DataLoader``, and ``VariableManager`` for ``group_vars``/``host_vars``), so whatever
``ansible-inventory --list`` shows is what kubeforge sees: YAML and INI files, directories of
them, host ranges (``cp[1:3]``), child groups, inventory plugins. Before that,
:mod:`~kubeforge.compiler.inventory_files` checks the files for what Ansible would let pass
silently (a key given twice, one host with two addresses).

Roles come from group membership. kubeforge's own groups (``control_plane``, ``workers``,
``etcd``, ``loadbalancers``) and Kubespray's (``kube_control_plane``, ``kube_node``,
``etcd``; ``k8s_cluster`` is their umbrella, ``calico_rr`` is ignored with a warning) both
work, so a Kubespray inventory serves unchanged. A host in no group at all is a node whose
role the cluster file must give; a host only in other groups (a bastion) is not a node.

Variables are checked like source values: ``kubeforge_*`` and ``ansible_*`` names must be
known (a misspelling would otherwise be ignored); other names belong to other tools and are
left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import io
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeforge.compiler import values as V
from kubeforge.compiler.inventory_files import InventoryProblem, Scan, scan
from kubeforge.fileio import path_problem

__all__ = ["GROUP_ROLES", "Inventory", "InventoryHost", "InventoryProblem", "load_inventory"]

#: Group -> role, kubeforge's names first (the ones kubeforge writes), then Kubespray's.
GROUP_ROLES = {
    "control_plane": "control-plane",
    "workers": "worker",
    "etcd": "etcd",
    "loadbalancers": "loadbalancer",
    "kube_control_plane": "control-plane",
    "kube_node": "worker",
}
#: The groups kubeforge writes, by role.
ROLE_GROUPS = {"control-plane": "control_plane", "worker": "workers", "etcd": "etcd",
               "loadbalancer": "loadbalancers"}
#: Kubespray's group of every Kubernetes node; it gives no role of its own.
UMBRELLA_GROUP = "k8s_cluster"
#: Groups kubeforge reads past, with why.
IGNORED_GROUPS = {"calico_rr": "Calico route reflectors are not something kubeforge deploys"}
KUBEFORGE_VARS = ("kubeforge_cpus", "kubeforge_memory", "kubeforge_labels",
                  "kubeforge_addresses")
#: kubeforge's setting -> the Ansible variables that give it (later names win, as in Ansible).
CONNECTION = {"address": "remote_addr", "port": "port", "user": "remote_user",
              "key_file": "private_key_file", "become": "become", "become_user": "become_user"}


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str  # ansible_host (or its older alias), else the host name
    roles: tuple[str, ...]
    vars: tuple[tuple[str, object], ...]  # every variable Ansible gives the host, flattened
    groups: tuple[str, ...]  # the groups it is in, `all` and `ungrouped` left out
    file: str
    line: int
    cpus: int | None = None
    memory_mib: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    addresses: tuple[str, ...] = ()  # node addresses (kubeforge_addresses), else (address,)
    own_user: str | None = None  # ansible_user set on the host itself (not by a group)

    def settings(self) -> dict[str, object]:
        """Connection settings by kubeforge's names (address, port, user, key_file, become,
        become_user), resolved from Ansible's variables and their aliases as Ansible does."""
        from ansible import constants as C
        from ansible.module_utils.parsing.convert_bool import boolean

        variables = dict(self.vars)
        out: dict[str, object] = {}
        for setting, option in CONNECTION.items():
            for name in C.MAGIC_VARIABLE_MAPPING[option]:
                if name in variables:
                    out[setting] = variables[name]
        if "become" in out:
            out["become"] = boolean(out["become"], strict=False)
        if "port" in out:
            out["port"] = int(str(out["port"]))
        return out

    @property
    def is_candidate(self) -> bool:
        """A node of the cluster: it has a role, or it is in no group at all (the cluster
        file gives its role). A host only in other groups (a bastion) is not a node."""
        return bool(self.roles) or not [g for g in self.groups if g != UMBRELLA_GROUP]


@dataclass(frozen=True)
class Group:
    hosts: tuple[str, ...]  # listed in the group itself
    children: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    hosts: tuple[InventoryHost, ...]
    groups: dict[str, Group]
    warnings: tuple[InventoryProblem, ...]

    @property
    def candidates(self) -> tuple[InventoryHost, ...]:
        return tuple(h for h in self.hosts if h.is_candidate)


def inventory_groups(hosts: list[tuple[str, tuple[str, ...], dict | None]]) -> dict[str, Any]:
    """The ``children`` of ``all`` in an inventory kubeforge writes: kubeforge's role groups
    (``name -> host variables`` under ``hosts``), Kubespray's umbrella group ``k8s_cluster``
    and, when no host has the etcd role (stacked etcd), an ``etcd`` group of the control
    planes, so Kubespray-style tooling and kubeforge read the same cluster from it."""
    children: dict[str, Any] = {}
    for role, group in ROLE_GROUPS.items():
        members = {name: variables for name, roles, variables in hosts if role in roles}
        if members:
            children[group] = {"hosts": members}
    if "etcd" not in children and "control_plane" in children:
        children["etcd"] = {"children": {"control_plane": {}}}
    umbrella = {g: {} for g in ("control_plane", "workers") if g in children}
    if umbrella:
        children[UMBRELLA_GROUP] = {"children": umbrella}
    return children


def load_inventory(path: str | Path) -> Inventory:
    """Every host of the inventory at ``path`` (a file or a directory), as Ansible reads
    it; raises InventoryProblem for what kubeforge cannot use."""
    path = Path(path)
    problem = None if os.path.isdir(path) else path_problem(path)
    if problem:  # "does not exist", "is a named pipe, not a regular file", a loop, ...
        raise InventoryProblem(f"inventory `{path}` {problem}", path=path)
    files = scan(path)
    inventory, variables = _ansible_inventory(path)
    hosts, warnings = [], []
    for name, host in inventory.hosts.items():  # Ansible's order: the order of the files
        found = _host(_plain(name), [_plain(g.name) for g in host.get_groups()],
                      variables(host), files, str(path))
        own = _plain(host.get_vars())  # set on the host itself, not inherited from groups
        hosts.append(dataclasses.replace(found, own_user=own.get("ansible_user")))
    groups = {_plain(g.name): Group(tuple(_plain(h.name) for h in g.hosts),
                                    tuple(_plain(c.name) for c in g.child_groups))
              for g in inventory.groups.values()}
    for group, why in IGNORED_GROUPS.items():
        members = [h.name for h in hosts if group in h.groups]
        if members:
            file, line = files.where(members[0], str(path))
            warnings.append(InventoryProblem(
                f"group `{group}` ({', '.join(members)}) is ignored: {why}", line, path=file))
    return Inventory(tuple(hosts), groups, tuple(warnings))


def _ansible_inventory(path: Path):
    """Ansible's view of ``path``: (InventoryData, host -> flattened variables). Ansible
    reports a file it cannot parse only as a warning and carries on without its hosts;
    here that is an error, with Ansible's own words."""
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    class Manager(InventoryManager):
        def parse_source(self, source, cache=False):
            parsed = super().parse_source(source, cache=cache)
            if not parsed and not Path(source).is_dir():
                self.unparsed.append(source)
            return parsed

        def __init__(self, loader, sources):
            self.unparsed: list[str] = []
            super().__init__(loader=loader, sources=sources)

    _init_plugins()
    loader = DataLoader()
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            manager = Manager(loader, [str(path)])
            variables = VariableManager(loader=loader, inventory=manager)
    except AnsibleError as exc:
        raise InventoryProblem(f"Ansible cannot read the inventory: {exc.message}",
                               path=path) from None
    if manager.unparsed:
        source = manager.unparsed[0]
        raise InventoryProblem(f"Ansible cannot parse `{source}` as an inventory: "
                               f"{_failure(said.getvalue(), Path(source))}", path=source)

    def host_vars(host) -> dict[str, Any]:
        found = variables.get_vars(host=host, include_hostvars=False, stage="all")
        return {k: _plain(v) for k, v in found.items() if k not in C.INTERNAL_STATIC_VARS}

    return manager._inventory, host_vars


@functools.cache
def _init_plugins() -> None:
    """What Ansible's command-line tools do first: without the collection loader, inventory
    plugins named by FQCN (``plugin: ansible.builtin.constructed``) cannot load."""
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()


def _failure(said: str, source: Path) -> str:
    """The reason Ansible gave, from the plugin that fits the file: the ini plugin for an
    INI file, the yaml (or a configured) plugin for YAML; the others' refusals are noise."""
    reasons = dict(re.findall(r"Failed to parse inventory with '(\w+)' plugin: (.*)", said))
    preferred = ("yaml", "auto") if source.suffix in (".yml", ".yaml", ".json") else ("ini",)
    for plugin in (*preferred, *reasons):
        if plugin in reasons:
            return reasons[plugin].strip()
    return "no inventory plugin accepts it"


def _plain(value: Any) -> Any:
    """Ansible's tagged values as plain Python values (a tagged str is still a str)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return "".join(value)  # a plain str (str() of a str subclass may keep the subclass)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ================================================================================ checks


@functools.cache
def _known_ansible_vars() -> frozenset[str]:
    """Every ``ansible_*`` name ansible-core gives a meaning for connections and privilege
    escalation (its magic variables and the ssh/sudo plugins' variables)."""
    from ansible import constants as C
    from ansible.plugins.loader import become_loader, connection_loader

    names = {n for names in C.MAGIC_VARIABLE_MAPPING.values() for n in names}
    names |= {"ansible_python_interpreter"}
    for kind, loader, plugin in (("connection", connection_loader, "ssh"),
                                 ("become", become_loader, "sudo")):
        loader.get(plugin, class_only=True)  # registers its option definitions
        for option in C.config.get_configuration_definitions(kind, plugin).values():
            names |= {v["name"] for v in option.get("vars") or ()}
    return frozenset(n for n in names if n.startswith("ansible_"))


def _host(name: str, groups: list[str], variables: dict[str, Any], files: Scan,
          default: str) -> InventoryHost:
    file, line = files.where(name, default)

    def problem(message: str, hint: str | None = None, var: str | None = None):
        at = files.inline.get(name, {}).get(var or "", (None, file, line))
        return InventoryProblem(message, at[2], hint, at[1])

    named = tuple(g for g in groups if g not in ("all", "ungrouped"))
    roles = tuple(dict.fromkeys(GROUP_ROLES[g] for g in named if g in GROUP_ROLES))
    known = _known_ansible_vars()
    for var in variables:
        if (var.startswith("kubeforge_") and var not in KUBEFORGE_VARS) or \
                (var.startswith("ansible_") and var not in known):
            choices = KUBEFORGE_VARS if var.startswith("kubeforge_") else sorted(known)
            close = difflib.get_close_matches(var, choices, n=1)
            raise problem(f"unknown variable `{var}` for host `{name}`",
                          f"did you mean `{close[0]}`?" if close else None, var)
    host = InventoryHost(name, "", roles, tuple(sorted(variables.items())), named, file, line)
    address = str(host.settings().get("address", name))
    candidate = host.is_candidate
    if candidate and not V.is_dns_subdomain(name):
        raise problem(f"host name `{name}` is not a valid node name (DNS-1123: lower-case "
                      "letters, digits, '-' and '.')", V.dns_hint(name))
    if candidate and not _is_ip(address):
        raise problem(f"host `{name}`: ansible_host `{address}` is not an IP address",
                      "kubeforge needs each node's address", "ansible_host")
    return InventoryHost(
        name, address, roles, host.vars, named, file, line,
        cpus=_cpus(variables.get("kubeforge_cpus"), name, problem),
        memory_mib=_memory(variables.get("kubeforge_memory"), name, problem),
        labels=_labels(variables.get("kubeforge_labels"), name, problem),
        addresses=_addresses(variables.get("kubeforge_addresses"), address, name, problem))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _cpus(value: Any, name: str, problem) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise problem(f"host `{name}`: kubeforge_cpus must be a whole number of CPUs, "
                      f"not {value!r}", "e.g. kubeforge_cpus: 2", "kubeforge_cpus")
    return value


def _memory(value: Any, name: str, problem) -> int | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, str):
            raise V.ValueProblem("not a quantity")
        mib = V.memory_mib(_text_value(value))
    except V.ValueProblem:
        raise problem(f"host `{name}`: kubeforge_memory must be a quantity, not {value!r}",
                      "e.g. kubeforge_memory: 4Gi", "kubeforge_memory") from None
    if mib < 1:
        raise problem(f"host `{name}`: kubeforge_memory {value} is less than 1Mi", None,
                      "kubeforge_memory")
    return mib


def _labels(value: Any, name: str, problem) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise problem(f"host `{name}`: kubeforge_labels must map label keys to values",
                      "e.g. kubeforge_labels: {disk: ssd}", "kubeforge_labels")
    out = []
    for key, raw in value.items():
        if isinstance(raw, (dict, list)) or raw is None:
            raise problem(f"host `{name}`: label `{key}` needs a plain value", None,
                          "kubeforge_labels")
        # YAML's true is a boolean; a label value is the text `true`, never Python's `True`.
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        for message in (V.label_key_problem(str(key)), V.label_value_problem(text)):
            if message:
                raise problem(f"host `{name}`: {message}", None, "kubeforge_labels")
        out.append((str(key), text))
    return tuple(sorted(out))


def _addresses(value: Any, address: str, name: str, problem) -> tuple[str, ...]:
    if value is None:
        return (address,)
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) and _is_ip(i) for i in items):
        raise problem(f"host `{name}`: kubeforge_addresses must list IP addresses",
                      "e.g. kubeforge_addresses: [10.0.0.11, 'fd00::11']", "kubeforge_addresses")
    return tuple(items)


def _text_value(text: str):
    """A literal as the language would hold it, for the shared value readers."""
    from kubeforge.dsl.ast import Value
    from kubeforge.dsl.diagnostics import NO_SPAN

    return Value("UNITNUM", text, NO_SPAN)
