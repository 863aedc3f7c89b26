"""Source spans and diagnostics: ``FILE:LINE:COL: error[CODE]: message`` with a caret."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from kubeforge.errors import KubeforgeError


@dataclass(frozen=True, order=True)
class Span:
    """A region of one source file; lines and columns count from 1."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


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
        head = f"{self.span}: {self.severity}[{self.code}]: {self.message}"
        lines = [head]
        text = sources.line(self.span.file, self.span.line) if sources else None
        if text is not None:
            gutter = f"{self.span.line} | "
            lines.append(gutter + text.rstrip("\n"))
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
                width = self.span.end_col - self.span.col
            lines.append(" " * (len(gutter) + self.span.col - 1) + "^" * width)
        if self.hint:
            lines.append(f"hint: {self.hint}")
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
        lines = text.splitlines()
        return lines[lineno - 1] if lineno <= len(lines) else ""


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
