"""``json.dumps(data, indent=N, sort_keys=True)``, the same text, faster for plain data.

With ``indent`` set the json module encodes with its pure-Python generator chain (a generator
per container, a yield per piece), and ``plan.json`` and ``files.json`` of a 1,000-node build
are millions of pieces. :func:`dumps` writes the same text with one recursive function that
appends to a list and escapes strings with the json module's own C escaper. Anything but
dicts with str keys, lists, tuples, str, int, bool and None (a float, an int subclass such as
an enum) goes to ``json.dumps`` whole, so the text never depends on which path made it.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _string
from typing import Any


class _Other(Exception):
    """Something only json.dumps encodes as it should."""


def dumps(data: Any, *, indent: int = 2, level: int = 0) -> str:
    """``level``: the text of ``data`` as it stands that many levels deep in a bigger
    document (every line after the first indented ``level * indent`` more), so a big list
    can be written an item at a time."""
    out: list[str] = []
    newline = "\n" + " " * (indent * level)
    try:
        _encode(data, out, newline, " " * indent)
    except (_Other, RecursionError, TypeError):  # json.dumps encodes it, or says why not
        return json.dumps(data, indent=indent, sort_keys=True).replace("\n", newline)
    return "".join(out)


def _encode(value: Any, out: list[str], newline: str, step: str) -> None:
    kind = type(value)
    if kind is str:
        out.append(_string(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return
        inner = newline + step
        separator = "{" + inner
        for key in sorted(value):  # json's sort_keys sorts the items; keys are unique
            if type(key) is not str:
                raise _Other
            out.append(separator)
            out.append(_string(key))
            out.append(": ")
            _encode(value[key], out, inner, step)
            separator = "," + inner
        out.append(newline + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        inner = newline + step
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _encode(item, out, inner, step)
            separator = "," + inner
        out.append(newline + "]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    else:
        raise _Other
