"""Parse kubeforge source into :mod:`kubeforge.dsl.ast` nodes, with helpful syntax errors."""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from kubeforge.dsl import hints
from kubeforge.dsl.ast import Module, Node, Value
from kubeforge.dsl.diagnostics import Diagnostic, DiagnosticError, SourceMap, Span, did_you_mean

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
    return Lark.open(
        GRAMMAR,
        rel_to=__file__,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        keep_all_tokens=keep_all_tokens,
        # Building the LALR tables takes most of a second; Lark caches them on disk by
        # grammar hash, so only the first run after a grammar change pays for it.
        cache=True,
    )


@functools.lru_cache(maxsize=None)
def _keyword_of() -> dict[str, str]:
    """Terminal name -> the literal keyword or punctuation it stands for."""
    out = {}
    for term in lark_parser().terminals:
        if term.pattern.type == "str":
            out[term.name] = term.pattern.value
    return out


def parse_tree(text: str, filename: str = "<input>", *, keep_all_tokens: bool = False) -> Tree:
    """The raw Lark tree (used by the formatter); raises DiagnosticError on bad syntax."""
    try:
        return lark_parser(keep_all_tokens).parse(text)
    except UnexpectedInput as exc:
        sources = SourceMap({filename: text})
        raise DiagnosticError([syntax_diagnostic(exc, text, filename)], sources) from None


def parse(text: str, filename: str = "<input>") -> Module:
    """Parse one file's text into a :class:`Module` (imports are not followed)."""
    tree = parse_tree(text, filename)
    return Module(filename, tuple(_node(child, filename) for child in tree.children))


def parse_file(path: str | Path) -> Module:
    path = Path(path)
    return parse(read_source(path), str(path))


def read_source(path: Path) -> str:
    from kubeforge.errors import UsageError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None


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
        lines = text.splitlines() or [""]
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
        resolved = file.resolve()
        if resolved in stack:
            chain = " -> ".join(str(p.name) for p in (*stack, resolved))
            diagnostics.append(Diagnostic("E005", f"import cycle: {chain}", at))
            return
        if resolved in seen:
            return
        if at is not None and not file.is_file():
            diagnostics.append(Diagnostic("E004", f"imported file `{file}` does not exist", at))
            return
        text = read_source(file)
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
    if diagnostics:
        raise DiagnosticError(diagnostics, sources)
    # The root file goes first so its items define the order of the output.
    modules.sort(key=lambda m: 0 if Path(m.path).resolve() == Path(path).resolve() else 1)
    return modules, sources
