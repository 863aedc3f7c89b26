"""Which characters a regular expression's match can begin with, from its parsed form.

fastparse skips blank space and comments before it runs a parser state's scanner, where Lark
matches them as ignored tokens of that scanner. The two agree only if no other terminal can
match where blank space or a comment starts; :func:`may_start_with` answers that for each
terminal, and says "maybe" for any construct it does not know, so a grammar it cannot prove
this for keeps Lark's way.
"""

from __future__ import annotations

try:
    from re import _constants as _c, _parser
except ImportError:  # an interpreter without these internals: never prove anything
    _c = _parser = None


def may_start_with(regex: str, chars: str, flags: int = 0) -> bool:
    """False only when no match of ``regex`` can begin with any of ``chars``."""
    if _parser is None:
        return True
    try:
        first, _nullable = _first(_parser.parse(regex, flags), chars)
    except Exception:  # noqa: BLE001 - anything unexpected: assume the worst
        return True
    return first


def first_chars(regex: str, flags: int = 0) -> str | None:
    """Every character a match of ``regex`` can begin with, when the pattern says so with
    literals and ranges alone (a class such as ``\\s`` or ``[^x]``: None)."""
    if _parser is None:
        return None
    try:
        found, nullable = _literal_first(_parser.parse(regex, flags))
    except ValueError:
        return None
    return None if nullable else "".join(sorted(found))


def _literal_first(items) -> tuple[set[str], bool]:
    found: set[str] = set()
    for op, av in items:
        if op is _c.LITERAL:
            return found | {chr(av)}, False
        if op is _c.IN:
            for member, value in av:
                if member is _c.LITERAL:
                    found.add(chr(value))
                elif member is _c.RANGE and value[1] - value[0] < 4096:
                    found.update(map(chr, range(value[0], value[1] + 1)))
                else:
                    raise ValueError(member)
            return found, False
        if op is _c.SUBPATTERN:
            inner, nullable = _literal_first(av[-1])
        elif op is _c.BRANCH:
            results = [_literal_first(branch) for branch in av[1]]
            inner = set().union(*(r[0] for r in results))
            nullable = any(r[1] for r in results)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            inner, nullable = _literal_first(av[2])
            nullable = nullable or av[0] == 0
        else:
            raise ValueError(op)
        found |= inner
        if not nullable:
            return found, False
    return found, True


def _first(items, chars: str) -> tuple[bool, bool]:
    """(a match of this sequence may begin with one of ``chars``, it may be empty)."""
    for op, av in items:
        may, nullable = _item(op, av, chars)
        if may:
            return True, False
        if not nullable:
            return False, False
    return False, True


def _item(op, av, chars: str) -> tuple[bool, bool]:
    if op is _c.LITERAL:
        return chr(av) in chars, False
    if op is _c.IN:
        return any(_in_set(av, ch) for ch in chars), False
    if op is _c.SUBPATTERN:
        return _first(av[-1], chars)
    if op is _c.BRANCH:
        results = [_first(branch, chars) for branch in av[1]]
        return any(r[0] for r in results), any(r[1] for r in results)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, _high, inner = av
        may, nullable = _first(inner, chars)
        return may, nullable or low == 0
    if op is _c.AT:
        return False, True
    raise ValueError(f"not handled: {op}")  # NOT_LITERAL, ANY, lookarounds, ...: "maybe"


def _in_set(members, ch: str) -> bool:
    code = ord(ch)
    negate = False
    found = False
    for op, av in members:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            found = found or av == code
        elif op is _c.RANGE:
            found = found or av[0] <= code <= av[1]
        elif op is _c.CATEGORY:
            if av in (_c.CATEGORY_DIGIT, _c.CATEGORY_WORD):
                found = found or ch.isalnum() or ch == "_"
            else:
                return True  # \s and the rest: assume it may
        else:
            return True
    return found != negate
