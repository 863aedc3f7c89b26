"""Random and mutated sources never raise anything but kubeforge's own errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeforge.compiler.lower import load_program
from kubeforge.dsl.formatter import format_source
from kubeforge.errors import KubeforgeError
from tests.conftest import EXAMPLES
from tests.dsl.test_grammar import CASES

SEEDS = [p.read_text() for p in sorted(EXAMPLES.glob("*.kf"))] + list(CASES.values())
WORDS = ["cluster", "namespace", "deployment", "statefulset", "service", "->", "{", "}", "=",
         "image", "replicas", "port", "env", "from", "config", "secret", "probe", "http",
         "autoscale", "volume", "at", "role", "allow", "on", "user", "bind", "in", "template",
         "extends", "kubernetes", '"1.37.2"', "node", "address", "10.0.0.1", "10.0.0.0/8",
         "100m", "64Mi", "3..5", "80%", "true", "web", "db", '"x"', "#c\n", "\n", "pods/log",
         "*", "1", "0", "99999", "networkpolicy", "pods", "ingress", "route", '"/"', "labels"]

SETTINGS = settings(max_examples=1100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_DIR = Path(tempfile.mkdtemp(prefix="kf-fuzz-"))


def _check(text: str) -> None:
    path = _DIR / "fuzz.kf"
    path.write_text(text, encoding="utf-8")
    try:
        load_program(path)
    except KubeforgeError:
        pass
    try:
        once = format_source(text)
    except KubeforgeError:
        return
    assert format_source(once) == once


@SETTINGS
@given(st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))
def test_random_token_soup(text):
    _check(text)


@SETTINGS
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_sources(seed, data):
    text = seed
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["delete", "duplicate", "insert", "swap-token"]))
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 40)))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + data.draw(st.sampled_from(WORDS + ["\x00", "é", "'", "\\"])) + text[i:]
        else:
            text = text[:i] + " " + data.draw(st.sampled_from(WORDS)) + " " + text[j:]
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode(text):
    _check(text)
