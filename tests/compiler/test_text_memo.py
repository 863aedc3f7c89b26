"""text_memo: a compile that reuses texts of the previous one writes the bytes a compile
without them writes, after any edit; keys tell apart every value a dumper tells apart."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeforge.compiler import text_memo
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit.manifests import dump_all, dump_documents
from kubeforge.compiler.state import StateDir

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)

SOURCE = """cluster fleet {
  kubernetes "1.37.2"
  endpoint "10.1.0.100:8443"
  loadbalancer keepalived-haproxy { vip 10.1.0.100  interface "eth0" }
  pki { algorithm ecdsa-p256 }
  node cp1 { address 10.1.0.11  role control-plane }
  node cp2 { address 10.1.0.12  role control-plane }
  node cp3 { address 10.1.0.13  role control-plane }
  node w1 { address 10.1.0.21  role worker }
  node w2 { address 10.1.0.22  role worker }
}

namespace shop {
  config app { MODE = "prod"  conf = "a = 1\\n\\n" }
  deployment app {
    image "registry.example.com/app:1"
    replicas 3
    env from config app
    port http 8080
    probe http "/healthz" port http
    autoscale 3..10 cpu 80%
  }
  service app -> app port http 80 to http
  deployment db { image "registry.example.com/db:1"  port 5432 }
}
"""

EDITS = {
    "image": ('"registry.example.com/app:1"', '"registry.example.com/app:2"'),
    "replicas": ('db:1"', 'db:1"  replicas 2'),
    "config": ('MODE = "prod"', 'MODE = "test"'),
    "address": ("address 10.1.0.22", "address 10.1.0.23"),
    "node": ("  node w2", "  node w3 { address 10.1.0.23  role worker }\n  node w2"),
    "workload": ("  deployment db", '  deployment web { image "nginx:1" }\n  deployment db'),
}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_gives_the_bytes_of_a_compile_without_the_memo(tmp_path, edit):
    source, state = tmp_path / "fleet.kf", tmp_path / "state"
    source.write_text(SOURCE)
    compile_file(source, tmp_path / "first", state_dir=state, now=NOW)
    assert StateDir(state).read(text_memo.PATH)  # the memo the next compile reads
    old, new = EDITS[edit]
    assert old in SOURCE
    source.write_text(SOURCE.replace(old, new, 1))
    warm = compile_file(source, tmp_path / "warm", state_dir=state, now=NOW)
    # The same state (certificates the edit made included), without the memo.
    shutil.copytree(state, tmp_path / "cold-state")
    (tmp_path / "cold-state" / text_memo.PATH).unlink()
    cold = compile_file(source, tmp_path / "cold", state_dir=tmp_path / "cold-state", now=NOW)
    assert tree(warm.root) == tree(cold.root)
    assert tree(warm.root) != tree(tmp_path / "first" / "fleet")


def test_an_unchanged_compile_reads_the_memo_and_writes_nothing(tmp_path):
    source, state = tmp_path / "fleet.kf", tmp_path / "state"
    source.write_text(SOURCE)
    compile_file(source, tmp_path / "out", state_dir=state, now=NOW)
    memo_file = state / text_memo.PATH
    before = (memo_file.read_bytes(), memo_file.stat().st_mtime_ns)
    calls = []
    real = text_memo.Memo.text

    def counting(self, make, doc):
        calls.append(self.key(make, doc) in self.found)
        return real(self, make, doc)

    pytest.MonkeyPatch.setattr(pytest.MonkeyPatch(), text_memo.Memo, "text", counting)
    try:
        compile_file(source, tmp_path / "out", state_dir=state, now=NOW)
    finally:
        text_memo.Memo.text = real
    assert calls and all(calls)
    assert (memo_file.read_bytes(), memo_file.stat().st_mtime_ns) == before
    assert memo_file.stat().st_mode & 0o777 == 0o600


def _yaml(doc) -> str:
    return repr(doc)


def test_keys_tell_apart_what_a_dumper_tells_apart():
    memo = text_memo.Memo({}, b"", b"salt")
    shared = {"a": 1}
    docs = [1, True, "1", 1.0, None, "", [], {}, (), [1], (1,), {"1": 1}, {1: 1},
            {"a": 1, "b": 2}, {"b": 2, "a": 1}, [shared, shared], [{"a": 1}, {"a": 1}]]
    keys = [memo.key(_yaml, doc) for doc in docs]
    assert len(set(keys)) == len(docs)
    assert memo.key(_yaml, {"a": [1]}) == memo.key(_yaml, {"a": [1]})
    assert text_memo.Memo({}, b"", b"other").key(_yaml, 1) != memo.key(_yaml, 1)
    assert memo.key(dump_all, 1) != memo.key(_yaml, 1)
    assert memo.key(_yaml, [lambda: 1]) is None  # not kept: made every time


def test_a_closure_is_refused(tmp_path):
    width = 3
    with text_memo.kept_in(StateDir(tmp_path)):
        with pytest.raises(TypeError):
            text_memo.text(lambda doc: str(doc)[:width], "abcdef")


@pytest.mark.parametrize("damage", ["truncated", "other-code", "garbage", "not-utf8"])
def test_a_damaged_memo_is_an_empty_one(tmp_path, damage):
    state = StateDir(tmp_path)
    with text_memo.kept_in(state):
        assert text_memo.text(_yaml, {"x": 1}) == "{'x': 1}"
    data = state.read(text_memo.PATH)
    data = {"truncated": data[:-3], "other-code": data.replace(text_memo.code_version(), b"x" * 32),
            "garbage": b"\0" * 40,
            "not-utf8": data[:-len("{'x': 1}")] + b"\xff" * len("{'x': 1}")}[damage]
    state.write(text_memo.PATH, data)
    with text_memo.kept_in(state) as memo:
        assert memo.found == {} or damage == "not-utf8"
        assert text_memo.text(_yaml, {"x": 1}) == "{'x': 1}"
    assert state.read(text_memo.PATH) != data  # what was made again was kept
    with text_memo.kept_in(state) as memo:
        assert list(memo.found) == [memo.key(_yaml, {"x": 1})]
        assert text_memo.text(_yaml, {"x": 1}) == "{'x': 1}"
        assert not memo.changed


_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(
    ["x\n", "x\n\n", "a\nb\n\n\n", " lead\n", "tail  \n", "...", "---", "a: b", "\t\n", ""]))
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), _TEXT)
_DOCS = st.lists(st.dictionaries(_TEXT, st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=12),
    max_size=4), min_size=1, max_size=4)


@settings(max_examples=500, deadline=None)
@given(_DOCS)
def test_documents_one_at_a_time_make_the_stream(docs):
    assert dump_documents(docs) == dump_all(docs)
