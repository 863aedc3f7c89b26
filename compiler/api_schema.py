"""Kubernetes API objects checked against the schemas of one Kubernetes minor.

The schemas are kubernetes-validate's strict OpenAPI-derived JSON schemas, one set per minor
(``additionalProperties: false``): a field or API version the minor does not serve is an
error, and a field whose upstream description says ``Deprecated:`` is reported as deprecated.
Validators are built once per (minor, apiVersion, kind) and reused; kubernetes-validate's own
``validate()`` would re-read the whole definitions file for every object.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterator

from kubeforge.compiler.schema_fast import compile_schema

_DEPRECATED = re.compile(r"\bDeprecated:\s*([^.]*\.?)")


@dataclass(frozen=True)
class ApiProblem:
    severity: str  # "error" | "deprecated"
    path: str  # "spec.template.spec.serviceAccount", "" for the object itself
    message: str


def _group_file(api_version: str) -> str:
    # rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1 (kubernetes-validate's file names)
    return re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)


@functools.lru_cache(maxsize=None)
def _schema_dir(minor: int) -> str:
    from kubernetes_validate import utils

    usable = [v for v in utils.all_versions() if int(v.split(".")[1]) <= minor]
    if not usable:
        raise LookupError(f"kubernetes-validate has no schemas for Kubernetes 1.{minor}")
    return f"kubernetes-json-schema/v{usable[-1]}-local-strict"


@functools.lru_cache(maxsize=None)
def _definitions_file(minor: int) -> dict:
    from kubernetes_validate import utils

    return utils.schema_contents(f"{_schema_dir(minor)}/_definitions.json", f"1.{minor}")


def definitions(minor: int) -> dict:
    """Every type of the minor's API, by name (the schemas' ``$defs``)."""
    return _definitions_file(minor)["$defs"]


@functools.lru_cache(maxsize=None)
def kind_schema(minor: int, api_version: str, kind: str) -> dict | None:
    """The strict schema of one kind, or None when the minor does not serve it."""
    from kubernetes_validate import utils

    try:
        return utils.schema_contents(
            f"{_schema_dir(minor)}/{kind.lower()}-{_group_file(api_version)}.json", f"1.{minor}")
    except (FileNotFoundError, OSError):
        return None


@functools.lru_cache(maxsize=None)
def _validator(minor: int, api_version: str, kind: str):
    """(validator, schema, quick check), or None when the minor does not serve ``api_version``/``kind``."""
    import jsonschema
    from referencing import Registry, Resource

    schema = kind_schema(minor, api_version, kind)
    if schema is None:
        return None
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_definitions_file(minor)) @ registry
    quick = compile_schema(schema, definitions(minor))
    return jsonschema.Draft202012Validator(schema, registry=registry), schema, quick


def _resolve(schema: dict | None, defs: dict) -> dict | None:
    while schema is not None and "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1])
    if schema is not None and "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(schema["allOf"][0], defs)
    return schema


#: id(schema) -> (schema, {key: (deprecation note or None, resolved sub-schema)}): what
#: _deprecations reads of a property, worked out once per schema and key, not per object.
_PROPERTIES: dict[int, tuple[dict, dict[str, tuple[str | None, dict | None]]]] = {}


def _property(schema: dict, key: str, defs: dict) -> tuple[str | None, dict | None]:
    entry = _PROPERTIES.get(id(schema))
    if entry is None:
        entry = _PROPERTIES[id(schema)] = (schema, {})  # the schema kept alive with its id
    known = entry[1].get(key)
    if known is None:
        props = schema.get("properties") or {}
        sub = _resolve(props.get(key), defs)
        own = (props.get(key) or {}).get("description") or (sub or {}).get("description")
        match = _DEPRECATED.search(own or "")
        known = entry[1][key] = (match.group(1).strip() or "deprecated" if match else None, sub)
    return known


def _deprecations(value: Any, schema: dict | None, defs: dict, path: str) -> Iterator[ApiProblem]:
    if not isinstance(value, (dict, list)):
        return  # nothing below a scalar
    schema = _resolve(schema, defs)
    if schema is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            note, sub = _property(schema, key, defs)
            where = f"{path}.{key}" if path else key
            if note is not None:
                yield ApiProblem("deprecated", where, note)
            yield from _deprecations(item, sub, defs, where)
    elif isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _deprecations(item, schema["items"], defs, f"{path}[{index}]")


def check_object(obj: dict, minor: int) -> list[ApiProblem]:
    """Every problem of ``obj`` for Kubernetes 1.``minor``: errors first, then deprecations."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    found = _validator(minor, api_version, kind)
    if found is None:
        return [ApiProblem("error", "", f"Kubernetes 1.{minor} does not serve {kind} "
                                        f"{api_version}")]
    validator, schema, quick = found
    problems = []
    errors = () if quick(obj) else validator.iter_errors(obj)
    for err in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path)
        message = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        problems.append(ApiProblem("error", where, message))
    defs = definitions(minor)
    whole = _DEPRECATED.search(schema.get("description", ""))
    if whole:
        problems.append(ApiProblem("deprecated", "", whole.group(1).strip()))
    problems += list(_deprecations(obj, schema, defs, ""))
    return problems


def check_manifests(program, diags) -> None:
    """E122 for every workload object the cluster's minor would reject, W122 for every
    deprecated field in one (a file without a cluster is checked for the default version).
    A patched object is checked as patched; its schema errors are the patch's (E130)."""
    from kubeforge.compiler import versions
    from kubeforge.compiler.api_schema_cache import CheckCache
    from kubeforge.compiler.emit.manifests import cluster_objects, namespace_objects
    from kubeforge.compiler.patch import PatchProblem, apply_patches

    version = program.cluster.version if program.cluster else versions.DEFAULT_VERSION
    minor = versions.parse(version)[0]
    groups = [cluster_objects(program)]
    groups += [namespace_objects(program, ns) for ns in sorted({n.name for n in program.namespaces})]
    cache = CheckCache()  # objects checked before are not checked, nor jsonschema imported
    for group in groups:
        for what, doc, patches, span in group:
            try:
                final = apply_patches(doc, patches, version, what)
            except PatchProblem:
                continue  # reported by check_patches
            for problem in cache.check(final, minor):
                where = f" field `{problem.path}`" if problem.path else ""
                if problem.severity == "deprecated":
                    diags.warning("W122", f"{what}{where} is deprecated in Kubernetes {version}",
                                  span, problem.message)
                elif not patches:
                    diags.error("E122", f"{what}{where} is not valid in Kubernetes {version}: "
                                f"{problem.message}", span)
    cache.save()
