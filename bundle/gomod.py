"""Read a go.mod and write the wrapper module that builds a project from the module proxy.

Projects that develop several modules in one repository (Kubernetes and its staging modules,
etcd's server, client and api modules) require their siblings at a placeholder version and
point at them with local ``replace`` directives. Replaces only count in the main module, so
``go build k8s.io/kubernetes/cmd/kubeadm`` from another module cannot resolve them; a wrapper
module that requires the project and replaces each sibling with its published version can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from kubeforge.bundle.errors import BundleError

#: The Go language version the wrapper modules declare (the Go on the build machine may be newer).
WRAPPER_GO = "1.26.0"
_PLACEHOLDER = re.compile(r"v0\.0\.0(-0{14}-0{12}|-00010101000000-0{12})?")


@dataclass(frozen=True)
class Replace:
    old: str
    new: str
    new_version: str | None  # None: ``new`` is a local directory

    @property
    def local(self) -> bool:
        return self.new_version is None and self.new.startswith(("./", "../", "/"))


@dataclass(frozen=True)
class GoMod:
    module: str
    go: str | None
    requires: dict[str, str]
    replaces: tuple[Replace, ...]


def _directives(text: str) -> Iterable[tuple[str, list[str]]]:
    """(verb, fields) for each directive, block entries included; comments dropped."""
    block: str | None = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        fields = [field.strip('"`') for field in line.split()]
        if block is not None:
            if line == ")":
                block = None
            else:
                yield block, fields
        elif len(fields) == 2 and fields[1] == "(":
            block = fields[0]
        else:
            yield fields[0], fields[1:]


def parse_gomod(text: str, origin: str = "go.mod") -> GoMod:
    module, go = None, None
    requires: dict[str, str] = {}
    replaces: list[Replace] = []
    for verb, fields in _directives(text):
        if verb == "module" and fields:
            module = fields[0]
        elif verb == "go" and fields:
            go = fields[0]
        elif verb == "require" and len(fields) >= 2:
            requires[fields[0]] = fields[1]
        elif verb == "replace":
            if "=>" not in fields:
                raise BundleError(f"bundle: {origin}: cannot read replace directive "
                                  f"`{' '.join(fields)}`")
            arrow = fields.index("=>")
            target = fields[arrow + 1:]
            replaces.append(Replace(old=fields[0], new=target[0],
                                    new_version=target[1] if len(target) > 1 else None))
    if module is None:
        raise BundleError(f"bundle: {origin} has no module directive")
    return GoMod(module, go, requires, tuple(replaces))


def sibling_versions(mod: GoMod, placeholder_version: Callable[[str], str] | None = None
                     ) -> dict[str, str]:
    """The published version of every sibling module ``mod`` requires through a local replace.

    A sibling required at a real version (etcd) keeps it; one required at the v0.0.0
    placeholder (Kubernetes staging) gets ``placeholder_version(path)``. Local replaces of
    modules the project does not require (Kubernetes' sample-cli-plugin, sample-controller)
    are dropped: nothing builds them, and the proxy does not serve them.
    """
    versions: dict[str, str] = {}
    for replace in mod.replaces:
        if not replace.local or replace.old not in mod.requires:
            continue
        version = mod.requires[replace.old]
        if _PLACEHOLDER.fullmatch(version):
            if placeholder_version is None:
                raise BundleError(f"bundle: {mod.module} requires {replace.old} at placeholder "
                                  f"{version} and says no published version")
            version = placeholder_version(replace.old)
        versions[replace.old] = version
    return versions


def wrapper_gomod(name: str, requires: dict[str, str], replaces: dict[str, str]) -> str:
    """The go.mod of module ``kubeforge.local/<name>``: the same text for the same input."""
    lines = [f"module kubeforge.local/{name}", "", f"go {WRAPPER_GO}", ""]
    if len(requires) == 1:
        (path, version), = requires.items()
        lines.append(f"require {path} {version}")
    else:
        lines += ["require ("] + [f"\t{p} {v}" for p, v in sorted(requires.items())] + [")"]
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{path} => {path} {version}" for path, version in sorted(replaces.items())]
        lines.append(")")
    return "\n".join(lines) + "\n"
