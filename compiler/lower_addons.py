"""Lower `addon KIND PROVIDER { ... }` statements (inside `cluster`).

One addon of each kind; the kinds and providers kubeforge can build and apply are
:data:`PROVIDERS`. The storage addon's path ends up in the provisioner's config.json and in
its helper pods' hostPath volumes, so it is checked as strictly as the backup directory.
"""

from __future__ import annotations

import posixpath
import re

from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir_cluster import StorageAddon
from kubeforge.dsl.ast import Node

#: Addon kind -> provider -> the versions kubeforge builds into a bundle (the first is the
#: default; bundle/recipes.py builds it).
PROVIDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "storage": {"local-path": ("v0.0.30",)},
}
#: Kinds issue 18 names that kubeforge does not build yet: a clear message, not a typo hint.
PLANNED = ("metrics", "monitoring", "logging")
_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
#: Where volumes must not go: what kubeadm, the kubelet and etcd own, and the kernel's.
_FORBIDDEN_DIRS = ("/etc", "/var/lib/etcd", "/var/lib/kubelet", "/var/lib/containerd",
                   "/proc", "/sys", "/dev", "/run", "/usr", "/bin", "/sbin", "/lib", "/boot")
_PATH_EXAMPLE = 'e.g. `path "/opt/local-path-provisioner"`'


def lower_addons(lw: Lowerer, stmts: list[Node]) -> dict[str, object]:
    """Kind -> its IR (a :class:`StorageAddon`), for the addons declared without errors."""
    out: dict[str, object] = {}
    first: dict[str, Node] = {}
    for stmt in stmts:
        kind_v, provider_v = stmt.value(0), stmt.value(1)
        kind = str(kind_v.py)
        if kind in PLANNED:
            lw.error("E104", f"addon `{kind}` is not available yet", kind_v.span,
                     "kubeforge builds and applies: " + ", ".join(PROVIDERS))
            continue
        kind = lw.choice(kind_v, PROVIDERS, "addon")
        if kind is None:
            continue
        if kind in first:
            lw.error("E101", f"`addon {kind}` is given twice in a cluster block", stmt.span,
                     f"the first one is at line {first[kind].span.line}")
            continue
        first[kind] = stmt
        provider = lw.choice(provider_v, PROVIDERS[kind], f"{kind} addon provider")
        if provider is None:
            continue
        out[kind] = _storage(lw, stmt, provider)
    return out


def _storage(lw: Lowerer, stmt: Node, provider: str) -> StorageAddon:
    body = tuple(stmt.body or ())
    lw.unique_stmts(body, f"the `addon storage {provider}` block")
    addon = StorageAddon(provider=provider, version=PROVIDERS["storage"][provider][0],
                         span=stmt.span)
    version, path, default = addon.version, addon.path, addon.default
    for item in body:
        value = item.value()
        if item.kind == "addon_version":
            version = _version(lw, value, provider) or version
        elif item.kind == "addon_path":
            path = _path(lw, value) or path
        elif item.kind == "is_default":
            default = bool(value.py)
    return StorageAddon(provider, version, path, default, stmt.span)


def _version(lw: Lowerer, value, provider: str) -> str | None:
    text = str(value.py)
    known = PROVIDERS["storage"][provider]
    if text in known or f"v{text}" in known:
        return text if text in known else f"v{text}"
    lw.error("E104", f"{provider} {text} is not a version kubeforge builds", value.span,
             "the bundle builds " + ", ".join(known) + " (leave `version` out for it)")
    return None


def _path(lw: Lowerer, value) -> str | None:
    text = str(value.py)
    if not text.startswith("/"):
        lw.error("E105", f"addon path `{text}` is relative: the volumes' directory on every "
                         "node must be an absolute path", value.span, _PATH_EXAMPLE)
        return None
    if not _PATH.fullmatch(text):
        lw.error("E105", f"addon path `{text}` must be an absolute path of letters, digits "
                         "and `._@+-/`", value.span, _PATH_EXAMPLE)
        return None
    path = posixpath.normpath(text)
    if path == "/":
        lw.error("E105", "addon path `/`: volumes need a directory of their own", value.span,
                 _PATH_EXAMPLE)
        return None
    for forbidden in _FORBIDDEN_DIRS:
        if path == forbidden or path.startswith(forbidden + "/"):
            lw.error("E105", f"addon path `{text}` is inside {forbidden}, which the system "
                             "or Kubernetes owns", value.span, _PATH_EXAMPLE)
            return None
    return path

