"""Parse kubeforge source into :mod:`kubeforge.dsl.ast` nodes, with helpful syntax errors."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from kubeforge.dsl import fastparse, hints
from kubeforge.dsl.ast import Module, Node, Value
from kubeforge.dsl.diagnostics import (Diagnostic, DiagnosticError, SourceMap, Span, did_you_mean,
                                       escape_controls, source_lines)
from kubeforge.dsl.parser_cache import load_derived, load_parser
from kubeforge.errors import UsageError
from kubeforge.fileio import TEXT_LIMIT, FileProblem, read_text

GRAMMAR = "kubeforge.lark"

#: How terminals are named to a person in "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": 'a "string"',
    "INT": "a number",
    "DECIMAL": "a decimal number",
    "UNITNUM": "a quantity or duration (e.g. 100Mi, 30s)",
    "PERCENT": "a percentage (e.g. 80%)",
    "RANGE": "a range (e.g. 2..10)",
    "IP": "an IP address",
    "CIDR": "a CIDR (e.g. 10.96.0.0/12)",
    "BOOL": "true or false",
    "STAR": "`*`",
    "SUBRESOURCE": "a subresource (e.g. pods/log)",
    "$END": "end of file",
}


@functools.lru_cache(maxsize=None)
def lark_parser(keep_all_tokens: bool = False) -> Lark:
    # Building the LALR tables takes most of a second, and even Lark's own cache leaves a
    # small file's check waiting on the parser; parser_cache stores it finished.
    return load_parser(
        Path(__file__).with_name(GRAMMAR),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        keep_all_tokens=keep_all_tokens,
    )


@functools.lru_cache(maxsize=None)
def fast_tables() -> fastparse.Tables | None:
    # Stored like the parser: deriving them compiles a scanner per parser state again. The
    # code that derives them is part of their name, so a change to it never meets old ones.
    here = Path(__file__).parent
    made_by = "\0".join((here / name).read_text(encoding="utf-8")
                         for name in ("parser.py", "fastparse.py", "regex_first.py"))
    return load_derived(here / GRAMMAR, "fastparse", made_by, fastparse.Tables,
                        lambda: fastparse.tables_for(lark_parser(False), _NUMERIC, MAX_NESTING))


@functools.lru_cache(maxsize=None)
def _keyword_of() -> dict[str, str]:
    """Terminal name -> the literal keyword or punctuation it stands for."""
    out = {}
    for term in lark_parser(False).terminals:  # the key parse_tree's call uses
        if term.pattern.type == "str":
            out[term.name] = term.pattern.value
    return out


#: Blocks nested deeper than this are refused: real files nest four or five levels, and
#: everything after the parser walks the tree recursively.
MAX_NESTING = 32
#: Digits in one number: more than any Kubernetes field holds (int64 has 19), and short of
#: Python's limit on converting long digit strings (4300).
MAX_DIGITS = 18
_NUMERIC = frozenset({"INT", "DECIMAL", "UNITNUM", "PERCENT", "RANGE"})


def parse_tree(text: str, filename: str = "<input>", *, keep_all_tokens: bool = False) -> Tree:
    """The raw Lark tree (used by the formatter); raises DiagnosticError on bad syntax."""
    try:
        tree = lark_parser(keep_all_tokens).parse(text)
    except UnexpectedInput as exc:
        sources = SourceMap({filename: text})
        raise DiagnosticError([syntax_diagnostic(exc, text, filename)], sources) from None
    check_nesting(tree, text, filename)
    return tree


def check_nesting(tree: Tree, text: str, filename: str) -> None:
    """DiagnosticError when blocks nest deeper than MAX_NESTING."""
    too_deep = _too_deep(tree, filename)
    if too_deep:
        raise DiagnosticError([too_deep], SourceMap({filename: text}))


def _too_deep(tree: Tree, filename: str) -> Diagnostic | None:
    """The first block nested deeper than MAX_NESTING, found without recursion."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data.endswith("_body"):
            depth += 1
            if depth > MAX_NESTING:
                return Diagnostic("E002", f"blocks are nested more than {MAX_NESTING} deep",
                                  _span(node.meta, filename),
                                  "flatten the file: no statement needs this many levels")
        stack.extend((c, depth) for c in reversed(node.children) if isinstance(c, Tree))
    return None


def parse(text: str, filename: str = "<input>") -> Module:
    """Parse one file's text into a :class:`Module` (imports are not followed)."""
    tables = fast_tables()
    if tables is not None:
        try:
            return fastparse.parse_module(text, filename, tables)
        except fastparse.Fallback:  # Lark parses it again, and says what is wrong if it is
            pass
    return parse_with_lark(text, filename)


def parse_with_lark(text: str, filename: str = "<input>") -> Module:
    """:func:`parse` through Lark's tree: the definition the fast path is tested against, and
    the one every syntax diagnostic comes from."""
    tree = parse_tree(text, filename)
    too_long = [_number_diagnostic(t, filename) for t in tree.scan_values(_is_long_number)]
    if too_long:
        raise DiagnosticError(too_long, SourceMap({filename: text}))
    return Module(filename, tuple(_node(child, filename) for child in tree.children))


def _is_long_number(token) -> bool:
    return isinstance(token, Token) and token.type in _NUMERIC and \
        any(len(run) > MAX_DIGITS for run in _digit_runs(str(token)))


def _digit_runs(text: str) -> list[str]:
    return "".join(c if c.isdigit() else " " for c in text).split()


def _number_diagnostic(token: Token, filename: str) -> Diagnostic:
    text = str(token)
    shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]}"
    longest = max(len(run) for run in _digit_runs(text))
    return Diagnostic("E105", f"number `{shown}` is too large ({longest} digits)",
                      _span(token, filename), f"numbers have at most {MAX_DIGITS} digits")


def parse_file(path: str | Path) -> Module:
    path = Path(path)
    return parse(read_source(path), str(path))


def read_source(path: Path) -> str:
    """The text of a source file: UTF-8, a byte-order mark dropped, CRLF read as LF. A lone
    CR stays as it is: the grammar treats it as blank space (or comment text), the way the
    parser's line count does, so lines and carets agree."""
    try:
        return _source_text(path)
    except FileProblem as problem:
        what = "no such file" if str(problem) == "does not exist" else str(problem)
        raise UsageError(f"{escape_controls(str(path))}: {what}") from None


def _source_text(path: Path) -> str:
    return read_text(path, TEXT_LIMIT).replace("\r\n", "\n")



# ------------------------------------------------------------------------------ tree -> AST
def _span(meta_or_token, filename: str) -> Span:
    return Span(
        filename,
        meta_or_token.line,
        meta_or_token.column,
        meta_or_token.end_line,
        meta_or_token.end_column,
    )


def _node(tree: Tree, filename: str) -> Node:
    args: list = []
    body = None
    for child in tree.children:
        if isinstance(child, Token):
            args.append(Value(child.type, str(child), _span(child, filename)))
        elif child.data.endswith("_body"):
            body = tuple(_node(stmt, filename) for stmt in child.children)
        else:
            args.append(_node(child, filename))
    return Node(str(tree.data), tuple(args), body, _span(tree.meta, filename))


# ------------------------------------------------------------------------------ errors
def _describe_expected(expected: set[str]) -> list[str]:
    words = []
    keywords = _keyword_of()
    for name in sorted(expected):
        if name in keywords:
            words.append(f"`{keywords[name]}`")
        else:
            words.append(_TERMINAL_WORDS.get(name, name.lower()))
    return sorted(set(words))


def syntax_diagnostic(exc: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    line = getattr(exc, "line", None) or 1
    col = getattr(exc, "column", None) or 1
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        lines = source_lines(text) or [""]
        line, col = len(lines), len(lines[-1]) + 1
        span = Span(filename, line, col, line, col)
        expected = set(exc.expected)
        if "RBRACE" in expected:
            return Diagnostic("E003", "unexpected end of file: a `{` block is not closed", span,
                              "add the missing `}`")
        words = ", ".join(_describe_expected(expected)[:8])
        return Diagnostic("E003", f"unexpected end of file; expected {words}", span)
    if isinstance(exc, UnexpectedEOF):
        span = Span(filename, line, col, line, col)
        return Diagnostic("E003", "unexpected end of file", span)
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        span = Span(filename, line, col, line, col + 1)
        word = _word_at(text, exc.pos_in_stream)
        keywords = _keyword_of()
        allowed = sorted(exc.allowed or ())
        hint = None
        kw_choices = [keywords[t] for t in allowed if t in keywords and keywords[t].isidentifier()]
        if word and kw_choices:
            hint = did_you_mean(word, kw_choices)
        if ch == "'":
            hint = 'strings use double quotes: "like this"'
        key = hints.unquoted_key(text, exc.pos_in_stream)
        if key is not None:
            return Diagnostic("E002", f"unexpected `/` in `{key}`", span, hints.key_hint(key))
        if hints.unclosed_string(text, exc.pos_in_stream):
            return Diagnostic("E002", "this string is not closed on its line", span,
                              hints.STRING_HINT)
        shown = "`" + ch + "`" if ch.strip() else repr(ch)
        expected = ", ".join(_describe_expected(set(allowed))[:8])
        message = f"unexpected character {shown}"
        if expected:
            message += f"; expected {expected}"
        return Diagnostic("E002", message, span, hint)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    span = Span(filename, token.line, token.column, token.end_line or token.line,
                token.end_column or token.column + len(str(token)))
    expected = set(exc.expected)
    keywords = _keyword_of()
    kw_choices = [keywords[t] for t in expected if t in keywords and keywords[t].isidentifier()]
    if token.type == "NAME" and kw_choices and "NAME" not in expected:
        return Diagnostic("E001", f"unknown keyword `{token}`", span,
                          hints.keyword_hint(str(token), kw_choices))
    if token.type in keywords and kw_choices and "NAME" not in expected \
            and str(token) not in kw_choices and str(token).isidentifier():
        return Diagnostic("E001", f"`{token}` is not a statement of this block", span,
                          hints.misplaced_hint(str(token), kw_choices))
    words = ", ".join(_describe_expected(expected)[:10])
    shown = str(token).replace("\n", "\\n")
    hint = None
    if token.type in keywords and "NAME" in expected:
        hint = f"`{shown}` is a keyword here; quote it or choose another name"
    return Diagnostic("E002", f"unexpected `{shown}`; expected {words}", span, hint)


def _word_at(text: str, pos: int) -> str:
    end = pos
    while end < len(text) and (text[end].isalnum() or text[end] in "_-"):
        end += 1
    return text[pos:end]


def load(path: str | Path) -> tuple[list[Module], SourceMap]:
    """Parse a file and, transitively, every file it imports (each once, in import order)."""
    sources = SourceMap()
    modules: list[Module] = []
    seen: dict[Path, Module] = {}
    diagnostics: list[Diagnostic] = []

    def visit(file: Path, stack: tuple[Path, ...], at: Span | None) -> None:
        # os.path.realpath, unlike Path.resolve, does not raise on a symlink loop: the
        # loop is then reported below as what the import names.
        resolved = Path(os.path.realpath(file))
        if resolved in stack:
            chain = " -> ".join(str(p.name) for p in (*stack, resolved))
            diagnostics.append(Diagnostic("E005", f"import cycle: {chain}", at))
            return
        if resolved in seen:
            return
        if at is None:
            text = read_source(file)  # the file on the command line: a usage error
        else:
            try:
                text = _source_text(file)
            except FileProblem as problem:
                diagnostics.append(Diagnostic("E004", f"imported file `{file}` {problem}", at))
                return
        sources.add(str(file), text)
        try:
            module = parse(text, str(file))
        except DiagnosticError as err:
            diagnostics.extend(err.diagnostics)
            return
        seen[resolved] = module
        for item in module.items:
            if item.kind == "import_stmt":
                target = Path(str(item.value().py))
                if not target.is_absolute():
                    target = file.parent / target
                visit(target, (*stack, resolved), item.span)
        modules.append(module)

    visit(Path(path), (), None)
    del visit  # it refers to itself through its closure: the cycle would keep every module
    if diagnostics:
        raise DiagnosticError(diagnostics, sources)
    # The root file goes first so its items define the order of the output.
    modules.sort(key=lambda m: 0 if Path(m.path).resolve() == Path(path).resolve() else 1)
    return modules, sources
