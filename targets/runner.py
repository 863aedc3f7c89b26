"""Scheduling a plan: dependency order (graphlib), bounded parallelism across hosts.

At most ``jobs`` steps run at once and at most one per host: a host's steps are a chain in
practice (the plan links each phase to the previous one), and one at a time keeps apt/dpkg
and systemd from racing themselves. Among ready steps the plan's own order wins, so the run
reads like ``plan.txt``. A failed step skips everything that needs it, directly or not;
independent work goes on.

Narrowing (``--limit``, ``--phase``, ``--until``) selects steps; a selected step that needs a
step outside the selection runs only if the state says that step was applied (with the same
definition), so a narrowed run never builds on something that was never done.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Callable, Iterable

from kubeforge.compiler.plan import Plan, Step
from kubeforge.errors import UsageError
from kubeforge.targets.base import FAILED, SKIPPED, StepResult
from kubeforge.targets.state import ApplyState


@dataclass(frozen=True)
class Selection:
    limit: frozenset[str] = frozenset()
    phase: str | None = None
    until: str | None = None

    def validate(self, plan: Plan) -> None:
        unknown = sorted(self.limit - {h.name for h in plan.hosts})
        if unknown:
            raise UsageError(f"--limit names hosts the plan lacks: {', '.join(unknown)} "
                             f"(hosts: {', '.join(h.name for h in plan.hosts)})")
        for flag, value in (("--phase", self.phase), ("--until", self.until)):
            if value is not None and value not in plan.phases:
                raise UsageError(f"{flag} {value}: unknown phase; phases: "
                                 f"{', '.join(plan.phases)}")

    def steps(self, plan: Plan) -> tuple[Step, ...]:
        self.validate(plan)
        rank = {p: i for i, p in enumerate(plan.phases)}
        last = rank[self.until] if self.until else len(rank)
        return tuple(s for s in plan.order()
                     if (not self.limit or s.host in self.limit)
                     and (self.phase is None or s.phase == self.phase)
                     and rank[s.phase] <= last)


Listener = Callable[[Step], None]
Finisher = Callable[[StepResult], None]


def _skip(step: Step, why: str) -> StepResult:
    return StepResult(step.id, step.host, step.phase, SKIPPED, message=why)


def run_plan(plan: Plan, steps: Iterable[Step], execute: Callable[[Step], StepResult],
             state: ApplyState, jobs: int = 8, on_start: Listener = lambda s: None,
             on_finish: Finisher = lambda r: None,
             interrupted: Callable[[], bool] = lambda: False) -> list[StepResult]:
    """Run ``steps`` (a subset of ``plan``) with ``execute``; return results in finish order.

    ``interrupted`` is polled between completions: once true, nothing new starts and steps
    not yet started are reported skipped.
    """
    selected = {s.id: s for s in steps}
    order = {s.id: i for i, s in enumerate(plan.order())}
    sorter = TopologicalSorter({i: [n for n in s.needs if n in selected]
                                for i, s in selected.items()})
    sorter.prepare()
    status: dict[str, str] = {}
    results: list[StepResult] = []
    pending: list[str] = []
    busy: set[str] = set()
    running: dict[Future, Step] = {}

    def finish(result: StepResult) -> None:
        status[result.step_id] = result.status
        results.append(result)
        sorter.done(result.step_id)
        on_finish(result)

    def blocker(step: Step) -> str | None:
        for need in step.needs:
            if need in selected:
                if status.get(need) in (FAILED, SKIPPED):
                    return f"needs {need}, which {status[need]}"
            elif not state.is_done(plan.step(need)):
                return f"needs {need}, outside this run and not applied yet"
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="kf-step") as pool:
        while sorter.is_active():
            pending.extend(sorter.get_ready())
            pending.sort(key=order.__getitem__)
            progressed = False
            for step_id in list(pending):
                step = selected[step_id]
                why = "interrupted before it started" if interrupted() else blocker(step)
                if why is not None:
                    pending.remove(step_id)
                    finish(_skip(step, why))
                    progressed = True
                elif step.host not in busy and len(running) < jobs:
                    pending.remove(step_id)
                    busy.add(step.host)
                    on_start(step)
                    running[pool.submit(execute, step)] = step
            if progressed and not running:
                continue  # skips may have made new steps ready
            if not running:
                break
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                step = running.pop(future)
                busy.discard(step.host)
                finish(future.result())
    return results
