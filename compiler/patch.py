"""The escape hatch: apply a user's `patch` to an emitted object and check the result.

Two kinds, as kubectl and Kustomize know them:

* a strategic merge patch (YAML): maps merge key by key, `null` (or a map holding
  `$patch: delete`) deletes a key, and lists
  that Kubernetes merges by a key (containers by `name`, volumeMounts by `mountPath`, ...,
  read from the version's schema) merge element by element; `$patch: delete` in a list
  element removes it, `$patch: replace` replaces the map or list it is in. Other lists are
  replaced whole.
* a JSON patch (RFC 6902, `patch json`): a list of `op`/`path`/`value` operations.

The patched object is validated against the cluster version's schema (kubernetes-validate,
strict: unknown fields are errors). Problems are diagnostics that point into the patch text:
a YAML error at its line, a failing operation at that operation, a schema error at the
patched field.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import yaml

from kubeforge.compiler import api_schema, versions
from kubeforge.compiler.ir import Patch
from kubeforge.compiler.yaml_errors import yaml_problem
from kubeforge.dsl.diagnostics import Diagnostic, Span, did_you_mean

CODE = "E130"
_IDENTITY = ("apiVersion", "kind")


class PatchProblem(Exception):
    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def apply_patches(doc: dict, patches: tuple[Patch, ...], version: Optional[str],
                  what: str) -> dict:
    """``doc`` with every patch applied in order, validated; raises PatchProblem."""
    if not patches:
        return doc
    version = version or versions.DEFAULT_VERSION
    out = copy.deepcopy(doc)
    for patch in patches:
        tree = _parse(patch, what)
        if patch.kind == "json":
            out = _apply_json(out, patch, tree, what)
        else:
            if not isinstance(tree.value, dict):
                raise _problem(patch, tree.node, f"the patch of {what} must be a YAML mapping")
            out = strategic_merge(out, tree.value, _kind_schema(out, version))
        _check_identity(doc, out, patch, tree, what)
        _validate(out, patch, tree, version, what)
    return out


# ------------------------------------------------------------------------------ parsing
class _Tree:
    """The patch as Python data and as a YAML node tree (for positions)."""

    def __init__(self, value: Any, node: yaml.Node | None):
        self.value = value
        self.node = node


def _parse(patch: Patch, what: str) -> _Tree:
    try:
        node = yaml.compose(patch.text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(patch.text)
    except yaml.YAMLError as exc:
        reason, line, col = yaml_problem(exc, patch.text)
        raise PatchProblem(Diagnostic(CODE, f"the patch of {what} is not valid YAML: {reason}",
                                      _span(patch, line, col))) from None
    return _Tree(value, node)


def _span(patch: Patch, line: int | None, col: int) -> Span:
    """Where 0-based ``line``/``col`` of the patch text is in its file."""
    if line is None or not patch.text_line:
        return patch.span
    line += patch.text_line
    col += patch.text_col
    return Span(patch.span.file, line, col, line, col + 1)


def _node_span(patch: Patch, node: yaml.Node | None) -> Span:
    if node is None or not patch.text_line:
        return patch.span
    start, end = node.start_mark, node.end_mark
    line = patch.text_line + start.line
    col = patch.text_col + start.column
    end_col = patch.text_col + end.column if end.line == start.line else col + 1
    return Span(patch.span.file, line, col, line, max(end_col, col + 1))


def _problem(patch: Patch, node, message: str, hint: str | None = None) -> PatchProblem:
    return PatchProblem(Diagnostic(CODE, message, _node_span(patch, node), hint))


# ------------------------------------------------------------------------------ JSON patch
def _apply_json(doc: dict, patch: Patch, tree: _Tree, what: str) -> dict:
    import jsonpatch
    import jsonpointer

    if not isinstance(tree.value, list):
        raise _problem(patch, tree.node, f"the JSON patch of {what} must be a list of operations",
                       "e.g. `- {op: add, path: /spec/template/spec/hostNetwork, value: true}`")
    items = tree.node.value if isinstance(tree.node, yaml.SequenceNode) else []
    for index, op in enumerate(tree.value):
        node = items[index] if index < len(items) else tree.node
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError,
                KeyError, AttributeError) as exc:
            raise _problem(patch, node, f"JSON patch operation {index + 1} of {what} fails: "
                           f"{exc or type(exc).__name__}") from None
    return doc


# ------------------------------------------------------------------------------ strategic merge
def strategic_merge(target: Any, patch: Any, schema: dict | None) -> Any:
    """Kubernetes' strategic merge of ``patch`` into ``target`` (see the module docstring)."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(target)
    for key, value in patch.items():
        if key == "$patch":
            continue
        sub = _property(schema, key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = strategic_merge(out[key], value, sub)
        elif isinstance(value, list):
            out[key] = _merge_list(out.get(key), value, sub)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(target: Any, patch: list, schema: dict | None) -> list:
    strategy = (schema or {}).get("x-kubernetes-patch-strategy", "")
    key = (schema or {}).get("x-kubernetes-patch-merge-key")
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [copy.deepcopy(e) for e in patch if not (isinstance(e, dict) and "$patch" in e)]
    if "merge" not in strategy.split(",") or not isinstance(target, list):
        return [_strip(e) for e in patch if not (isinstance(e, dict) and e.get("$patch"))]
    out = list(target)
    items = _items(schema)
    for element in patch:
        if not isinstance(element, dict) or key is None:
            if element not in out:
                out.append(copy.deepcopy(element))
            continue
        index = next((i for i, e in enumerate(out)
                      if isinstance(e, dict) and key in element and e.get(key) == element[key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(_strip(element))
        else:
            out[index] = strategic_merge(out[index], element, items)
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "$patch" and v is not None}
    return copy.deepcopy(value)


# ------------------------------------------------------------------------------ schemas
def _kind_schema(doc: dict, version: str) -> dict | None:
    minor = versions.parse(version)[0]
    schema = api_schema.kind_schema(minor, doc.get("apiVersion", ""), doc.get("kind", ""))
    return {"__defs": api_schema.definitions(minor), **schema} if schema else None


def _resolve(schema: dict | None, defs: dict) -> dict | None:
    seen = 0
    while schema is not None and "$ref" in schema and seen < 50:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**defs.get(name, {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _property(schema: dict | None, key: str) -> dict | None:
    if schema is None:
        return None
    defs = schema.get("__defs", {})
    node = _resolve(schema, defs)
    if node is None:
        return None
    prop = (node.get("properties") or {}).get(key)
    if prop is None and isinstance(node.get("additionalProperties"), dict):
        prop = node["additionalProperties"]
    prop = _resolve(prop, defs) if prop is not None else None
    return {"__defs": defs, **prop} if prop is not None else None


def _items(schema: dict | None) -> dict | None:
    if schema is None:
        return None
    defs = schema.get("__defs", {})
    items = _resolve(schema.get("items"), defs) if schema.get("items") else None
    return {"__defs": defs, **items} if items is not None else None


# ------------------------------------------------------------------------------ checks
def _check_identity(before: dict, after: dict, patch: Patch, tree: _Tree, what: str) -> None:
    changed = [k for k in _IDENTITY if before.get(k) != after.get(k)]
    meta_b, meta_a = before.get("metadata") or {}, after.get("metadata") or {}
    changed += [f"metadata.{k}" for k in ("name", "namespace") if meta_b.get(k) != meta_a.get(k)]
    if changed:
        raise _problem(patch, tree.node, f"the patch of {what} changes {', '.join(changed)}",
                       "name and place the object with the language; a patch changes its fields")


def _validate(doc: dict, patch: Patch, tree: _Tree, version: str, what: str) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = list(exc.absolute_path)
        where = ".".join(str(p) for p in path) or "the object"
        hint = _field_hint(exc)
        node = _locate(tree, path, doc, patch.kind)
        raise _problem(patch, node, f"the patched {what} is invalid for Kubernetes "
                       f"{version}: {where}: {_short(exc.message)}", hint) from None
    except (kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.VersionNotSupportedError) as exc:
        raise _problem(patch, tree.node, f"cannot check the patched {what}: {exc.message}") from None


def _short(message: str) -> str:
    return message if len(message) <= 160 else message[:157] + "..."


def _field_hint(exc) -> str | None:
    if exc.validator != "additionalProperties" or not isinstance(exc.instance, dict):
        return None
    known = list((exc.schema or {}).get("properties") or {})
    unexpected = [k for k in exc.instance if k not in known]
    for word in unexpected:
        hint = did_you_mean(word, known)
        if hint:
            return hint
    return None


def _locate(tree: _Tree, path: list, doc: dict, kind: str) -> yaml.Node | None:
    """The patch's YAML node closest to ``path`` of the patched object."""
    if kind == "json":
        pointer = "/" + "/".join(str(p) for p in path)
        items = tree.node.value if isinstance(tree.node, yaml.SequenceNode) else []
        best = None
        for op, node in zip(tree.value or [], items):
            target = str(op.get("path", "")) if isinstance(op, dict) else ""
            if pointer == target or pointer.startswith(target.rstrip("/") + "/") or \
                    target.startswith(pointer):
                best = node
        return best or tree.node
    node, current = tree.node, doc
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            found = next(((k, v) for k, v in node.value if k.value == step), None)
            if found is None:
                return node
            node = found[1] if not isinstance(found[1], yaml.ScalarNode) else found[0]
            current = current.get(step) if isinstance(current, dict) else None
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            element = current[step] if isinstance(current, list) and step < len(current) else None
            node = _matching_element(node, element) or node
            current = element
        else:
            return node
    return node


def _matching_element(seq: yaml.SequenceNode, element: Any) -> yaml.Node | None:
    if not isinstance(element, dict):
        return None
    for item in seq.value:
        if not isinstance(item, yaml.MappingNode):
            continue
        pairs = {k.value: v for k, v in item.value if isinstance(v, yaml.ScalarNode)}
        for key in ("name", "mountPath", "containerPort", "port", "ip", "type", "topologyKey"):
            if key in pairs and str(element.get(key)) == pairs[key].value:
                return item
    return None
