"""The stored parser parses exactly as a freshly built one, and is never used stale."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from kubeforge.dsl import parser_cache
from kubeforge.dsl.parser import GRAMMAR

ROOT = Path(__file__).resolve().parents[2]
GRAMMAR_PATH = ROOT / "dsl" / GRAMMAR
OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True,
               maybe_placeholders=False, keep_all_tokens=False)
SOURCES = sorted(ROOT.glob("examples/**/*.kf"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def shape(node):
    """Everything a parse result tells: rule names, token types, texts and positions."""
    if isinstance(node, Token):
        return (node.type, str(node), node.line, node.column, node.end_line, node.end_column)
    assert isinstance(node, Tree)
    meta = node.meta
    return (str(node.data), getattr(meta, "line", None), getattr(meta, "column", None),
            getattr(meta, "end_line", None), getattr(meta, "end_column", None),
            tuple(shape(c) for c in node.children))


def failure(parser: Lark, text: str):
    try:
        parser.parse(text)
    except UnexpectedInput as exc:
        return (type(exc).__name__, getattr(exc, "line", None), getattr(exc, "column", None),
                sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()))
    return None


def test_the_stored_parser_parses_as_a_fresh_one(cache):
    built = parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS)
    [stored_file] = cache.iterdir()
    stored = parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS)
    assert stored is not built and parser_cache._read(stored_file) is not None
    fresh = Lark.open(str(GRAMMAR_PATH), **OPTIONS)
    assert SOURCES
    for source in SOURCES:
        text = source.read_text()
        assert shape(stored.parse(text)) == shape(fresh.parse(text)), source
    for bad in ["cluster c {", "cluster c { replica 3 }", "namespace 'x' {}", "node a { address }",
                "cluster c { node n { role control-plane } } }", "deployment d { image 3 }"]:
        assert failure(stored, bad) == failure(fresh, bad) is not None, bad


def test_stored_patterns_are_what_re_compiles(cache):
    parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS)
    stored = parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS)
    patterns = [p for lexer in stored.parser.lexer.lexers.values() for p in lexer.scanner._mres]
    assert patterns
    for pattern in patterns:
        assert pattern == re.compile(pattern.pattern, pattern.flags)


def test_a_changed_grammar_or_option_is_another_file(cache):
    text = GRAMMAR_PATH.read_text()
    same = parser_cache.cache_file(text, OPTIONS)
    assert parser_cache.cache_file(text, OPTIONS) == same
    assert parser_cache.cache_file(text + "\n// changed\n", OPTIONS) != same
    assert parser_cache.cache_file(text, {**OPTIONS, "keep_all_tokens": True}) != same
    assert same.parent == cache


def test_an_unusable_file_is_rebuilt(cache):
    path = parser_cache.cache_file(GRAMMAR_PATH.read_text(), OPTIONS)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")
    assert isinstance(parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS), Lark)
    assert parser_cache._read(path) is not None  # written again, whole


def test_a_file_others_may_write_is_not_trusted(cache):
    parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS)
    [path] = cache.iterdir()
    os.chmod(path, 0o666)
    assert parser_cache._read(path) is None


def test_an_unwritable_cache_still_parses(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("KUBEFORGE_CACHE_DIR", str(blocked / "cache"))  # under a regular file
    parser = parser_cache.load_parser(GRAMMAR_PATH, **OPTIONS)
    assert shape(parser.parse(SOURCES[0].read_text()))


def test_old_files_of_a_kind_go_and_nothing_else(cache):
    from kubeforge import usercache

    cache.mkdir()
    olds = [cache / f"parser-{n:040x}.pickle" for n in range(5)]
    others = [cache / "parser-notes.txt", cache / f"schema-checks-{0:040x}.json", cache / "bundles"]
    for i, path in enumerate(olds + others[:2]):
        path.write_text("")
        os.utime(path, ns=(i * 10**9, i * 10**9))
    others[2].mkdir()
    usercache.write_own(cache / f"parser-{9:040x}.pickle", b"new", keep=2)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"parser-{9:040x}.pickle", olds[4].name, *(p.name for p in others)])
