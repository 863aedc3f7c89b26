"""parse_cache: a big file's tree comes back from the cache directory equal to a parse of
its text, spans and file name included; nothing else is ever stored or returned."""

from __future__ import annotations

import pytest

from kubeforge.dsl import parse_cache, parser
from kubeforge.dsl.diagnostics import DiagnosticError

ONE = 'namespace n{i} {{\n  deployment app {{ image "registry.example.com/app:{i}"  port 80 }}\n}}\n'


def big(extra: str = "") -> str:
    text = "".join(ONE.format(i=i) for i in range(parse_cache.MIN_CHARS // 60)) + extra
    assert len(text) >= parse_cache.MIN_CHARS
    return text


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_CACHE_DIR", str(tmp_path))
    return tmp_path


def stored(cache_dir) -> list[str]:
    return sorted(p.name for p in cache_dir.glob("parse-*"))


def test_a_big_file_is_parsed_twice_then_read_back(cache_dir, monkeypatch):
    text = big()
    first = parser.parse(text, "fleet.kf")
    assert stored(cache_dir) == []  # a text checked once and then edited: nothing to store
    assert parser.parse(text, "fleet.kf") == first
    assert len(stored(cache_dir)) == 1

    def no_parse(*_):
        raise AssertionError("parsed again")
    monkeypatch.setattr(parser, "_parse", no_parse)
    again = parser.parse(text, "fleet.kf")
    assert again == first
    assert again.items[-1].span == first.items[-1].span
    # Another name or another text is another tree.
    with pytest.raises(AssertionError):
        parser.parse(text, "other.kf")
    with pytest.raises(AssertionError):
        parser.parse(text + "\n", "fleet.kf")


def test_an_edit_is_parsed_and_its_spans_are_its_own(cache_dir):
    text = big()
    parser.parse(text, "fleet.kf")
    parser.parse(text, "fleet.kf")
    edited = "# a comment moves every line\n" + text
    module = parser.parse(edited, "fleet.kf")
    assert module == parser._parse(edited, "fleet.kf")
    assert module.items[0].span.line == 2


def test_small_files_and_files_with_errors_are_not_stored(cache_dir):
    for _ in range(2):
        parser.parse(ONE.format(i=1), "small.kf")
        with pytest.raises(DiagnosticError):
            parser.parse(big("namespace broken {\n"), "broken.kf")
    assert stored(cache_dir) == []


@pytest.mark.parametrize("damage", [b"", b"not a pickle", None])
def test_a_damaged_or_foreign_entry_is_parsed_again(cache_dir, damage):
    import pickle

    text = big()
    first = parser.parse(text, "fleet.kf")
    parser.parse(text, "fleet.kf")
    entry = cache_dir / stored(cache_dir)[0]
    # None: a valid pickle of something else than this file's tree.
    entry.write_bytes(pickle.dumps(["x"]) if damage is None else damage)
    assert parser.parse(text, "fleet.kf") == first
