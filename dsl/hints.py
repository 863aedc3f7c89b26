"""Better words for common syntax mistakes: a key with `/` left unquoted, a string running
past the end of its line, a statement kubeforge does not have."""

from __future__ import annotations

import difflib
import re

_KEY_CHARS = re.compile(r"[A-Za-z0-9_.\-/]")
#: Suggesting a keyword needs a closer match than names do: a far-fetched keyword (`init`
#: for `affinity`) misleads more than no suggestion.
KEYWORD_CUTOFF = 0.75


def unquoted_key(text: str, pos: int) -> str | None:
    """The whole `a.b/c` word around a `/` at ``pos`` when it looks like a label key."""
    if pos >= len(text) or text[pos] != "/":
        return None
    start = pos
    while start > 0 and _KEY_CHARS.match(text[start - 1]):
        start -= 1
    end = pos + 1
    while end < len(text) and _KEY_CHARS.match(text[end]):
        end += 1
    word = text[start:end]
    return word if start < pos and end > pos + 1 else None


def unclosed_string(text: str, pos: int) -> bool:
    """Whether a `"` at ``pos`` starts a string that its line does not close."""
    if pos >= len(text) or text[pos] != '"' or text.startswith('"""', pos):
        return False
    line_end = text.find("\n", pos)
    rest = text[pos + 1: line_end if line_end >= 0 else len(text)]
    return not re.search(r'(?<!\\)"', rest)


STRING_HINT = ('strings end on the line they start: write `\\n` for a line break, or use a '
               'block string `"""` ... `"""` for text over several lines')


def key_hint(word: str) -> str:
    return f'a key with `/` must be quoted: "{word}"'


#: Keywords that are options of a statement, not statements: where they go.
OPTION_OF = {
    "subpath": 'is an option of `mount`: `mount data at "/var/lib/db" subpath "pgdata"`',
    "subpath_expr": 'is an option of `mount`: `mount logs at "/logs" subpath_expr "$(POD_NAME)"`',
    "readonly": 'is an option of `mount`: `mount conf config app at "/etc/app" readonly`',
    "weight": 'is an option of `affinity`: `affinity pods { app = "cache" } weight 50`',
    "except": "is an option of an `ip` peer: `allow to ip 10.0.0.0/8 except 10.1.0.0/16`",
    "pre_stop": 'goes in a `lifecycle { ... }` block: `lifecycle { pre_stop exec "drain" }`',
    "post_start": 'goes in a `lifecycle { ... }` block: `lifecycle { post_start exec "x" }`',
}


def misplaced_hint(word: str, choices: list[str]) -> str:
    return f"`{word}` {OPTION_OF[word]}" if word in OPTION_OF else keyword_hint(word, choices)


def keyword_hint(word: str, choices: list[str]) -> str:
    """For an unknown statement keyword: the close one, or what exists instead."""
    found = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=KEYWORD_CUTOFF)
    if found:
        return f"did you mean `{found[0]}`?"
    listed = ", ".join(sorted(choices)[:12]) + (", ..." if len(choices) > 12 else "")
    text = f"kubeforge has no `{word}` statement here (statements: {listed})"
    if "patch" in choices:
        text += "; a field the language does not model can be set with a `patch` " \
                "(see docs/language.md)"
    return text
