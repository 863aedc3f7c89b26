"""The fast path gives Lark's AST, spans included, or hands the input back to Lark."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.compile import source as fleet_source
from kubeforge.dsl import fastparse, parser
from kubeforge.dsl.diagnostics import DiagnosticError
from kubeforge.dsl.regex_first import first_chars, may_start_with
from tests.conftest import EXAMPLES
from tests.dsl.test_fuzz import WORDS
from tests.dsl.test_grammar import CASES

HERE = EXAMPLES.parent / "tests" / "dsl" / "errors"
SEEDS = [p.read_text() for p in sorted(EXAMPLES.glob("*.kf"))] + list(CASES.values())
SETTINGS = settings(max_examples=600, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BLANKS = [" ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", " # note\n", "#x\n  ", "\n# }\n", "\f"]


def tables() -> fastparse.Tables:
    found = fastparse.tables_for(parser.lark_parser(False), parser._NUMERIC, parser.MAX_NESTING)
    assert found is not None, "the fast path is off: parse() would always use Lark"
    return found


def same_as_lark(text: str, filename: str = "t.kf") -> str:
    """'same', or 'both refuse' (Lark's diagnostic; the fast path handed it over)."""
    try:
        slow = parser.parse_with_lark(text, filename)
    except DiagnosticError:
        with pytest.raises(fastparse.Fallback):
            fastparse.parse_module(text, filename, tables())
        return "both refuse"
    try:
        fast = fastparse.parse_module(text, filename, tables())
    except fastparse.Fallback:  # allowed (parse() then uses Lark), but not for these inputs
        assert len(text) > 200_000 or _long_number(text), "the fast path gave up on valid input"
        return "fallback"
    assert fast == slow
    assert repr(fast) == repr(slow)  # the same classes all the way down (str, not lark.Token)
    return "same"


def _long_number(text: str) -> bool:
    return any(len(run) > 18 for run in "".join(c if c.isdigit() else " " for c in text).split())


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.kf")) + sorted(HERE.glob("*.kf")),
                         ids=lambda p: p.name)
def test_examples_and_error_files(path):
    outcome = same_as_lark(path.read_text(), str(path))
    assert outcome == "same" or (path.parent == HERE and outcome == "both refuse")


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_grammar_case(name):
    assert same_as_lark(CASES[name]) == "same"


def test_a_fleet_file():
    assert same_as_lark(fleet_source(7, 12)) == "same"


def test_parse_takes_the_fast_path(monkeypatch):
    text = (EXAMPLES / "ha-cluster.kf").read_text()
    monkeypatch.setattr(parser, "parse_with_lark", lambda *a: pytest.fail("Lark was used"))
    assert parser.parse(text, "x.kf").items


def test_errors_still_come_from_lark():
    # Too deep, a long number, a syntax error: the fast path gives up, Lark says why.
    deep = "namespace a { deployment w { " + "resources { limits " * 40 + "{" + "}" * 42
    for text, code in [(deep, "E002"), ("cluster c { node n { cpus 1234567890123456789012 } }",
                                        "E105"), ("cluster c { replica 3 }", "E001")]:
        with pytest.raises(fastparse.Fallback):
            fastparse.parse_module(text, "t.kf", tables())
        with pytest.raises(DiagnosticError) as err:
            parser.parse(text, "t.kf")
        assert err.value.diagnostics[0].code == code


def test_blank_space_is_skipped_before_scanning():
    assert tables().skip is not None  # the grammar's terminals cannot start with a blank


def test_first_chars():
    assert first_chars(r"(?:[ \t\f\r\n])+") == "\t\n\x0c\r "
    assert first_chars(r"#[^\n]*|a?b") == "#ab"
    assert first_chars(r"\s+") is None  # a class: not enumerated
    assert first_chars(r"a*") is None  # may be empty


def test_may_start_with():
    assert may_start_with(r"[ \t]+", " ")
    assert may_start_with(r"#[^\n]*", "#")
    assert not may_start_with(r"[A-Za-z_][A-Za-z0-9_.-]*", " \t\n#")
    assert may_start_with(r"a*#", "#")  # the repeat may be empty
    assert not may_start_with(r"\d+(\.\d+)?[A-Za-z]+", " #")
    assert may_start_with(r"[^x]", " ")
    assert may_start_with(r"\s", " ")  # not analysed: "maybe"
    assert may_start_with(r"(?=a)", " ")  # not analysed: "maybe"


def _respaced(text: str, rnd: random.Random) -> str:
    """Every run of blanks replaced with random blank space and comments (outside strings
    too, mostly: inside one, a line break makes the file invalid, which is tested too)."""
    out, i = [], 0
    while i < len(text):
        if text[i] in " \n" and rnd.random() < 0.5:
            out.append(rnd.choice(BLANKS))
            while i < len(text) and text[i] in " \n":
                i += 1
            out.append(" " if rnd.random() < 0.5 else "\n")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 2**32))
def test_random_valid_layouts(seed, salt):
    assert same_as_lark(_respaced(seed, random.Random(salt))) in ("same", "both refuse")


@SETTINGS
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_sources(seed, data):
    text = seed
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 40)))
        op = data.draw(st.sampled_from(["delete", "duplicate", "insert", "swap"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            word = data.draw(st.sampled_from(WORDS + BLANKS + ["\x00", "é", "'", '"""a\n b"""']))
            text = text[:i] + word + text[j if op == "swap" else i:]
    same_as_lark(text)


@SETTINGS
@given(st.lists(st.sampled_from(WORDS + BLANKS), max_size=60).map(" ".join))
def test_token_soup(text):
    same_as_lark(text)


def test_stored_tables_parse_as_fresh_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_CACHE_DIR", str(tmp_path))
    parser.fast_tables.cache_clear()
    try:
        built = parser.fast_tables()
        [stored_file] = tmp_path.glob("fastparse-*.pickle")
        parser.fast_tables.cache_clear()
        stored = parser.fast_tables()
    finally:
        parser.fast_tables.cache_clear()
    assert stored is not built and stored_file.stat().st_size > 0
    for text in [p.read_text() for p in sorted(EXAMPLES.glob("*.kf"))] + [fleet_source(5, 5)]:
        assert fastparse.parse_module(text, "t", stored) == fastparse.parse_module(text, "t", built)
