"""The ansible target: the compiled ``ansible/`` playbook run through ansible-runner.

ansible-runner's event stream drives the same progress view, summary, apply log, timings and
apply state as the ssh target: every generated task is named ``<Verb> <step id>``, so each
event maps back to a plan step. A step's status follows the ssh target's meaning:

* ``changed``: its task ran and reported a change (an upload differed, a probed command ran);
* ``unchanged``: skipped by its check (``copy`` matched, ``creates:`` or the probe held);
* ``ok``: an always-run, read-only command passed;
* ``failed`` with the exit code and redacted output tails (none for ``no_log`` tasks);
* ``skipped``: selected but never run, because the run stopped at a failure first.

Plays are ``any_errors_fatal``, so nothing runs after a failed step: with plays as phases, a
later step might need it (the ssh target goes on with independent work instead).

Connection settings come from the inventory given to ``apply`` (address, port, user, key,
become) and are written to a 0600 inventory in the runner's private directory. Host keys are
checked as by the ssh target: against the same known_hosts file, refusing unknown and changed
keys, recording unknown ones only with trust-on-first-use (see :func:`runtime_inventory`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.emit.ansible import step_id_of
from kubeforge.compiler.plan import Command, Step
from kubeforge.console import Console
from kubeforge.targets.base import (CHANGED, FAILED, OK, SKIPPED, UNCHANGED, HostSpec,
                                    ANSIBLE_SSH_ARGS, SshOptions, StepResult, host_key_options)
from kubeforge.targets.deploy import ApplyReport, Deployment, _log, _timings
from kubeforge.targets.progress import Progress, render_summary
from kubeforge.targets.redact import redact, tail
from kubeforge.targets.runner import Selection

RUNNER_DIR = "ansible-runner"


def _proxy_command(options: SshOptions, key_file: str | None) -> str:
    """The jump as a ProxyCommand: options given on ssh's command line do not reach a
    ProxyJump connection, whose host key would be checked against ~/.ssh instead."""
    j = options.jump
    assert j is not None
    cmd = ["ssh", *host_key_options(options), "-o", "BatchMode=yes",
           "-o", f"ConnectTimeout={int(options.connect_timeout)}", "-p", str(j.port)]
    if options.jump_key_file or key_file:
        cmd += ["-i", str(options.jump_key_file or key_file)]
    return shlex.join([*cmd, "-W", "%h:%p", f"{j.user}@{j.address}"])


def runtime_inventory(hosts: dict[str, HostSpec], options: SshOptions,
                      control_dir: Path) -> dict[str, Any]:
    """Connection variables per host, with host keys checked against known_hosts.

    ``ansible_ssh_args`` replaces Ansible's default ssh_args and comes first on ssh's command
    line, so its StrictHostKeyChecking wins over any later one (OpenSSH keeps the first
    value); ``ansible_host_key_checking`` keeps Ansible from adding ``=no`` at all. Control
    sockets live in ``control_dir``, made for this run: a master left from an earlier run,
    connected under another known_hosts, is never reused."""
    ssh_args = [*ANSIBLE_SSH_ARGS, "-o", f"ControlPath={control_dir}/%C",
                *host_key_options(options),
                "-o", f"ConnectTimeout={int(options.connect_timeout)}"]
    out: dict[str, Any] = {}
    for name, h in hosts.items():
        hv: dict[str, Any] = {"ansible_host": h.address, "ansible_port": h.port,
                              "ansible_user": h.user, "ansible_become": h.become,
                              "ansible_become_user": h.become_user}
        if h.key_file:
            hv["ansible_ssh_private_key_file"] = h.key_file
        if options.jump is not None:
            hv["ansible_ssh_common_args"] = shlex.join(
                ["-o", f"ProxyCommand={_proxy_command(options, h.key_file)}"])
        out[name] = hv
    return {"all": {"vars": {"ansible_host_key_checking": True,
                             "ansible_ssh_args": shlex.join(ssh_args)},
                    "hosts": out}}


@contextmanager
def _interpreter_bin_first() -> Iterator[None]:
    """ansible-runner starts ``ansible-playbook`` from PATH: use the one installed beside
    this interpreter (a venv's bin), not some other Ansible on the machine."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


@dataclass
class _Open:
    step: Step
    started: float
    wall: float
    status: str = UNCHANGED
    exit_code: int | None = None
    message: str = ""
    stderr: tuple[str, ...] = ()
    stdout: tuple[str, ...] = ()


@dataclass
class EventTranslator:
    """Folds ansible-runner events into one StepResult per plan step."""

    steps: dict[str, Step]
    view: Progress
    known_hosts: Path | None = None  # named in host key refusals
    results: list[StepResult] = field(default_factory=list)
    open: dict[str, _Open] = field(default_factory=dict)  # host -> step in progress
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        host, task = data.get("host"), data.get("task") or ""
        step_id = step_id_of(task)
        if host is None or event.get("event", "").startswith("runner_item"):
            return True
        with self._lock:
            if step_id is None or step_id not in self.steps:
                self._other_task(event.get("event", ""), host, task, data)
                return True
            if event["event"] == "runner_on_start":
                current = self.open.get(host)
                if current is None or current.step.id != step_id:
                    self._close(host)
                    self.open[host] = _Open(self.steps[step_id], time.monotonic(), time.time())
                    self.view.started(self.steps[step_id])
            else:
                self._outcome(event["event"], host, task, data, event.get("stdout", ""))
        return True

    def _outcome(self, kind: str, host: str, task: str, data: dict[str, Any],
                 event_stdout: str) -> None:
        current = self.open.get(host)
        if current is None:
            return
        res = data.get("res") or {}
        probe = task.startswith("Probe ")
        if kind == "runner_on_ok" and not probe:
            step = current.step
            # A no_log result is censored down to a notice; the callback's line still says
            # "changed: [host]" or "ok: [host]" (after the TASK header with strategy free).
            changed = res.get("changed") if "censored" not in res else any(
                line.startswith("changed: [") for line in str(event_stdout).splitlines())
            if changed:
                current.status = CHANGED
            elif isinstance(step.action, Command) and step.check.kind == "none":
                current.status = OK
        elif kind in ("runner_on_failed", "runner_on_unreachable"):
            current.status = FAILED
            current.exit_code = res.get("rc")
            if res.get("censored"):
                current.message = "output hidden: the step touches secret files (no_log)"
            else:
                current.message = self._message(host, res)
                current.stderr = tail(str(res.get("stderr", "")).encode())
                current.stdout = tail(str(res.get("stdout", "")).encode())

    def _other_task(self, kind: str, host: str, task: str, data: dict[str, Any]) -> None:
        """A task that is no plan step (parent directories): only its failure matters."""
        if kind in ("runner_on_failed", "runner_on_unreachable"):
            self._close(host)
            res = data.get("res") or {}
            self.results.append(StepResult(
                f"{host}/-/{task}", host, "-", FAILED, exit_code=res.get("rc"),
                message=self._message(host, res),
                stderr_tail=tail(str(res.get("stderr", "")).encode())))

    def _message(self, host: str, res: dict[str, Any]) -> str:
        """The result's message; OpenSSH's host key refusals (a banner of @ signs, cut off
        at 300 characters) in the ssh target's words."""
        msg = str(res.get("msg", ""))
        where = self.known_hosts or "known_hosts"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in msg:
            return (f"{host}: host key mismatch: the host offers a key other than the one "
                    f"{where} holds for it. Refusing to connect: the host was reinstalled or "
                    "someone is in the way; check, then remove the old line (ssh-keygen -R)")
        if "Host key verification failed" in msg:
            return (f"{host}: its host key is not in {where}; add it (ssh-keyscan) or pass "
                    "--trust-on-first-use to record it")
        return redact(msg)[:300]

    def _close(self, host: str) -> None:
        current = self.open.pop(host, None)
        if current is None:
            return
        s = current.step
        result = StepResult(s.id, s.host, s.phase, current.status,
                            time.monotonic() - current.started, 1, current.exit_code,
                            current.message, current.stderr, current.stdout, current.wall)
        self.results.append(result)
        self.view.finished(result)

    def finish(self, selected: list[Step]) -> list[StepResult]:
        for host in list(self.open):
            self._close(host)
        seen = {r.step_id for r in self.results}
        stopped = next((r for r in self.results if r.status == FAILED), None)
        why = (f"not run: the playbook stopped at {stopped.step_id}" if stopped
               else "not run by the playbook")
        for step in selected:
            if step.id not in seen:
                result = StepResult(step.id, step.host, step.phase, SKIPPED, message=why)
                self.results.append(result)
                self.view.finished(result)
        return self.results


def run_playbook(dep: Deployment, options: SshOptions, selection: Selection, jobs: int,
                 handler: EventTranslator) -> dict[str, Any]:
    """Run ``site.yml`` for the selected phases and hosts; returns ansible-runner's stats."""
    import ansible_runner  # heavy import: only when this target is used

    steps = selection.steps(dep.plan)
    private = (dep.state_dir / RUNNER_DIR).resolve()  # ansible-runner works from elsewhere
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    if options.trust_on_first_use:  # ssh warns but goes on when it cannot record a key
        Path(options.known_hosts).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    inventory = private / "inventory.yaml"
    playbook_dir = (dep.build_root / "ansible").resolve()
    phases = [p for p in dep.plan.phases if any(s.phase == p for s in steps)]
    # Short and private: a unix socket path is limited to ~100 bytes.
    with _interpreter_bin_first(), tempfile.TemporaryDirectory(prefix="kf-ssh-") as control:
        write_atomic(inventory, yaml.safe_dump(
            runtime_inventory(dep.hosts, options, Path(control))).encode(), 0o600)
        run = ansible_runner.run(
            private_data_dir=str(private), playbook=str(playbook_dir / "site.yml"),
            inventory=str(inventory), event_handler=handler, quiet=True, forks=jobs,
            limit=",".join(sorted({s.host for s in steps})) or None,
            cmdline=f"--tags {','.join(phases)}" if phases else None,
            # ansible-runner turns host key checking off unless this is set.
            envvars={"ANSIBLE_CONFIG": str(playbook_dir / "ansible.cfg"),
                     "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_NOCOLOR": "1"},
            rotate_artifacts=3)
    return {"status": run.status, "rc": run.rc, "stats": run.stats or {}}


def apply(dep: Deployment, options: SshOptions, selection: Selection = Selection(),
          jobs: int = 8, console: Console | None = None,
          live: bool | None = None) -> ApplyReport:
    """``kubeforge apply --target ansible``: same report, log, timings and state as ssh."""
    console = console or Console(stderr=True)
    steps = list(selection.steps(dep.plan))
    by_id = {s.id: s for s in steps}
    if options.jump is not None and steps:
        from kubeforge.targets.ssh import SshTarget

        SshTarget(options).check_jump(dep.hosts[steps[0].host].key_file)
    state = dep.load_state()
    started, t0 = time.time(), time.monotonic()
    with Progress(steps, console, live) as view:
        translator = EventTranslator(by_id, view, Path(options.known_hosts))
        outcome = run_playbook(dep, options, selection, jobs, translator)
        results = translator.finish(steps)
    if outcome["status"] != "successful" and not any(r.status == FAILED for r in results):
        results.append(StepResult("-/-/ansible-playbook", "-", "-", FAILED,
                                  exit_code=outcome["rc"],
                                  message=f"ansible-playbook ended {outcome['status']}"))
    for r in results:
        if r.step_id in by_id and r.status != SKIPPED:
            state.record(by_id[r.step_id], ok=r.status != FAILED,
                         changed=r.status == CHANGED, seconds=r.seconds)
    report = ApplyReport(tuple(results), time.monotonic() - t0, False)
    write_atomic(dep.state_dir / "timings.json",
                 (json.dumps(_timings(dep, report, started), indent=1) + "\n").encode(), 0o644)
    _log(dep, report, started)
    render_summary(results, report.wall, console)
    return report
