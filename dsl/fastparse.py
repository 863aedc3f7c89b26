"""Well-formed source straight to :mod:`kubeforge.dsl.ast` nodes, on Lark's own tables.

Lark stays the grammar's one definition and the parser of everything this module does not
accept. What it costs on a big file is generic machinery, not the grammar: a Token object and
a line counter per token, a Tree and a Meta per rule (position propagation walks the children
twice), then a second walk turning the tree into the AST (a 5,000-workload file: ~15 s).

This module runs the same LALR automaton (Lark's parse table) with the same contextual lexer
(each parser state's own compiled scanner, its keyword callbacks, its newline terminals), but
builds the AST while it reduces: a rule becomes a Node, a ``*_body`` rule the body of the
Node around it, a ``_rule`` (and Lark's ``__x_star_n`` list helpers) a run spliced into its
parent, exactly as ``parser._node`` reads Lark's tree; a span starts at the first child that
has a position and ends at the last, as Lark's PropagatePositions computes it (filtered
keywords and braces included).

It gives up (:class:`Fallback`) on anything unusual: a character no scanner takes, a token
the table has no action for, braces nested deeper than MAX_NESTING, a number with a long digit
run, a grammar shape the builder does not know. The caller then parses with Lark, which gives the
diagnostic (file:line:col, caret, hint) as before. So this module is never the one that says
a file is wrong, and tests/dsl/test_fastparse.py checks it gives Lark's AST, spans included.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lark import Lark
from lark.parsers.lalr_analysis import Shift

from kubeforge.dsl.ast import Module, Node, Value
from kubeforge.dsl.diagnostics import Span
from kubeforge.dsl.regex_first import first_chars, may_start_with


class Fallback(Exception):
    """The input needs Lark: an error to report, or a shape this module does not handle."""


# How a rule's kept child reaches the parent (parser._node's reading of Lark's tree).
_TOKEN, _NODE, _BODY, _SPLICE = range(4)
# How a reduction runs: the three shapes most reductions have, done in place, or in general.
_PASS, _UNIT, _APPEND, _GENERAL = range(4)


@dataclass(frozen=True)
class _Rule:
    size: int  # symbols popped
    origin: str  # the nonterminal the goto table is read with
    name: str  # the Node's kind (Lark's alias, else the rule's name)
    shape: int  # what the rule makes: _NODE, _BODY or _SPLICE
    keep: tuple[tuple[int, int], ...]  # (child index, how it is kept), as Lark's ChildFilter
    op: int = _GENERAL


@dataclass(frozen=True)
class Tables:
    start: int
    end: int
    actions: dict  # state -> {terminal: next state (int) | _Rule}
    scanners: dict  # state -> (compiled patterns' match, {NAME-like type: {keyword: type}})
    skip: object  # blank space and comments, when they may be skipped before scanning
    ignore: frozenset
    newline: frozenset  # terminals that may hold a newline (the line count moves)
    numeric: frozenset
    max_braces: int


def _shape(name: str) -> int:
    if name.startswith("_"):
        return _SPLICE
    return _BODY if name.endswith("_body") else _NODE


def _rule(rule) -> _Rule:
    options = rule.options
    name = str(rule.alias or rule.origin.name)
    if options.expand1 or options.template_source or _shape(name) != _shape(rule.origin.name):
        raise Fallback(f"rule shape not handled: {rule}")  # `?rule`, templates: Lark only
    keep = []
    for index, sym in enumerate(rule.expansion):
        if sym.is_term:
            if options.keep_all_tokens or not sym.filter_out:
                keep.append((index, _TOKEN))
        else:
            keep.append((index, _shape(sym.name)))
    size, shape = len(rule.expansion), _shape(name)
    op = _GENERAL
    if shape == _SPLICE and size == 1 and keep == [(0, _SPLICE)]:
        op = _PASS  # `_a: _b`, and a list helper's first item: the run as it is
    elif shape == _SPLICE and size == 1 and keep in ([(0, _NODE)], [(0, _TOKEN)]):
        op = _UNIT  # `_item: deployment`, `_key: NAME`: a run of one
    elif shape == _SPLICE and size == 2 and keep == [(0, _SPLICE), (1, _SPLICE)]:
        op = _APPEND  # a list helper's next item
    return _Rule(size, str(rule.origin.name), name, shape, tuple(keep), op)


def _cached_rule(rules: dict, rule) -> _Rule:
    found = rules.get(rule)
    if found is None:
        found = rules[rule] = _rule(rule)
    return found


def _keywords(callback) -> dict[str, str]:
    """A NAME-like terminal's UnlessCallback as a dict: the keyword text -> its terminal."""
    out = {}
    for term in callback.scanner.terminals:
        if term.pattern.type != "str" or term.pattern.flags:
            raise Fallback(f"keyword callback not handled: {term}")
        out[str(term.pattern.value)] = str(term.name)
    return out


def _skipper(parser: Lark):
    """A pattern matching a run of ignored terminals, when skipping it first is the same as
    scanning it (no other terminal can start where an ignored one does); else None."""
    ignored = [t for t in parser.terminals if t.name in parser.lexer_conf.ignore]
    starts = [first_chars(t.pattern.to_regexp()) for t in ignored]
    if not ignored or None in starts or any(
            may_start_with(t.pattern.to_regexp(), "".join(starts))
            for t in parser.terminals if t not in ignored):
        return None
    return "(?>(?:" + "|".join(t.pattern.to_regexp() for t in ignored) + ")*)"


def build_tables(parser: Lark, numeric: frozenset, max_braces: int) -> Tables:
    """Lark's parse table and contextual scanners, reshaped for :func:`parse_module`."""
    frontend = parser.parser
    table = frontend.parser.parser.parse_table
    lexer = frontend.lexer
    rules: dict = {}
    actions = {}
    for state, row in table.states.items():
        # Plain str keys: Lark's Token compares through a Python __eq__ on every dict probe.
        actions[state] = {str(term): arg if action is Shift else _cached_rule(rules, arg)
                          for term, (action, arg) in row.items()}
    skip = _skipper(parser)
    scanners, newline = {}, set()
    for state, basic in lexer.lexers.items():
        scanner = basic.scanner  # also builds basic.callback
        if set(basic.callback) - {t.name for t in parser.terminals if t.pattern.type == "re"}:
            raise Fallback("lexer callback not handled")
        patterns = scanner._mres
        if skip is not None:
            patterns = [re.compile(f"{skip}(?:{m.pattern})", m.flags) for m in patterns]
        scanners[state] = ([m.match for m in patterns],
                           {str(t): _keywords(cb) for t, cb in basic.callback.items()})
        newline.update(map(str, basic.newline_types))
    ignore = frozenset(map(str, parser.lexer_conf.ignore))
    return Tables(table.start_states["start"], table.end_states["start"], actions, scanners,
                  re.compile(skip).match if skip is not None else None, ignore,
                  frozenset(newline), numeric, max_braces)


@functools.lru_cache(maxsize=4)
def tables_for(parser: Lark, numeric: frozenset, max_braces: int) -> Tables | None:
    try:
        return build_tables(parser, numeric, max_braces)
    except (Fallback, AttributeError, KeyError):  # another Lark's internals: Lark alone
        return None


def parse_module(text: str, filename: str, tables: Tables) -> Module:
    """The Module of ``text``, as parser.parse makes it, or Fallback."""
    return Module(filename, _run(text, filename, tables))


def _run(text: str, filename: str, t: Tables) -> tuple[Node, ...]:  # noqa: C901 - one hot loop
    actions, scanners, ignore, newline, numeric = (t.actions, t.scanners, t.ignore, t.newline,
                                                   t.numeric)
    skip, end_state = t.skip, t.end
    states = [t.start]
    values: list = []
    pos, line, line_start, end = 0, 1, 0, len(text)
    braces = 0
    while True:
        if pos < end:
            matchers, callbacks = scanners[states[-1]]
            for match in matchers:
                m = match(text, pos)
                if m is not None:
                    break
            else:
                if skip is None or skip(text, pos).end() != end:
                    raise Fallback("no terminal here")
                m = None  # only blank space and comments to the end
        else:
            m = None
        if m is not None:
            kind = m.lastgroup
            value = m.group(kind)
            stop = m.end()
            at = stop - len(value)
            if at != pos and text.count("\n", pos, at):  # skipped lines
                line += text.count("\n", pos, at)
                line_start = text.rindex("\n", pos, at) + 1
            col = at - line_start + 1
            start_line = line
            if kind in newline and "\n" in value:
                line += value.count("\n")
                line_start = at + value.rindex("\n") + 1
            pos = stop
            if kind in ignore:
                continue
            if kind in callbacks:
                kind = callbacks[kind].get(value, kind)
            if kind in numeric and len(value) > 18:
                raise Fallback("a long number: parser.py reports it")
            if kind == "LBRACE":
                braces += 1
                if braces > t.max_braces:
                    raise Fallback("deep nesting: parser.py reports it")
            elif kind == "RBRACE":
                braces -= 1
            token = (start_line, col, line, pos - line_start + 1, kind, value)
        else:
            kind, token = "$END", None
        while True:
            action = actions[states[-1]].get(kind)
            if action is None:
                raise Fallback("no action: a syntax error")
            if action.__class__ is int:
                states.append(action)
                values.append(token)
                break
            op = action.op
            if op == _PASS:
                del states[-1]
            elif op == _UNIT:
                del states[-1]
                kid = values[-1]
                item = kid[4] if action.keep[0][1] == _NODE else \
                    Value(kid[4], kid[5], Span(filename, kid[0], kid[1], kid[2], kid[3]))
                values[-1] = (kid[0], kid[1], kid[2], kid[3], [item], None)
            elif op == _APPEND and values[-1][0] is not None and values[-2][0] is not None:
                del states[-2:]
                last = values.pop()
                run = values[-1]
                run[4].extend(last[4])  # the left run's list is not referenced elsewhere
                values[-1] = (run[0], run[1], last[2], last[3], run[4],
                              run[5] if last[5] is None else last[5])
            else:
                _reduce(action, states, values, filename)
            state = actions[states[-1]][action.origin]
            states.append(state)
            if token is None and state == end_state:
                return values[-1][4].args
        if token is None:
            raise Fallback("end of input not accepted")


def _reduce(rule: _Rule, states: list, values: list, filename: str):
    size = rule.size
    if size:
        kids = values[-size:]
        del values[-size:]
        del states[-size:]
    else:
        kids = []
    first = last = None
    for kid in kids:
        if kid[0] is not None:
            first = kid
            break
    for kid in reversed(kids):
        if kid[0] is not None:
            last = kid
            break
    shape = rule.shape
    args: list = []
    body = None
    for index, how in rule.keep:
        kid = kids[index]
        if how == _TOKEN:
            args.append(Value(kid[4], kid[5], Span(filename, kid[0], kid[1], kid[2], kid[3])))
        elif how == _NODE:
            args.append(kid[4])
        elif how == _BODY:
            body = kid[4]
        else:
            if args:
                args += kid[4]
            else:  # Lark's left-recursion shortcut: the run only grows at its end
                args = kid[4]
            if kid[5] is not None:
                body = kid[5]
    if first is None:
        if shape != _SPLICE and rule.origin != "start":
            raise Fallback("a node without a position")
        position = (None, None, None, None)
    else:
        position = (first[0], first[1], last[2], last[3])
    if shape == _SPLICE:
        result = (*position, args, body)
    elif shape == _BODY:
        if body is not None or any(a.__class__ is not Node for a in args):
            raise Fallback("a body holding more than statements")
        result = (*position, tuple(args))
    else:
        span = Span(filename, *position) if first is not None else None
        result = (*position, Node(rule.name, tuple(args), body, span))
    values.append(result)
