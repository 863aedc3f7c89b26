"""From a .kf file and an inventory to a run: compile, map hosts, apply, record timings.

Shared by the CLI and ``bench/deploy.py``. Plan hosts are the cluster's node names; each must
be an inventory host of the same name (and the other way round), since the inventory is
where the connection variables live.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.build import compile_file, default_state_dir
from kubeforge.compiler.cert_scan import expiry_warnings
from kubeforge.compiler.inventory import InventoryProblem, load_inventory
from kubeforge.compiler.plan import Plan
from kubeforge.compiler.state import StateDir
from kubeforge.console import Console
from kubeforge.errors import UsageError
from kubeforge.fileio import path_problem
from kubeforge.targets.base import CHANGED, FAILED, HostSpec, StepResult, Target
from kubeforge.targets.execute import Sessions, StepRunner
from kubeforge.targets.progress import Progress, render_summary
from kubeforge.targets.redact import redact
from kubeforge.targets.runner import Selection, run_plan
from kubeforge.targets.state import ApplyState


class InventoryMismatch(UsageError):
    """The inventory and the cluster disagree about which hosts exist."""


@dataclass(frozen=True)
class Deployment:
    plan: Plan
    build_root: Path
    state_dir: Path
    hosts: dict[str, HostSpec]
    warnings: tuple[str, ...] = ()  # for a person, before anything runs
    #: Inventory hosts the file no longer declares but an earlier apply set up (removal).
    former: dict[str, HostSpec] = field(default_factory=dict)
    #: The compiler's warnings (RBAC lint, ...), as `check` shows them: with source lines.
    diagnostics: tuple[str, ...] = ()
    kubernetes: str = ""  # the version the file names

    @property
    def state_path(self) -> Path:
        return self.state_dir / "apply-state.json"

    def load_state(self) -> ApplyState:
        return ApplyState.load(self.state_path, self.plan.cluster)

    @property
    def digest_key(self) -> bytes:
        """The key of the secret uploads' digests in plan.json (made by the compile)."""
        return StateDir(self.state_dir).digest_key()


def map_hosts(plan: Plan, inventory: Path,
              applied: frozenset[str] = frozenset()) -> tuple[dict[str, HostSpec],
                                                             dict[str, HostSpec]]:
    """The plan's hosts from the inventory, and the inventory's hosts that are no longer in
    the plan but were ``applied`` (to be removed); any other extra host is a mistake."""
    try:
        hosts = load_inventory(inventory).candidates  # a bastion host is not a node
    except InventoryProblem as problem:
        hint = f" ({problem.hint})" if problem.hint else ""
        raise UsageError(f"{problem.path or inventory}:{problem.line}: {problem}{hint}") from None
    by_name = {h.name: h for h in hosts}
    planned = [h.name for h in plan.hosts]
    missing = [n for n in planned if n not in by_name]
    extra = [n for n in by_name if n not in planned and n not in applied]
    if missing:
        raise InventoryMismatch(
            f"{inventory}: no inventory host for node(s) {', '.join(missing)} of cluster "
            f"{plan.cluster}; add them (with ansible_host) under the group of their role")
    if extra:
        raise InventoryMismatch(
            f"{inventory}: host(s) {', '.join(extra)} are not nodes of cluster {plan.cluster}; "
            f"declare them in the cluster (nodes: {', '.join(planned)}) or remove them")
    return ({name: HostSpec.from_inventory(by_name[name]) for name in planned},
            {name: HostSpec.from_inventory(h) for name, h in by_name.items()
             if name not in planned})


def address_warnings(plan: Plan, hosts: dict[str, HostSpec], inventory: Path) -> list[str]:
    """Nodes the inventory reaches at an address other than the declared one. That can be
    right (a port forward, NAT, a jump), but the certificates carry the declared addresses
    (SANs), and etcd, the API server and the kubelets talk to each other there."""
    out = []
    for node in plan.hosts:
        reached = hosts[node.name].address
        if ipaddress.ip_address(reached) != ipaddress.ip_address(node.address):
            out.append(f"{inventory}: {node.name} is reached at {reached} but declared at "
                       f"{node.address}; its certificates carry the declared address, where the "
                       "cluster's members will talk to it: fine behind a port forward or NAT, "
                       "else make the two agree")
    return out


def prepare(source: Path, inventory: Path, build_dir: Path,
            state_dir: Path | None = None, now: dt.datetime | None = None) -> Deployment:
    """Compile ``source`` into ``build_dir`` and pair its plan with ``inventory``; the
    warnings say which of the build's certificates end soon (at ``now``, default the clock)."""
    # A file or a directory of inventories; a device, a pipe or a loop says what it is.
    problem = None if os.path.isdir(inventory) else path_problem(inventory)
    if problem:
        raise UsageError(f"inventory {inventory} {problem}")
    now = now or dt.datetime.now(dt.timezone.utc)
    result = compile_file(source, build_dir, state_dir=state_dir, now=now)
    plan = Plan.from_json((result.root / "plan.json").read_text())
    state = Path(state_dir) if state_dir else default_state_dir(plan.cluster)
    applied = ApplyState.load(state / "apply-state.json", plan.cluster)
    hosts, former = map_hosts(plan, Path(inventory), frozenset(applied.hosts() | applied.removed))
    warnings = [*address_warnings(plan, hosts, Path(inventory)),
                *expiry_warnings(result.root, now)]
    for name in sorted(set(former) & applied.removed):  # declared again: no longer removed
        del former[name]
        warnings.append(f"{inventory}: {name} was removed from cluster {plan.cluster} by an "
                        "earlier apply; it can leave the inventory")
    return Deployment(plan, result.root, state, hosts, tuple(warnings), former,
                      tuple(w.render(result.sources) for w in result.warnings),
                      result.program.cluster.version)


@contextmanager
def _stop_on_signals(stop: threading.Event, sessions: Sessions) -> Iterator[None]:
    """SIGINT/SIGTERM: start nothing new and cut the running commands' connections, so the
    run ends within seconds with its state saved. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        stop.set()
        sessions.stop()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass(frozen=True)
class ApplyReport:
    results: tuple[StepResult, ...]
    wall: float
    interrupted: bool

    @property
    def failed(self) -> bool:
        return self.interrupted or any(r.status == FAILED for r in self.results) or any(
            r.status == "skipped" for r in self.results)

    @property
    def changes(self) -> int:
        return sum(r.status == CHANGED for r in self.results)


def _timings(dep: Deployment, report: ApplyReport, started: float) -> dict:
    phases: dict[str, list[float]] = {}
    for r in report.results:
        if r.started:
            span = phases.setdefault(r.phase, [r.started, r.started + r.seconds])
            span[0], span[1] = min(span[0], r.started), max(span[1], r.started + r.seconds)
    return {
        "cluster": dep.plan.cluster,
        "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "wall_seconds": round(report.wall, 3),
        "interrupted": report.interrupted,
        "phases": {p: round(phases[p][1] - phases[p][0], 3)
                   for p in dep.plan.phases if p in phases},
        "steps": [{"id": r.step_id, "host": r.host, "phase": r.phase, "status": r.status,
                   "seconds": round(r.seconds, 3), "attempts": r.attempts,
                   # when the step began, in seconds after the run began (a timeline)
                   "at": round(r.started - started, 3) if r.started else None}
                  for r in report.results],
    }


def _log(dep: Deployment, report: ApplyReport, started: float) -> None:
    """Append the run to apply.log: every step with its redacted output tails."""
    lines = [f"== apply {dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat()} "
             f"cluster {dep.plan.cluster}"]
    for r in report.results:
        code = "" if r.exit_code is None else f" exit={r.exit_code}"
        lines.append(f"{r.status:9} {r.step_id} {r.seconds:.2f}s{code} {r.message}".rstrip())
        lines += [f"    stderr| {line}" for line in r.stderr_tail]
        lines += [f"    stdout| {line}" for line in r.stdout_tail]
    dep.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(dep.state_dir / "apply.log", "a", encoding="utf-8",
              opener=lambda path, flags: os.open(path, flags, 0o600)) as fh:
        fh.write(redact("\n".join(lines)) + "\n")


def apply(dep: Deployment, target: Target, selection: Selection = Selection(), jobs: int = 8,
          console: Console | None = None, live: bool | None = None) -> ApplyReport:
    console = console or Console(stderr=True)
    steps = selection.steps(dep.plan)
    state = dep.load_state()
    sessions = Sessions(target, dep.hosts)
    runner = StepRunner(dep.plan, dep.build_root, state, sessions, digest_key=dep.digest_key)
    stop = threading.Event()
    started, t0 = time.time(), time.monotonic()
    try:
        with _stop_on_signals(stop, sessions), Progress(steps, console, live) as view:
            results = run_plan(dep.plan, steps, runner.run, state, jobs, view.started,
                               view.finished, stop.is_set)
    finally:
        sessions.close()
        target.close()
    report = ApplyReport(tuple(results), time.monotonic() - t0, stop.is_set())
    timings = _timings(dep, report, started)
    write_atomic(dep.state_dir / "timings.json",
                 (json.dumps(timings, indent=1) + "\n").encode(), 0o644)
    _log(dep, report, started)
    render_summary(list(results), report.wall, console)
    if report.interrupted:
        console.print("interrupted: run `kubeforge apply` again to resume", highlight=False)
    return report
