"""The quick schema check never calls an object valid that jsonschema would reject."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from kubeforge.compiler import api_schema
from kubeforge.compiler.emit.manifests import cluster_objects, namespace_objects
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.schema_fast import compile_schema

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.kf"))


def _objects():
    for path in EXAMPLES:
        program, _ = load_program(path)
        groups = [cluster_objects(program)]
        groups += [namespace_objects(program, ns) for ns in sorted({n.name for n in program.namespaces})]
        for group in groups:
            for _what, doc, _patches, _span in group:
                yield doc


def _mutations(doc, rng: random.Random, count: int):
    """Copies of ``doc`` with one change each: a key dropped or added, a value retyped."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, item in node.items():
                walk(item, (*path, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*path, index))

    walk(doc, ())
    replacements = [None, 0, 1, True, "x", "", [], {}, ["x"], {"x": 1}, 1.5, -1]
    for _ in range(count):
        out = copy.deepcopy(doc)
        path = rng.choice(paths)
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        action = rng.randrange(3)
        if not path:
            if isinstance(out, dict):
                out["bogus"] = 1
        elif action == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == 1 and isinstance(parent[path[-1]], dict):
            parent[path[-1]]["bogus" + str(rng.randrange(3))] = rng.choice(replacements)
        else:
            parent[path[-1]] = rng.choice(replacements)
        yield out


@pytest.mark.parametrize("minor", [33, 37])
def test_quick_check_agrees_with_jsonschema(minor):
    rng = random.Random(minor)
    checked = 0
    for doc in _objects():
        found = api_schema._validator(minor, str(doc.get("apiVersion")), str(doc.get("kind")))
        if found is None:
            continue
        validator, _schema, quick = found
        for candidate in (doc, *_mutations(doc, rng, 40)):
            if quick(candidate):
                assert not list(validator.iter_errors(candidate)), candidate
                checked += 1
    assert checked > 100  # the quick path is taken for the examples' valid objects


def test_unknown_keyword_means_ask_jsonschema():
    check = compile_schema({"type": "object", "minProperties": 1}, {})
    assert not check({"a": 1})
    check = compile_schema({"type": "object", "properties": {"a": {"type": "integer"}},
                            "additionalProperties": False, "required": ["a"]}, {})
    assert check({"a": 1})
    assert not check({"a": True}) and not check({}) and not check({"a": 1, "b": 2})
