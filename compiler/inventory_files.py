"""What Ansible's inventory loader lets pass silently, found in the inventory files themselves.

Ansible reads an inventory leniently: a key given twice in one YAML mapping keeps the last
(``DUPLICATE_YAML_DICT_KEY`` only warns), and a host listed under two groups with two
different ``ansible_host`` values takes whichever group came last. Either loses something the
user wrote without a word (a dropped host then shows up as a wrong etcd member count). This
module reads the same files Ansible will (the inventory file, or every file of an inventory
directory, and the ``group_vars``/``host_vars`` beside it) and reports those cases with the
file and line, and records where each host is declared so later errors can point there.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeforge.compiler.yaml_errors import yaml_problem
from kubeforge.fileio import TEXT_LIMIT, FileProblem, read_text

YAML_SUFFIXES = (".yml", ".yaml", ".json")
VARS_DIRS = ("group_vars", "host_vars")


class InventoryProblem(ValueError):
    """An inventory that cannot be used as written; ``path:line`` says where."""

    def __init__(self, message: str, line: int = 1, hint: str | None = None,
                 path: str | Path | None = None):
        super().__init__(message)
        self.line = line
        self.hint = hint
        self.path = str(path) if path is not None else None


@dataclass
class Scan:
    """Where each host is first declared, and every value given inline to it."""

    declared: dict[str, tuple[str, int]] = field(default_factory=dict)
    inline: dict[str, dict[str, tuple[Any, str, int]]] = field(default_factory=dict)

    def where(self, host: str, default: str) -> tuple[str, int]:
        return self.declared.get(host, (default, 1))

    def host(self, name: str, variables: dict, path: str, line: int,
             var_lines: dict[str, int]) -> None:
        self.declared.setdefault(name, (path, line))
        seen = self.inline.setdefault(name, {})
        for var, value in variables.items():
            at = var_lines.get(var, line)
            if var in seen and seen[var][0] != value:
                first_value, first_path, first_line = seen[var]
                raise InventoryProblem(
                    f"host `{name}` has {var} {first_value!r} at {first_path}:{first_line} "
                    f"and {value!r} here; Ansible would silently use one of them", at,
                    "give the host its variables in one place (or make them agree)", path)
            seen.setdefault(var, (value, path, at))


def scan(source: Path) -> Scan:
    """Check every file Ansible will read for ``source``; raise InventoryProblem."""
    from ansible.inventory.manager import IGNORED

    result = Scan()
    files = list(_inventory_files(source, IGNORED))
    base = source if source.is_dir() else source.parent
    for path in files:
        _scan_file(path, result)
    for name in VARS_DIRS:
        for path in sorted((base / name).rglob("*")) if (base / name).is_dir() else ():
            if path.is_file() and not IGNORED.search(os.fsencode(path.name)) \
                    and (path.suffix in YAML_SUFFIXES or not path.suffix):
                _load_yaml(path)  # duplicate keys in a vars file drop a variable
    return result


def _inventory_files(source: Path, ignored) -> list[Path]:
    """The files Ansible's InventoryManager parses for ``source`` (same skipping rules)."""
    if not source.is_dir():
        return [source]
    found = []
    for entry in sorted(source.iterdir()):
        if ignored.search(os.fsencode(entry.name)):
            continue
        found += _inventory_files(entry, ignored) if entry.is_dir() else [entry]
    return found


def _scan_file(path: Path, result: Scan) -> None:
    if os.access(path, os.X_OK) and path.suffix not in YAML_SUFFIXES:
        return  # an inventory script: only running it tells what it holds
    text = _read(path)
    if path.suffix in YAML_SUFFIXES or (not path.suffix and _looks_like_yaml(text)):
        data = _load_yaml(path, text)
        if isinstance(data, _Mapping) and "plugin" not in data:
            for group, body in data.items():
                _scan_yaml_group(str(group), body, path, result)
    else:
        _scan_ini(path, text, result)


# ---------------------------------------------------------------------------------- YAML


class _Mapping(dict):
    """A mapping that remembers the line of each of its keys."""

    lines: dict[Any, int]


class _CheckingLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping and records key lines."""


def _construct_mapping(loader: _CheckingLoader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            raise InventoryProblem(
                f"`{key}` is given twice in one mapping (first at line {mapping.lines[key]}); "
                "Ansible would keep only the last one", line,
                "merge the two entries", loader.name)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = line
    return mapping


_CheckingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                _construct_mapping)


def _read(path: Path) -> str:
    try:
        return read_text(path, TEXT_LIMIT)  # a regular file (not a pipe that never ends)
    except FileProblem as problem:
        raise InventoryProblem(f"`{path}` {problem}", problem.line or 1, path=path) from None


def _load_yaml(path: Path, text: str | None = None) -> Any:
    text = _read(path) if text is None else text
    loader = None
    try:
        loader = _CheckingLoader(text)  # its reader refuses a control character at once
        loader.name = str(path)
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        problem, line, _ = yaml_problem(exc, text)
        raise InventoryProblem(f"`{path}` is not valid YAML: {problem}",
                               1 if line is None else line + 1, path=path) from None
    finally:
        if loader is not None:
            loader.dispose()


def _looks_like_yaml(text: str) -> bool:
    try:
        return isinstance(yaml.safe_load(text), dict)
    except yaml.YAMLError:
        return False


def _scan_yaml_group(name: str, body: Any, path: Path, result: Scan) -> None:
    if not isinstance(body, _Mapping):
        return  # Ansible's own loader reports a malformed group
    for key in ("hosts", "children", "vars"):  # Ansible says so too, but without a line
        value = body.get(key)
        if value is not None and not isinstance(value, _Mapping):
            kind = "list" if isinstance(value, list) else type(value).__name__
            raise InventoryProblem(f"`{key}` of group `{name}` must be a mapping, not a {kind}",
                                   body.lines.get(key, 1), "write `name:` entries one per "
                                   "line, each ending with a colon", path)
    hosts = body.get("hosts")
    if isinstance(hosts, _Mapping):
        for pattern, variables in hosts.items():
            variables = variables if isinstance(variables, _Mapping) else _Mapping()
            lines = getattr(variables, "lines", {})
            for host in _expand(str(pattern)):
                result.host(host, dict(variables), str(path), hosts.lines[pattern], lines)
    children = body.get("children")
    if isinstance(children, _Mapping):
        for child, child_body in children.items():
            _scan_yaml_group(str(child), child_body, path, result)


def _expand(pattern: str) -> list[str]:
    """Host range patterns (``node[1:3]``), expanded as Ansible expands them."""
    from ansible.plugins.inventory import detect_range, expand_hostname_range

    return list(expand_hostname_range(pattern)) if detect_range(pattern) else [pattern]


# ---------------------------------------------------------------------------------- INI


def _scan_ini(path: Path, text: str, result: Scan) -> None:
    from ansible.errors import AnsibleError
    from ansible.parsing.utils.addresses import parse_address

    kind = "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1].partition(":")[2] or "hosts"
            continue
        if kind != "hosts":
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            return  # Ansible's INI parser reports it with its own words
        if not tokens:
            continue
        variables = {}
        for token in tokens[1:]:
            key, sep, value = token.partition("=")
            if sep:
                variables[key] = _ini_value(value)
        try:
            pattern = parse_address(tokens[0], allow_ranges=True)[0]  # host[:port]
            hosts = _expand(pattern)
        except (AnsibleError, ValueError):
            return  # Ansible's INI parser reports it with its own words
        for host in hosts:
            result.host(host, variables, str(path), number, {})


def _ini_value(raw: str) -> Any:
    """INI values compare as Ansible reads them (``2222`` is a number, ``true`` text)."""
    import ast

    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
