"""The syntax tree: statements, clauses and literal values, each with its source span.

The grammar fixes the shape of every statement; this tree keeps that shape without one class
per keyword. A statement is a :class:`Node` whose ``kind`` is its grammar rule, whose ``args``
are its literal values and clauses in source order, and whose ``body`` holds the statements of
its ``{ ... }`` block (or is None when it has none). The compiler's lowering pass turns these
nodes into the typed IR.
"""

from __future__ import annotations

import ipaddress
import textwrap
from dataclasses import dataclass
from typing import Iterator, Union

from kubeforge.dsl.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Value:
    """One literal token: ``kind`` is its terminal (STRING, INT, NAME, CIDR, ...)."""

    kind: str
    text: str
    span: Span

    @property
    def py(self) -> object:
        """The literal as a Python value (strings unquoted, numbers as int, booleans as bool).

        Never ``str()`` this for a string-valued position: ``str(True)`` is ``True``, which no
        Kubernetes component reads as a boolean. ``str(value)`` (``values.text``) is the text."""
        if self.kind == "STRING":
            return unquote(self.text)
        if self.kind == "INT":
            return int(self.text)
        if self.kind == "BOOL":
            return self.text == "true"
        return self.text

    def __str__(self) -> str:
        """The literal as a string-valued position stores it: strings unquoted, every other
        literal exactly as written (`true` stays `true`, `007` stays `007`)."""
        return unquote(self.text) if self.kind == "STRING" else self.text


Arg = Union[Value, "Node"]


@dataclass(frozen=True, slots=True)
class Node:
    """A statement or a clause of one."""

    kind: str
    args: tuple[Arg, ...]
    body: tuple["Node", ...] | None
    span: Span

    # -- small readers the lowering pass uses ---------------------------------------------
    def values(self) -> list[Value]:
        return [a for a in self.args if isinstance(a, Value)]

    def value(self, index: int = 0) -> Value:
        return self.values()[index]

    def clauses(self, kind: str) -> list["Node"]:
        return [a for a in self.args if isinstance(a, Node) and a.kind == kind]

    def clause(self, kind: str) -> "Node | None":
        found = self.clauses(kind)
        return found[0] if found else None

    def first_clause(self) -> "Node | None":
        return next((a for a in self.args if isinstance(a, Node)), None)

    def stmts(self, *kinds: str) -> Iterator["Node"]:
        for stmt in self.body or ():
            if not kinds or stmt.kind in kinds:
                yield stmt


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed source file."""

    path: str
    items: tuple[Node, ...]


def unquote(text: str) -> str:
    if text.startswith('"""'):
        return unblock(text)
    body = text[1:-1]
    if "\\" not in body:
        return body  # no escape: the loop below would copy it a character at a time
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def unblock(text: str) -> str:
    """A block string's value: verbatim, without the line break after the opening quotes,
    with the closing quotes' line as the end of the last line, and dedented, so the text
    can be indented with the statement around it."""
    body = text[3:-3]
    if body.startswith("\r\n"):
        body = body[2:]
    elif body.startswith("\n"):
        body = body[1:]
    head, sep, last = body.rpartition("\n")
    if sep and not last.strip(" \t"):
        body = head + "\n"
    return textwrap.dedent(body)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
