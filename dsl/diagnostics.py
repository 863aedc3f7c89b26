"""Source spans and diagnostics: ``FILE:LINE:COL: error[CODE]: message`` with a caret."""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from kubeforge.errors import KubeforgeError


@dataclass(frozen=True, order=True, slots=True)
class Span:
    """A region of one source file; lines and columns count from 1."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        # Line 0: the whole file or directory (a state directory's modes, ...).
        return f"{self.file}:{self.line}:{self.col}" if self.line > 0 else self.file


#: Used for things that have no place in a source file (defaults, generated objects).
NO_SPAN = Span("<generated>", 0, 0, 0, 0)


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    def render(self, sources: "SourceMap | None" = None) -> str:
        # Messages quote user text (paths, strings): a control character in it must not
        # start a line that looks like another diagnostic.
        span = escape_controls(str(self.span))
        head = f"{span}: {self.severity}[{self.code}]: {escape_controls(self.message)}"
        lines = [head]
        text = sources.line(self.span.file, self.span.line) if sources else None
        if text is not None:
            gutter = f"{self.span.line} | "
            # One character for one: the caret stays under the column the parser counted.
            lines.append(gutter + _blank_controls(text))
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
                width = self.span.end_col - self.span.col
            lines.append(" " * (len(gutter) + self.span.col - 1) + "^" * width)
        if self.hint:
            lines.append(f"hint: {escape_controls(self.hint)}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
            "hint": self.hint,
        }


@dataclass
class SourceMap:
    """The text of every file read, so diagnostics can quote the offending line."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, text: str) -> None:
        self.texts[name] = text

    def line(self, name: str, lineno: int) -> str | None:
        text = self.texts.get(name)
        if text is None or lineno < 1:
            return None
        lines = source_lines(text)
        return lines[lineno - 1] if lineno <= len(lines) else ""


def source_lines(text: str) -> list[str]:
    """The lines as the parser numbers them: only "\\n" ends a line. (``str.splitlines``
    also splits at form feeds, vertical tabs, U+2028/2029 and NEL, which would put a caret
    under the wrong line of a file that has one, even in a comment.)"""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines if text else []


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\t"


def escape_controls(text: str) -> str:
    """``text`` on one line: control and format characters as Python escapes (``\\n``)."""
    if not any(_is_control(ch) for ch in text):
        return text
    return "".join(repr(ch)[1:-1] if _is_control(ch) else ch for ch in text)


def _blank_controls(text: str) -> str:
    return "".join(" " if _is_control(ch) else ch for ch in text)


class DiagnosticError(KubeforgeError):
    """One or more diagnostics that make the input invalid."""

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: SourceMap | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources = sources
        super().__init__(self.render())

    def render(self) -> str:
        return "\n\n".join(d.render(self.sources) for d in self.diagnostics)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choice, or None when nothing is close."""
    found = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean `{found[0]}`?" if found else None


class Collector:
    """Gathers every diagnostic of a pass so all are reported at once."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, hint))

    def warning(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, hint, "warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self, sources: SourceMap | None = None) -> None:
        if self.errors:
            # One statement can fail one check twice (a `probe` is two probes): say it once.
            unique = dict.fromkeys(self.errors)
            ordered = sorted(unique, key=lambda d: (d.span, d.code, d.message))
            raise DiagnosticError(ordered, sources)
