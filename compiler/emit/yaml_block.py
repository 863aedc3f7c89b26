"""PyYAML's block-style output of plain data, without PyYAML's representer, serializer and
event machinery.

The playbooks use a dumper that indents sequences under their key (ansible-lint's yamllint
wants it) and libyaml cannot do that, so every task file went through the pure-Python dumper:
most of a big cluster's compile time. :func:`dump` walks the data itself and makes the calls
PyYAML's ``Emitter`` would make (``write_indent``, ``write_indicator``, ``write_plain``, ...)
on a real ``Emitter``, with the same indents and contexts, so line folding, quoting and
escapes stay PyYAML's own and the text is the same byte for byte.

It models what ``yaml.dump(doc, Dumper=<SafeDumper with indented sequences>, sort_keys=False,
default_flow_style=False, explicit_start=True, width=W)`` does for dicts with string keys,
lists, strings, ints, bools and None; for anything else (another type, a dict or list met
twice, which PyYAML writes as an anchor, a key PyYAML would write as ``? key``) it returns
None and the caller dumps with PyYAML.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import yaml
from yaml.emitter import Emitter

_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.SafeDumper(io.StringIO())  # allow_unicode=None, as the dumps leave it


class _Unsupported(Exception):
    pass


@functools.lru_cache(maxsize=65536)
def analysis(scalar: str):
    """PyYAML's scalar analysis: a pure function of the string (allow_unicode never changes
    here), and the same strings recur on every host of a big cluster."""
    return yaml.SafeDumper.analyze_scalar(_RESOLVER, scalar)


@functools.lru_cache(maxsize=65536)
def _plain_is_str(text: str) -> bool:
    """Whether ``text`` written plain reads back as a string (else PyYAML quotes it)."""
    return _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR


#: Scalar writes kept by _Writer.replay (the same texts recur on every host), and how many.
_WRITTEN: dict[tuple, tuple] = {}
_WRITTEN_MAX = 20_000


class _Out:
    __slots__ = ("parts", "write")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.write = self.parts.append


class _Writer:
    def __init__(self, width: int) -> None:
        self.out = _Out()
        self.e = Emitter(self.out, width=width)
        self.seen: set[int] = set()
        self.width = width

    def node(self, value: Any, *, root: bool = False, sequence: bool = False,
             mapping: bool = False, simple_key: bool = False) -> None:
        """Emitter.expect_node for block style (flow_level 0), no anchors, no tags."""
        e = self.e
        e.root_context, e.sequence_context = root, sequence
        e.mapping_context, e.simple_key_context = mapping, simple_key
        kind = type(value)
        if kind is dict or kind is list:
            if id(value) in self.seen:
                raise _Unsupported("an alias")
            self.seen.add(id(value))
            if not value:
                self.empty("{}" if kind is dict else "[]")
            elif kind is dict:
                self.mapping(value)
            else:
                self.sequence(value)
        elif kind is str:
            self.scalar(value, _plain_is_str(value))
        elif value is None:
            self.scalar("null", True)
        elif kind is bool:
            self.scalar("true" if value else "false", True)
        elif kind is int:
            self.scalar(str(value), True)
        else:
            raise _Unsupported(kind.__name__)

    def empty(self, pair: str) -> None:
        # expect_flow_mapping / expect_flow_sequence meeting the end event at once.
        e = self.e
        e.write_indicator(pair[0], True, whitespace=True)
        e.write_indicator(pair[1], False)

    def mapping(self, value: dict) -> None:
        e = self.e
        outer = e.indent
        e.indent = 0 if outer is None else outer + e.best_indent  # increase_indent(flow=False)
        for key, item in value.items():
            # check_simple_key: a scalar, not empty or multiline, under 128 with its tag.
            if type(key) is not str or not key or len(key) > 100 or analysis(key).multiline:
                raise _Unsupported("a complex key")
            e.write_indent()
            self.node(key, mapping=True, simple_key=True)
            e.write_indicator(":", False)
            self.node(item, mapping=True)
        e.indent = outer

    def sequence(self, value: list) -> None:
        e = self.e
        outer = e.indent
        # The dumper's increase_indent never makes a sequence indentless.
        e.indent = 0 if outer is None else outer + e.best_indent
        for item in value:
            e.write_indent()
            e.write_indicator("-", True, indention=True)
            self.node(item, sequence=True)
        e.indent = outer

    def scalar(self, text: str, implicit: bool) -> None:
        """expect_scalar: choose_scalar_style, then process_scalar."""
        e = self.e
        outer = e.indent
        e.indent = e.best_indent if outer is None else outer + e.best_indent  # flow=True
        found = analysis(text)
        simple_key = e.simple_key_context
        split = not simple_key
        if implicit and not (simple_key and (found.empty or found.multiline)) \
                and found.allow_block_plain:
            if not found.multiline and e.column + 1 + len(text) <= e.best_width:
                # write_plain's own result when no space can fold and no break is inside:
                # the text after one space (none right after an indent).
                if not e.whitespace:
                    text = " " + text
                e.column += len(text)
                e.whitespace = e.indention = False
                self.out.write(text)
            else:
                self.replay(Emitter.write_plain, text, split)
        elif found.allow_single_quoted and not (simple_key and found.multiline):
            self.replay(Emitter.write_single_quoted, text, split)
        else:
            self.replay(Emitter.write_double_quoted, text, split)
        e.indent = outer

    def replay(self, write, text: str, split: bool) -> None:
        """``write(e, text, split)``, or what it wrote before from the same emitter state.

        PyYAML's scalar writers walk the text a character at a time in Python, and a big
        cluster's task files hold the same commands on every host. A writer's output is a
        function of the text and the emitter state it reads (column, indent, whether the last
        character was blank or an indent, the root context, open_ended), the rest being
        fixed per width; the same call from the same state appends the same pieces and
        leaves the same state, so the pieces and the state after are kept and reused."""
        e = self.e
        key = (write, text, split, self.width, e.column, e.indent, e.whitespace, e.indention,
               e.root_context, e.open_ended)
        done = _WRITTEN.get(key)
        if done is None:
            parts = self.out.parts
            first, line = len(parts), e.line
            write(e, text, split)
            done = (tuple(parts[first:]), e.column, e.whitespace, e.indention, e.line - line,
                    e.open_ended)
            if len(_WRITTEN) >= _WRITTEN_MAX:
                _WRITTEN.clear()  # the commands of the hosts written next
            _WRITTEN[key] = done
            return
        pieces, e.column, e.whitespace, e.indention, lines, e.open_ended = done
        self.out.parts.extend(pieces)
        e.line += lines


def dump(doc: Any, *, width: int) -> str | None:
    """``doc`` as the playbook dumper writes it (one document, ``---`` first), or None when
    it holds something this module does not model."""
    if type(doc) not in (dict, list):
        return None
    writer = _Writer(width)
    e = writer.e
    e.write_indent()  # expect_document_start, explicit
    e.write_indicator("---", True)
    try:
        writer.node(doc, root=True)
        e.write_indent()  # expect_document_end
        return "".join(writer.out.parts)
    except _Unsupported:
        return None
    finally:
        e.dispose()  # its state methods refer to it: a cycle only the collector would free
