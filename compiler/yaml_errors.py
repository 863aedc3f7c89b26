"""What a PyYAML error says, as one line and a position, for a diagnostic.

PyYAML's messages span several lines ("while scanning ...", "  in <unicode string>,
position 12"), which would break the one-line head of a diagnostic; and a ReaderError (a
control character YAML refuses) has no mark at all, only a character offset.
"""

from __future__ import annotations

import yaml


def yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[str, int | None, int]:
    """(what is wrong, on one line; 0-based line or None when unknown; 0-based column)."""
    problem = getattr(exc, "problem", None) or str(exc).split("\n", 1)[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return problem, mark.line, mark.column
    position = getattr(exc, "position", None)  # a ReaderError: an offset into ``text``
    if position is None:
        return problem, None, 0
    start = text.rfind("\n", 0, position) + 1
    return problem, text.count("\n", 0, position), position - start
