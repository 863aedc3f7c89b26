"""``kubeforge plan``: what an apply would change, per host and phase, without changing it.

Without ``--probe`` the answer comes from the recorded apply state (a step is unchanged when
it was applied with the same definition and no service input changed since); with
``--probe`` every step's own check runs on the hosts, read-only, and so do the checks of the
``preflight`` phase themselves (root, programs, ports, resources: read-only by the plan's
contract), exactly as apply would run them, so a check that would stop the apply shows up
as *failing* with its output (``missing: gpg``). Other always-run steps (waits) are counted
as checks, not changes. Only step ids, paths and the preflight checks' output are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeforge.compiler.plan import Command, Step
from kubeforge.targets import actions
from kubeforge.targets.base import Target, TargetError
from kubeforge.targets.deploy import Deployment
from kubeforge.targets.execute import Sessions, StepRunner
from kubeforge.targets.redact import redact
from kubeforge.targets.runner import Selection

CHANGE, SAME, CHECK, BLOCKED, FAILING = "change", "unchanged", "check", "blocked", "failing"
PREFLIGHT = "preflight"


@dataclass(frozen=True)
class Verdict:
    step: Step
    verdict: str
    note: str = ""


def _always(step: Step) -> bool:
    return isinstance(step.action, Command) and step.check.kind == "none"


def review(dep: Deployment, selection: Selection, target: Target | None = None) -> list[Verdict]:
    steps = selection.steps(dep.plan)
    state = dep.load_state()
    if target is None:
        return [Verdict(s, CHECK if _always(s) else
                        SAME if state.is_done(s) and not state.needs_restart(s) else CHANGE)
                for s in steps]
    sessions = Sessions(target, dep.hosts)
    runner = StepRunner(dep.plan, dep.build_root, state, sessions, digest_key=dep.digest_key)
    out = []
    try:
        for s in steps:
            try:
                missing = runner.missing_programs(s)
                if missing:
                    out.append(Verdict(s, BLOCKED, f"{missing[0]} is not installed"))
                elif _always(s) and s.phase == PREFLIGHT:
                    out.append(_preflight(runner, s))
                elif _always(s):
                    out.append(Verdict(s, CHECK))
                elif runner.satisfied(s, clean=False) and not state.needs_restart(s):
                    out.append(Verdict(s, SAME))
                else:
                    out.append(Verdict(s, CHANGE))
            except TargetError as exc:
                out.append(Verdict(s, BLOCKED, str(exc)))
    finally:
        sessions.close()
        target.close()
    return out


def _preflight(runner: StepRunner, step: Step) -> Verdict:
    """Run a preflight check as apply runs it; failing, its output is the reason."""
    assert isinstance(step.action, Command)
    out = runner.sessions.get(step.host).run(actions.command_script(step.action),
                                             timeout=actions.action_timeout(step))
    if out.exit_code == 0:
        return Verdict(step, CHECK)
    lines = [line.strip() for line in (out.stdout + out.stderr).decode(errors="replace")
             .splitlines() if line.strip()]
    note = "; ".join(lines[:5]) or f"exit code {out.exit_code}"
    return Verdict(step, FAILING, redact(note)[:300])


def as_dict(dep: Deployment, verdicts: list[Verdict], probed: bool) -> dict[str, Any]:
    hosts: dict[str, dict[str, dict[str, Any]]] = {}
    for v in verdicts:
        phase = hosts.setdefault(v.step.host, {}).setdefault(
            v.step.phase, {CHANGE: [], BLOCKED: [], FAILING: [], SAME: 0, CHECK: 0})
        if v.verdict in (CHANGE, BLOCKED, FAILING):
            phase[v.verdict].append({"step": v.step.id, "note": v.note} if v.note
                                    else v.step.id)
        else:
            phase[v.verdict] += 1
    return {"cluster": dep.plan.cluster, "probed": probed, "warnings": [*dep.diagnostics, *dep.warnings],
            "changes": sum(v.verdict == CHANGE for v in verdicts),
            "blocked": sum(v.verdict == BLOCKED for v in verdicts),
            "failing": sum(v.verdict == FAILING for v in verdicts), "hosts": hosts}


def render(report: dict[str, Any]) -> str:
    basis = "probed on the hosts" if report["probed"] else "against the recorded apply state"
    lines = [f"plan for cluster {report['cluster']} ({basis}): {report['changes']} steps would "
             f"change" + (f", {report['blocked']} blocked" if report["blocked"] else "")
             + (f", {report['failing']} preflight checks failing: apply would stop there"
                if report["failing"] else "")]
    for host, phases in report["hosts"].items():
        lines.append(f"  [{host}]")
        for phase, v in phases.items():
            lines.append(f"    {phase}: {len(v[CHANGE])} to change, {v[SAME]} unchanged, "
                         f"{v[CHECK]} checks" + (f", {len(v[BLOCKED])} blocked"
                                                 if v[BLOCKED] else "")
                         + (f", {len(v[FAILING])} failing" if v[FAILING] else ""))
            for item in v[CHANGE]:
                lines.append(f"      ~ {item}")
            for item in v[FAILING]:
                lines.append(f"      x {item['step']} fails: {item['note']}")
            for item in v[BLOCKED]:
                lines.append(f"      ! {item['step']}: {item['note']}")
    for gone in report.get("remove", ()):
        lines.append(f"  - [{gone['host']}] ({', '.join(gone['roles']) or 'no role'}) is no "
                     f"longer declared: {', '.join(gone['actions'])} "
                     "(apply needs --allow-removal)")
    return "\n".join(lines)
