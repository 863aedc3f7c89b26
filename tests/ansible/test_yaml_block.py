"""yaml_block writes what PyYAML's playbook dumper writes, byte for byte."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
import yaml

from kubeforge.compiler.build import run_emitters
from kubeforge.compiler.emit import yaml_block
from kubeforge.compiler.emit.ansible import (WIDTH, _Dumper, dump_pyyaml, inventory, plan_of,
                                             playbook)
from kubeforge.compiler.lower import load_program
from kubeforge.dsl.diagnostics import DiagnosticError

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.kf"))

#: Strings that take each of PyYAML's paths: plain, quoted because they read as another type,
#: single and double quoted, folded at the width, with indicators, breaks and odd characters.
WORDS = ["", " ", "a", "true", "no", "null", "~", "1", "-1", "0x1f", "1.5", "1e3", "2026-01-01",
         "- a", "a: b", "a #b", "#x", "*x", "&x", "!x", "|", ">", "%x", "@x", "`x", "'", '"',
         "{{ x }}", "[a]", "{a}", "a,b", "?", ":", "a:", " lead", "trail ", "two  spaces",
         "line\nbreak", "end\n", "\n", "tab\there", "é", "\u2028", "\x85", "\x00", "\ufeff",
         "\U0001f600", "---", "...", "=", "<<", "a" * 130, "word " * 40, "x" * 200 + " y",
         "sh -c 'for d in \"$@\"; do [ -d \"$d\" ] || install -d \"$d\"; done' sh /a /b",
         "k" * 99, "a\\b", "/etc/kubernetes/pki/ca.crt"]


def _random_doc(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice([*WORDS, 0, 7, -3, 10**20, True, False, None,
                           rng.choice(WORDS) + " " + rng.choice(WORDS)])
    if roll < 0.75:
        return {rng.choice(WORDS[2:40]) + str(i): _random_doc(rng, depth + 1)
                for i in range(rng.randrange(4))}
    return [_random_doc(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_shapes_match_pyyaml():
    rng = random.Random(17)
    modelled = 0
    for _ in range(3000):
        doc = _random_doc(rng)
        if type(doc) not in (dict, list):
            doc = {"root": doc}
        for width in (WIDTH, 40):
            got = yaml_block.dump(doc, width=width)
            if got is not None:
                modelled += 1
                want = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                 width=width, explicit_start=True)
                assert got == want, doc
    assert modelled > 5000


def test_shared_objects_and_odd_types_go_to_pyyaml():
    shared = {"a": 1}
    assert yaml_block.dump({"x": shared, "y": shared}, width=WIDTH) is None
    assert yaml_block.dump({"x": 1.5}, width=WIDTH) is None
    assert yaml_block.dump({"": 1}, width=WIDTH) is None
    assert yaml_block.dump("text", width=WIDTH) is None


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_playbooks_match_pyyaml(path, tmp_path):
    program, _ = load_program(path)
    if program.cluster is None:
        pytest.skip("no cluster")
    try:
        ctx = run_emitters(program, tmp_path / "state",
                           dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    except DiagnosticError:
        pytest.skip("needs what the example names (a bundle)")
    plan = plan_of(ctx)
    plays, files = playbook(plan)
    fast = 0
    for doc in (inventory(plan), plays, *files.values()):
        got = yaml_block.dump(doc, width=WIDTH)
        assert got is None or got == dump_pyyaml(doc)
        fast += got is not None
    assert fast > len(files)  # only the inventory (anchors for a host in two groups) is not
