"""A quick yes-or-don't-know answer to "is this object valid for its schema?".

jsonschema's validator spends about 2 ms on a Deployment (it resolves every ``$ref`` through
the registry and builds a validator per level); a big file has tens of thousands of objects,
nearly all of them valid. :func:`compile_schema` turns a strict kubernetes-validate schema
into nested closures that answer True only when jsonschema would report no error, and False
for anything else: an error, a keyword it does not know, a value type it does not model.
False sends the object to jsonschema, so messages and paths stay jsonschema's own.

Modelled keywords (Draft 2020-12, no format checker, as :mod:`api_schema` builds it):
``type``, ``$ref`` (to the definitions, by name), ``properties``, ``additionalProperties``,
``required``, ``items``, ``enum``, ``oneOf``; ``format`` is an annotation there, and
``description``, ``x-kubernetes-*`` and the schema's own ``$schema``/``$id``/``$defs`` are
not assertions. Any other keyword makes the whole schema "don't know".
"""

from __future__ import annotations

from typing import Any, Callable

Check = Callable[[Any], bool]

_IGNORED = frozenset({"description", "format", "$schema", "$id", "$defs"})


class Unknown(Exception):
    """The schema uses something this module does not model."""


def _never(_value: Any) -> bool:
    return False


def _always(_value: Any) -> bool:
    return True


def _is_integer(value: Any) -> bool:
    # jsonschema also takes an integral float; a float here is rare, so leave it to jsonschema.
    return type(value) is int


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "integer": _is_integer,
    "number": lambda v: type(v) is int,  # floats go to jsonschema, as above
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


class Compiler:
    """Closures for the schemas of one definitions file, each compiled once (definitions
    refer to themselves: JSONSchemaProps)."""

    def __init__(self, defs: dict[str, dict]) -> None:
        self.defs = defs
        self.done: dict[int, Check] = {}
        self.keep: list[dict] = []  # the compiled schemas stay alive, so their ids stay theirs

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unknown(repr(schema)[:40])
        key = id(schema)
        found = self.done.get(key)
        if found is not None:
            return found
        cell: list[Check] = []
        # A placeholder first: a schema that refers back to itself finds it while compiling.
        self.done[key] = lambda v: cell[0](v)
        self.keep.append(schema)
        check = self._build(schema)
        cell.append(check)
        self.done[key] = check
        return check

    def _build(self, schema: dict) -> Check:
        checks: list[Check] = []
        for word in schema:
            if word in _IGNORED or word.startswith("x-kubernetes-") or word in (
                    "type", "$ref", "properties", "additionalProperties", "required", "items",
                    "enum", "oneOf"):
                continue
            raise Unknown(word)
        if "type" in schema:
            checks.append(self._type(schema["type"]))
        if "enum" in schema:
            checks.append(self._enum(schema["enum"]))
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if not schema["$ref"].endswith("#/$defs/" + name) or name not in self.defs:
                raise Unknown(schema["$ref"])
            checks.append(self.compile(self.defs[name]))
        if any(w in schema for w in ("properties", "additionalProperties", "required")):
            checks.append(self._object(schema))
        if "items" in schema:
            checks.append(self._items(schema["items"]))
        if "oneOf" in schema:
            subs = [self.compile(s) for s in schema["oneOf"]]
            checks.append(lambda v: sum(1 for s in subs if s(v)) == 1)
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    @staticmethod
    def _type(kinds: Any) -> Check:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if any(n not in _TYPES for n in names):
            raise Unknown(str(kinds))
        tests = [_TYPES[n] for n in names]
        if len(tests) == 1:
            return tests[0]
        return lambda v: any(t(v) for t in tests)

    @staticmethod
    def _enum(choices: list) -> Check:
        # Strings and null only: jsonschema tells 1 from True and 1.0, `in` does not.
        if any(c is not None and type(c) is not str for c in choices):
            raise Unknown("enum")
        allowed = frozenset(choices)
        return lambda v: (v is None or type(v) is str) and v in allowed

    def _object(self, schema: dict) -> Check:
        props = {k: self.compile(s) for k, s in (schema.get("properties") or {}).items()}
        extra = self.compile(schema.get("additionalProperties", True))
        required = tuple(schema.get("required") or ())

        def check(value: Any) -> bool:
            if type(value) is not dict:
                return True  # the keywords apply to objects only (`type` says the rest)
            for key in required:
                if key not in value:
                    return False
            for key, item in value.items():
                sub = props.get(key, extra)
                if not sub(item):
                    return False
            return True

        return check

    def _items(self, items: Any) -> Check:
        sub = self.compile(items)

        def check(value: Any) -> bool:
            if type(value) is not list:
                return True
            for item in value:
                if not sub(item):
                    return False
            return True

        return check


def compile_schema(schema: dict, defs: dict[str, dict]) -> Check:
    """A check of ``schema`` that says True only when jsonschema finds no error, or one that
    always says False (ask jsonschema) when the schema uses something not modelled here."""
    try:
        return Compiler(defs).compile(schema)
    except Unknown:
        return _never
