"""The bootstrap plan: a DAG of steps per host, fixed at compile time, run later by a target.

The plan is data, so ``kubeforge plan`` can print it, a reviewer can read it and any executor
(ssh, ansible) can replay it. It never carries file contents: an upload names its source inside
the build directory and the SHA-256 of that content, so ``plan.json`` is safe to share even
though some of the files it moves are private keys. For a secret upload the digest is keyed
(``hmac-sha256:<hex>``, see :func:`kubeforge.compiler.artifacts.content_digest`), so the plan
cannot confirm a guessed secret; an executor compares hosts with the SHA-256 of the build's
file, which it first checks against this digest.

Contract for executors:

* ``Plan.order()`` is one valid sequential order; steps whose ``needs`` are all done may run in
  parallel (hosts are independent unless a step says otherwise).
* Phases are labels with an order, not barriers: no step needs a step of a later phase
  (``Plan`` refuses such a plan), but a worker may join while another control plane is still
  joining.
* ``Check`` decides whether a step can be skipped: ``sha256`` (the file on the host already has
  this content, mode and owner), ``probe`` (the probe command exits 0) or ``none`` (always run:
  read-only checks and waits).
* ``Service.restart_on``: restart the unit (after ``systemctl daemon-reload``) when one of these
  steps changed the host during this apply; a unit that is meant to be left alone
  (``state=None``) is only restarted if it is already running.
* An upload creates missing parent directories (0755 root:root) and replaces the file atomically.
"""

from __future__ import annotations

import copy

import json
import shlex
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any, ClassVar, Iterable, Union

from kubeforge.compiler import json_indent
from kubeforge.errors import KubeforgeError

PHASES: tuple[str, ...] = (
    "preflight", "os-prepare", "runtime", "pki", "loadbalancer", "etcd", "control-plane-init",
    "control-plane-join", "workers-join", "cni", "addons", "workloads", "verify",
)

FORMAT = "kubeforge-plan/1"


class PlanError(KubeforgeError):
    """The plan cannot be built or loaded (an emitter disagrees with kubeadm, a cycle, ...)."""


# ================================================================================ actions


@dataclass(frozen=True)
class Upload:
    path: str  # absolute path on the host
    source: str  # path inside the cluster's build directory: never the content itself
    sha256: str  # hex SHA-256; for secret uploads "hmac-sha256:<hex>" (see the module doc)
    mode: int = 0o644
    owner: str = "root:root"
    secret: bool = False  # the executor must not log or diff the content

    kind: ClassVar[str] = "upload"

    def describe(self) -> str:
        flag = "  secret" if self.secret else ""
        return f"upload {self.path}  {self.mode:04o} {self.owner}  <- {self.source}{flag}"


@dataclass(frozen=True)
class PreflightIgnore:
    """A kubeadm preflight check a step skips on purpose, with the reason a reviewer reads."""

    check: str
    reason: str


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...] = ()
    shell: str | None = None  # run with `sh -c`; used only where a pipeline or loop is needed
    timeout: int = 60
    retry_safe: bool = True  # may be re-run after a failure or an interrupted apply
    ignore_preflight_errors: tuple[PreflightIgnore, ...] = ()

    kind: ClassVar[str] = "command"

    def __post_init__(self) -> None:
        if bool(self.argv) == (self.shell is not None):
            raise PlanError("a command has either argv or a shell string, not both or neither")

    @property
    def text(self) -> str:
        return self.shell if self.shell is not None else shlex.join(self.argv)

    def describe(self) -> str:
        return f"run {self.text}"


@dataclass(frozen=True)
class Service:
    name: str
    enabled: bool = True
    state: str | None = "started"  # started | stopped | None: leave the running state alone
    restart_on: tuple[str, ...] = ()  # step ids; see the module docstring
    no_block: bool = False  # start without waiting for readiness (etcd waits for a quorum)

    kind: ClassVar[str] = "service"

    def describe(self) -> str:
        parts = [f"service {self.name}", "enabled" if self.enabled else "disabled"]
        if self.state:
            parts.append(self.state + (" (no-block)" if self.no_block else ""))
        return " ".join(parts)


Action = Union[Upload, Command, Service]
_ACTIONS: dict[str, type] = {cls.kind: cls for cls in (Upload, Command, Service)}


@dataclass(frozen=True)
class Check:
    kind: str = "none"  # sha256 | probe | none
    value: str = ""

    KINDS: ClassVar[tuple[str, ...]] = ("sha256", "probe", "none")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS or (self.kind == "none") != (self.value == ""):
            raise PlanError(f"bad check {self.kind!r}: {self.value!r}")

    def describe(self) -> str:
        if self.kind == "probe":
            return f"skip if: {self.value}"
        if self.kind == "sha256":
            return "skip if: content, mode and owner match"
        return "always runs"


ALWAYS = Check()


def probe(command: str) -> Check:
    return Check("probe", command)


# ================================================================================ steps and plan


@dataclass(frozen=True)
class Step:
    id: str
    host: str
    phase: str
    action: Action
    check: Check = ALWAYS
    needs: tuple[str, ...] = ()
    why: str = ""
    #: Programs the step runs that only Kubernetes packages provide (kubeadm, kubelet, ...),
    #: so an executor can refuse early with a clear message on hosts without them. Empty
    #: means "not declared": executors may infer it from the command text.
    requires: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        action: dict[str, Any] = {"kind": self.action.kind}
        for name, value in vars(self.action).items():
            if isinstance(value, tuple):
                value = [vars(v) if isinstance(v, PreflightIgnore) else v for v in value]
            elif name == "mode":
                value = f"{value:04o}"
            action[name] = value
        out = {"id": self.id, "host": self.host, "phase": self.phase, "needs": list(self.needs),
               "why": self.why, "action": action,
               "check": {"kind": self.check.kind, "value": self.check.value}}
        if self.requires:  # omitted when empty, so plans without it stay byte-identical
            out["requires"] = list(self.requires)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Step":
        raw = dict(data["action"])
        kind = raw.pop("kind")
        if kind not in _ACTIONS:
            raise PlanError(f"step {data.get('id')}: unknown action kind {kind!r}")
        if "mode" in raw:
            raw["mode"] = int(raw["mode"], 8)
        if "ignore_preflight_errors" in raw:
            raw["ignore_preflight_errors"] = tuple(
                PreflightIgnore(**i) for i in raw["ignore_preflight_errors"])
        for name in ("argv", "restart_on"):
            if name in raw:
                raw[name] = tuple(raw[name])
        return cls(id=data["id"], host=data["host"], phase=data["phase"],
                   action=_ACTIONS[kind](**raw), check=Check(**data["check"]),
                   needs=tuple(data["needs"]), why=data.get("why", ""),
                   requires=tuple(data.get("requires", ())))


@dataclass(frozen=True)
class PlanHost:
    name: str
    address: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    cluster: str
    hosts: tuple[PlanHost, ...]
    steps: tuple[Step, ...]
    phases: tuple[str, ...] = PHASES
    _by_id: dict[str, Step] = field(init=False, repr=False, compare=False)
    # The topological order and its slices, computed once: emitters ask for them per host
    # and per phase, and sorting every step for each question made compiles quadratic.
    _order: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    _by_host: dict[str, tuple[Step, ...]] = field(init=False, repr=False, compare=False)
    _by_phase: dict[str, tuple[Step, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Step] = {}
        hosts = {h.name for h in self.hosts}
        rank = {p: i for i, p in enumerate(self.phases)}
        for step in self.steps:
            if step.id in by_id:
                raise PlanError(f"duplicate step id {step.id}")
            if step.host not in hosts:
                raise PlanError(f"step {step.id} runs on unknown host {step.host}")
            if step.phase not in rank:
                raise PlanError(f"step {step.id} is in unknown phase {step.phase}")
            by_id[step.id] = step
        object.__setattr__(self, "_by_id", by_id)
        for step in self.steps:
            for need in step.needs:
                if need not in by_id:
                    raise PlanError(f"step {step.id} needs unknown step {need}")
                if rank[by_id[need].phase] > rank[step.phase]:
                    raise PlanError(f"step {step.id} ({step.phase}) needs {need}, "
                                    f"which is in the later phase {by_id[need].phase}")
        order = self._sorted()  # raises on a cycle
        by_host: dict[str, list[Step]] = {h.name: [] for h in self.hosts}
        by_phase: dict[str, list[Step]] = {p: [] for p in self.phases}
        for step in order:
            by_host[step.host].append(step)
            by_phase[step.phase].append(step)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_by_host", {k: tuple(v) for k, v in by_host.items()})
        object.__setattr__(self, "_by_phase", {k: tuple(v) for k, v in by_phase.items()})
        for step in self.steps:
            if isinstance(step.action, Service) and step.action.restart_on:
                missing = set(step.action.restart_on) - self.ancestors(step.id,
                                                                       step.action.restart_on)
                if missing:
                    raise PlanError(f"step {step.id} restarts on {sorted(missing)}, "
                                    "which it does not need")

    # -- queries --------------------------------------------------------------------------
    @classmethod
    def ordered(cls, cluster: str, hosts: Iterable[PlanHost], steps: Iterable[Step],
                phases: tuple[str, ...] = PHASES) -> "Plan":
        """A plan whose ``steps`` are already in ``order()``, so JSON round trips are exact."""
        draft = cls(cluster, tuple(hosts), tuple(steps), phases)
        # Checked and sorted once: sorting the order again gives the order (a round's ready
        # steps tie on phase and host in the order they came out), so the plan of the same
        # steps in that order is the draft with its steps replaced.
        plan = copy.copy(draft)
        object.__setattr__(plan, "steps", draft.order())
        return plan

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    def order(self) -> tuple[Step, ...]:
        """Topological order; among ready steps: earlier phase, then host, then declaration."""
        return self._order

    def _sorted(self) -> tuple[Step, ...]:
        sorter = TopologicalSorter({s.id: s.needs for s in self.steps})
        try:
            sorter.prepare()
        except CycleError as err:
            raise PlanError(f"the plan has a cycle: {' -> '.join(err.args[1])}") from err
        phase_rank = {p: i for i, p in enumerate(self.phases)}
        host_rank = {h.name: i for i, h in enumerate(self.hosts)}
        index = {s.id: i for i, s in enumerate(self.steps)}

        def key(step_id: str) -> tuple[int, int, int]:
            s = self._by_id[step_id]
            return phase_rank[s.phase], host_rank[s.host], index[step_id]

        result: list[Step] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=key)
            result.extend(self._by_id[i] for i in ready)
            sorter.done(*ready)
        return tuple(result)

    def for_host(self, host: str) -> tuple[Step, ...]:
        return self._by_host.get(host, ())

    def steps_in_phase(self, phase: str) -> tuple[Step, ...]:
        if phase not in self.phases:
            raise PlanError(f"unknown phase {phase}")
        return self._by_phase[phase]

    def ancestors(self, step_id: str, wanted: Iterable[str] = ()) -> set[str]:
        """Every step ``step_id`` needs, directly or not; with ``wanted``, the walk may stop
        once all of those are found (a service's restart sources are near it, its
        ancestors thousands in a big cluster)."""
        seen: set[str] = set()
        left = set(wanted)
        todo = list(self._by_id[step_id].needs)
        while todo:
            if left and left <= seen:
                break
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self._by_id[current].needs)
        return seen

    def uploads(self) -> tuple[Step, ...]:
        return tuple(s for s in self.order() if isinstance(s.action, Upload))

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), "steps": [s.to_dict() for s in self.order()]}

    def _head(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "cluster": self.cluster,
            "phases": list(self.phases),
            "hosts": [{"name": h.name, "address": h.address, "roles": list(h.roles)}
                      for h in self.hosts],
        }

    def to_json(self) -> str:
        """``json_indent.dumps(self.to_dict())``, a step at a time: the whole plan as dicts,
        then as pieces of text, held 100 MB at once for 1,000 nodes (23,000 steps). "steps"
        sorts last of the keys."""
        head = json_indent.dumps(self._head())  # {..., "phases": [...]\n}
        steps = ",\n    ".join(json_indent.dumps(s.to_dict(), level=2) for s in self.order())
        body = f"[\n    {steps}\n  ]" if steps else "[]"
        return f'{head[:-2]},\n  "steps": {body}\n}}\n'

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise PlanError(f"plan.json is not JSON: {err}") from err
        if data.get("format") != FORMAT:
            raise PlanError(f"plan.json has format {data.get('format')!r}, expected {FORMAT}")
        try:
            hosts = tuple(PlanHost(h["name"], h["address"], tuple(h["roles"]))
                          for h in data["hosts"])
            steps = tuple(Step.from_dict(s) for s in data["steps"])
            return cls(data["cluster"], hosts, steps, tuple(data["phases"]))
        except (KeyError, TypeError) as err:
            raise PlanError(f"plan.json is malformed: {err!r}") from err


# ================================================================================ review text


def _compress(needs: Iterable[str], plan: Plan) -> list[str]:
    """Shorten a need list for reading: ``host/phase/*`` when it covers every step of that
    host and phase, ``host/phase/upload-*`` when it covers all of its uploads."""
    groups: dict[tuple[str, str], list[str]] = {}
    for need in needs:
        s = plan.step(need)
        groups.setdefault((s.host, s.phase), []).append(need)
    out: list[str] = []
    for (host, phase), ids in groups.items():
        mates = [s for s in plan.for_host(host) if s.phase == phase]
        uploads = {s.id for s in mates if isinstance(s.action, Upload)}
        rest = [i for i in ids if i not in uploads]
        if len(ids) > 1 and len(ids) == len(mates):
            out.append(f"{host}/{phase}/* ({len(mates)} steps)")
        elif len(uploads) > 1 and uploads <= set(ids):
            out += [f"{host}/{phase}/upload-* ({len(uploads)} uploads)", *rest]
        else:
            out.extend(ids)
    return out


def _step_name(step: Step) -> str:
    return step.id.split("/", 2)[2]


def _indented(text: str) -> str:
    """A multi-line script stays inside its step in plan.txt."""
    return text.replace("\n", "\n            ")


def _describe(step: Step, plan: Plan, explained: set[tuple[str, str]]) -> list[str]:
    action = step.action
    lines = [f"    {step.id}", f"        {_indented(action.describe())}"]
    if isinstance(action, Command):
        retry = "may be retried" if action.retry_safe else "never retried"
        lines.append(f"        timeout {action.timeout}s, {retry}")
        if action.argv[:1] == ("kubeadm",):
            ignored = ", ".join(f"{i.check} ({i.reason})" for i in action.ignore_preflight_errors)
            lines.append(f"        ignores preflight errors: {ignored or 'none'}")
    if isinstance(action, Service) and action.restart_on:
        restarts = ", ".join(_compress(action.restart_on, plan))
        lines.append(f"        restarts when changed: {restarts}")
    lines.append(f"        {_indented(step.check.describe())}")
    # The same step on the next host has the same reason: say it once per phase.
    if step.why and (step.phase, _step_name(step)) not in explained:
        explained.add((step.phase, _step_name(step)))
        lines.append(f"        why: {step.why}")
    return lines


def _needs_line(needs: tuple[str, ...], plan: Plan) -> str:
    return "        needs: " + (", ".join(_compress(needs, plan)) or "-")


def render_text(plan: Plan) -> str:
    """The plan as a person reviews it before ``apply``: by phase, then host, in run order.

    Consecutive uploads that need the same steps share one ``needs`` line, and a step's
    ``why`` is printed the first time its name appears in a phase. Hashes stay in plan.json:
    they change with every new CA or token, and nobody checks them by eye.
    """
    lines = [
        f"kubeforge plan for cluster {plan.cluster}: {len(plan.steps)} steps on "
        f"{len(plan.hosts)} hosts",
        "Phases are listed in order; a step starts once everything under `needs` is done, so",
        "independent hosts (and the control-plane joins) run in parallel. Uploads are named",
        "<host>/<phase>/upload-<path>; their content hashes are in plan.json. No file content",
        "appears in either file.",
        "",
        "hosts:",
    ]
    lines += [f"  {h.name:<12} {h.address:<16} {', '.join(h.roles)}" for h in plan.hosts]
    explained: set[tuple[str, str]] = set()
    for number, phase in enumerate(plan.phases, 1):
        steps = plan.steps_in_phase(phase)
        lines += ["", f"== {number:>2}. {phase} ({len(steps)} steps) =="]
        if not steps:
            lines.append("  (nothing to do)")
        for host in plan.hosts:
            mine = [s for s in plan.for_host(host.name) if s.phase == phase]
            if mine:
                lines.append(f"  [{host.name}]")
            pending: list[Step] = []  # a run of uploads with the same needs
            for s in [*mine, None]:
                if pending and (s is None or not isinstance(s.action, Upload)
                                or s.needs != pending[0].needs):
                    lines += [f"    {u.action.describe()}" for u in pending]
                    lines.append(_needs_line(pending[0].needs, plan))
                    pending = []
                if s is None:
                    break
                if isinstance(s.action, Upload):
                    pending.append(s)
                else:
                    lines += _describe(s, plan, explained)
                    lines.append(_needs_line(s.needs, plan))
    return "\n".join(lines) + "\n"
