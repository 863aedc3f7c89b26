"""What a person sees during and after an apply: a live per-host view, then a summary.

On a terminal the view is a rich Live table (one row per host: current step, done/total,
changed, failed, blocked); elsewhere (CI logs, pipes, tests) one line per step that changed or
failed and one line per host and phase as it finishes, so a long quiet phase still shows
progress. A *blocked* step (status ``skipped``) never ran because something it needs failed or
was not applied; it is counted apart from the failures that caused it. Only step ids,
statuses and redacted output tails are ever shown: step ids name paths, never file contents.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from rich.live import Live
from rich.table import Table

from kubeforge.compiler.plan import Step
from kubeforge.console import Console
from kubeforge.targets.base import CHANGED, FAILED, OK, SKIPPED, UNCHANGED, StepResult

STYLE = {CHANGED: "yellow", UNCHANGED: "green", OK: "green", FAILED: "bold red",
         SKIPPED: "dim"}
#: How a person reads each status (``skipped`` steps were blocked by a failure).
LABEL = {CHANGED: "changed", UNCHANGED: "unchanged", OK: "ok", FAILED: "failed",
         SKIPPED: "blocked"}


def _counts(counts: Counter) -> str:
    return ", ".join(f"{counts[s]} {LABEL[s]}" for s in LABEL if counts[s])


@dataclass
class _HostRow:
    total: int
    done: int = 0
    current: str = ""
    counts: Counter = field(default_factory=Counter)


@dataclass
class _PhaseRow:
    total: int
    done: int = 0
    started: float | None = None
    counts: Counter = field(default_factory=Counter)


class Progress:
    def __init__(self, steps: Iterable[Step], console: Console | None = None,
                 live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.rows: dict[str, _HostRow] = {}
        self.phases: dict[tuple[str, str], _PhaseRow] = {}
        for step in steps:
            self.rows.setdefault(step.host, _HostRow(0)).total += 1
            self.phases.setdefault((step.host, step.phase), _PhaseRow(0)).total += 1
        self._lock = threading.Lock()
        self._live_wanted = self.console.is_terminal if live is None else live
        self._live: Live | None = None

    def __enter__(self) -> "Progress":
        if self._live_wanted:
            self._live = Live(self._table(), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def _table(self) -> Table:
        table = Table(title="kubeforge apply", expand=False)
        for col in ("host", "progress", "changed", "failed", "blocked", "current step"):
            table.add_column(col)
        for host, row in self.rows.items():
            failed, blocked = row.counts[FAILED], row.counts[SKIPPED]
            table.add_row(host, f"{row.done}/{row.total}", str(row.counts[CHANGED]),
                          f"[red]{failed}[/red]" if failed else "0",
                          f"[yellow]{blocked}[/yellow]" if blocked else "0", row.current)
        return table

    def started(self, step: Step) -> None:
        with self._lock:
            self.rows[step.host].current = step.id.split("/", 1)[1]
            phase = self.phases.get((step.host, step.phase))
            if phase is not None and phase.started is None:
                phase.started = time.monotonic()
            if self._live is not None:
                self._live.update(self._table())

    def finished(self, result: StepResult) -> None:
        with self._lock:
            row = self.rows[result.host]
            row.done += 1
            row.counts[result.status] += 1
            row.current = "" if row.done == row.total else row.current
            if self._live is not None:
                self._live.update(self._table())
                return
            if result.status in (CHANGED, FAILED):
                extra = f"  ({result.message})" if result.message else ""
                self.console.print(f"[{STYLE[result.status]}]{result.status:9}[/] "
                                   f"{result.step_id}  {result.seconds:.1f}s{extra}",
                                   markup=True, highlight=False, soft_wrap=True)
            phase = self.phases.get((result.host, result.phase))
            if phase is not None:
                phase.done += 1
                phase.counts[result.status] += 1
                if phase.done == phase.total:
                    took = (f" in {time.monotonic() - phase.started:.1f}s"
                            if phase.started is not None else "")
                    self.console.print(f"{result.host}: phase {result.phase} finished{took}: "
                                       f"{_counts(phase.counts)}", markup=False,
                                       highlight=False, soft_wrap=True)


def render_summary(results: list[StepResult], wall: float, console: Console) -> None:
    """Counts by status, then each failure with host, step, exit code and its stderr tail."""
    counts = Counter(r.status for r in results)
    console.print(f"{len(results)} steps in {wall:.1f}s: " + (_counts(counts) or "nothing to do"),
                  highlight=False)
    failures = [r for r in results if r.status == FAILED]
    for r in failures:
        code = f"exit code {r.exit_code}" if r.exit_code is not None else "no exit code"
        console.print(f"[bold red]FAILED[/] host {r.host}  step {r.step_id}  {code}",
                      highlight=False)
        if r.message:
            console.print(f"    {r.message}", highlight=False, markup=False, soft_wrap=True)
        for line in r.stderr_tail or r.stdout_tail:
            console.print(f"    | {line}", highlight=False, markup=False, soft_wrap=True)
    skipped = [r for r in results if r.status == SKIPPED]
    if skipped:
        console.print(f"{len(skipped)} steps blocked: not run because something they need "
                      f"failed or was not applied (first: {skipped[0].step_id}: "
                      f"{skipped[0].message})",
                      highlight=False, markup=False, soft_wrap=True)
    if not failures and not skipped:
        changed = counts[CHANGED]
        console.print("no changes" if not changed else f"{changed} changes", highlight=False)

