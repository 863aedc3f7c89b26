"""json_indent.dumps writes json.dumps(indent=N, sort_keys=True)'s text, byte for byte."""

from __future__ import annotations

import enum
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeforge.compiler.json_indent import dumps

_ODD = ["", "é", "\u2028", "\x00", '"', "\\", "\ud800", "\U0001f600"]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=12),
                     st.sampled_from(_ODD))
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=40)


@settings(max_examples=1000, deadline=None)
@given(_DATA, st.sampled_from([0, 1, 2, 4]))
def test_same_text_as_json(data, indent):
    assert dumps(data, indent=indent) == json.dumps(data, indent=indent, sort_keys=True)


class Color(enum.IntEnum):
    RED = 1


def test_what_it_does_not_model_goes_to_json():
    for data in [{"f": 1.5}, {"nan": float("nan")}, [Color.RED], {1: "int key"}, {"a": {2: 3}},
                 {"b": [1, 2.0]}]:
        assert dumps(data) == json.dumps(data, indent=2, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(_DATA, max_size=4), st.sampled_from([1, 2, 4]))
def test_a_list_item_at_a_time_gives_the_text_of_the_whole(items, indent):
    whole = dumps({"items": items}, indent=indent)
    parts = [dumps(item, indent=indent, level=2) for item in items]
    pad = " " * indent
    body = ("[\n" + pad * 2 + f",\n{pad * 2}".join(parts) + "\n" + pad + "]") if parts else "[]"
    assert whole == "{\n" + pad + '"items": ' + body + "\n}"


def test_deeper_text_of_what_goes_to_json():
    data = {"f": [1.5, {"g": "a\nb"}], "e": Color.RED}
    assert dumps(data, level=2) == json.dumps(data, indent=2, sort_keys=True).replace("\n", "\n    ")
