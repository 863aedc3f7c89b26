"""`kubeforge fmt`: print source in canonical layout, keeping every comment.

Layout rules (none depends on how the input was laid out, so formatting twice equals
formatting once): one statement per line, two-space indent, tokens separated by one space,
one blank line between top-level items, at most one blank line kept inside a block. A block
of at most four one-line statements is written on one line when it fits
(``resources { cpu 100m  memory 100Mi }``); a block holding a block string (triple-quoted) is
always written out. An inline selector (`affinity pods { app = "db"  tier in "a" }`) keeps its
items on the statement's line, two spaces apart. Block strings are printed verbatim: their
value is dedented, so a block string that starts and ends on its own lines is re-indented one
step inside its statement without changing its value. Comments stay on
the line of the statement they followed, or go on their own line before the next statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import functools

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from kubeforge.dsl.diagnostics import DiagnosticError, SourceMap
from kubeforge.dsl.parser import check_nesting, syntax_diagnostic

INDENT = "  "
INLINE_MAX_ITEMS = 4
INLINE_MAX_WIDTH = 92


@dataclass
class _Comments:
    items: list[Token]
    pos: int = 0

    def take_before(self, line: int) -> list[Token]:
        """Comments that start on a line before ``line`` and were not emitted yet."""
        out = []
        while self.pos < len(self.items) and self.items[self.pos].line < line:
            out.append(self.items[self.pos])
            self.pos += 1
        return out

    def take_on(self, line: int) -> Token | None:
        if self.pos < len(self.items) and self.items[self.pos].line == line:
            self.pos += 1
            return self.items[self.pos - 1]
        return None

    def any_within(self, first: int, last: int) -> bool:
        return any(first <= c.line <= last for c in self.items[self.pos:])


@dataclass
class _Printer:
    comments: _Comments
    lines: list[str] = field(default_factory=list)
    last_line: int = 0  # source line where the previous statement ended

    def leading(self, start_line: int, indent: str, top: bool) -> None:
        before = self.comments.take_before(start_line)
        first_line = before[0].line if before else start_line
        if self.lines and (top or first_line - self.last_line > 1) and self.lines[-1] != "" \
                and not self.lines[-1].endswith("{"):
            self.lines.append("")
        previous = None
        for comment in before:
            if previous is not None and comment.line - previous > 1:
                self.lines.append("")
            self.lines.append(indent + str(comment).rstrip())
            previous = comment.line
        if before and start_line - before[-1].line > 1:
            self.lines.append("")

    def statement(self, tree: Tree, indent: str, top: bool = False) -> None:
        self.leading(tree.meta.line, indent, top)
        head, body = _split(tree)
        head = [_reindent(word, indent) for word in head]
        text = indent + " ".join(head)
        if body is None:
            self._close_line(text, tree.meta.end_line)
            return
        open_tok, stmts, close_tok = body.children[0], body.children[1:-1], body.children[-1]
        inline = self._inline(stmts, open_tok.line, close_tok.line)
        if inline is not None and len(text) + len(inline) + 4 <= INLINE_MAX_WIDTH:
            self._close_line(f"{text} {{ {inline} }}" if inline else f"{text} {{}}",
                             close_tok.line)
            return
        self._close_line(text + " {", open_tok.line)
        for stmt in stmts:
            self.statement(stmt, indent + INDENT)
        for comment in self.comments.take_before(close_tok.line):
            self.lines.append(indent + INDENT + str(comment).rstrip())
        self._close_line(indent + "}", close_tok.line)

    def _close_line(self, text: str, line: int) -> None:
        # Comments inside a multi-line statement's head move above it; one on its last
        # line stays at the end.
        for comment in self.comments.take_before(line):
            self.lines.append(_indent_of(text) + str(comment).rstrip())
        trailing = self.comments.take_on(line)
        self.lines.append(text + (f"  {str(trailing).rstrip()}" if trailing else ""))
        self.last_line = line

    def _inline(self, stmts: list[Tree], first: int, last: int) -> str | None:
        if len(stmts) > INLINE_MAX_ITEMS or self.comments.any_within(first, last):
            return None
        parts = []
        for stmt in stmts:
            head, body = _split(stmt)
            if body is not None or any("\n" in word for word in head):
                return None
            parts.append(" ".join(head))
        return "  ".join(parts)


def _reindent(word: str, indent: str) -> str:
    """A block string laid out one step inside ``indent``, when that keeps its value."""
    import textwrap

    if not word.startswith('"""'):
        return word
    raw = word[3:-3]
    head, sep, closing = raw.rpartition("\n")
    if not raw.startswith("\n") or not sep or closing.strip(" \t") or "\r" in raw:
        return word
    lines = textwrap.dedent(head[1:]).split("\n")
    inner = indent + INDENT
    body = "\n".join(inner + line if line.strip() else "" for line in lines)
    return '"""\n' + body + "\n" + indent + '"""'


def _indent_of(text: str) -> str:
    return text[: len(text) - len(text.lstrip(" "))]


def _split(tree: Tree) -> tuple[list[str], Tree | None]:
    """The statement's tokens outside its body, and the body."""
    head: list[str] = []
    body = None
    for child in tree.children:
        if isinstance(child, Token):
            head.append(str(child))
        elif child.data.endswith("_body"):
            body = child
        else:
            head.extend(_tokens(child))
    return head, body


def _tokens(tree: Tree) -> list[str]:
    if tree.data == "match":  # an inline selector: `{ a = "b"  c exists }`
        items = [" ".join(_tokens(c)) for c in tree.children if isinstance(c, Tree)]
        return ["{ " + "  ".join(items) + " }" if items else "{}"]
    out = []
    for child in tree.children:
        out.extend([str(child)] if isinstance(child, Token) else _tokens(child))
    return out


def format_source(text: str, filename: str = "<input>") -> str:
    """Canonical text of ``text``; raises DiagnosticError when it does not parse."""
    comments: list[Token] = []
    tree = _parse_with_comments(text, filename, comments)
    printer = _Printer(_Comments(sorted(comments, key=lambda c: (c.line, c.column))))
    for item in tree.children:
        printer.statement(item, "", top=True)
    tail = printer.comments.take_before(10**9)
    if tail:
        if printer.lines:
            printer.lines.append("")
        printer.lines.extend(str(c).rstrip() for c in tail)
    return "\n".join(printer.lines) + "\n" if printer.lines else ""


def _parse_with_comments(text: str, filename: str, sink: list[Token]) -> Tree:
    parser = _comment_parser()
    _SINK.clear()
    try:
        tree = parser.parse(text)
    except UnexpectedInput as exc:
        raise DiagnosticError([syntax_diagnostic(exc, text, filename)],
                              SourceMap({filename: text})) from None
    check_nesting(tree, text, filename)
    sink.extend(_SINK)
    _SINK.clear()
    return tree


#: Comments the lexer skipped during the current parse (Lark hands them to a callback).
_SINK: list[Token] = []


@functools.lru_cache(maxsize=None)
def _comment_parser() -> Lark:
    return Lark.open(
        "kubeforge.lark", rel_to=__file__, parser="lalr", lexer="contextual",
        propagate_positions=True, maybe_placeholders=False, keep_all_tokens=True,
        lexer_callbacks={"COMMENT": _SINK.append})
