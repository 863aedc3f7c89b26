"""Running one plan step on its host: requirement check, idempotency check, action, retries.

Hosts' sessions are opened lazily, once, and shared by every step on the host; a dropped
connection is reopened once per step attempt when the step may be retried.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from kubeforge.compiler.plan import PHASES, Command, Plan, Service, Step, Upload
from kubeforge.targets import actions
from kubeforge.targets.base import (CHANGED, FAILED, OK, UNCHANGED, CommandOutput, ConnectionLost,
                                    HostSpec, Session, StepResult, StepTimeout, Target,
                                    TargetError)
from kubeforge.targets.redact import redact, tail
from kubeforge.targets.state import ApplyState
from kubeforge.targets.upload_checks import UploadChecks, batch_script, split_batch

ATTEMPTS_IF_SAFE = 2  # one retry: enough for a dropped connection, cheap for a real failure


class Sessions:
    """One session per host, opened on first use; a failure to connect is remembered so the
    host's other steps fail at once with the same message."""

    def __init__(self, target: Target, hosts: dict[str, HostSpec]) -> None:
        self.target = target
        self.hosts = hosts
        self._sessions: dict[str, Session] = {}
        self._errors: dict[str, TargetError] = {}
        self._locks = {name: threading.Lock() for name in hosts}
        self._stopped = False

    def stop(self) -> None:
        """Interrupt: cut every connection (running commands fail fast) and open no more."""
        self._stopped = True
        for session in list(self._sessions.values()):
            session.close()

    def get(self, host: str, fresh: bool = False) -> Session:
        if self._stopped:
            raise TargetError(f"{host}: interrupted")
        with self._locks[host]:
            if host in self._errors and not fresh:
                raise self._errors[host]
            if fresh and host in self._sessions:
                self._sessions.pop(host).close()
            if host not in self._sessions:
                try:
                    self._sessions[host] = self.target.open(self.hosts[host])
                except TargetError as exc:
                    self._errors[host] = exc
                    raise
                self._errors.pop(host, None)
            return self._sessions[host]

    def close(self) -> None:
        for session in list(self._sessions.values()):
            session.close()
        self._sessions.clear()


def _before(plan: Plan, phase: str) -> str | None:
    """The phase before ``phase``: where a run that must not reach it stops."""
    rank = list(plan.phases or PHASES).index(phase)
    return plan.phases[rank - 1] if rank > 0 else None


class StepRunner:
    def __init__(self, plan: Plan, build_root: Path, state: ApplyState, sessions: Sessions,
                 sleep: Callable[[float], None] = time.sleep,
                 digest_key: bytes | None = None) -> None:
        self.plan = plan
        self.build_root = build_root
        self.digest_key = digest_key  # the state directory's: checks secret uploads' sources
        self.state = state
        self.sessions = sessions
        self.sleep = sleep
        self._missing: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self.checks = UploadChecks(plan)
        self._stats: dict[str, str] = {}  # upload step -> its file's stat, seen this run

    # -- pieces ---------------------------------------------------------------------------
    def _run(self, step: Step, script: str, timeout: float,
             stdin: bytes | None = None) -> CommandOutput:
        return self.sessions.get(step.host).run(script, timeout=timeout, stdin=stdin)

    def missing_programs(self, step: Step) -> tuple[str, ...]:
        wanted = actions.required_programs(step)
        if not wanted:
            return ()
        key = (step.host, wanted)
        if key not in self._missing:
            out = self._run(step, actions.which_script(wanted), actions.PROBE_TIMEOUT)
            self._missing[key] = tuple(out.stdout.decode().split())
        return self._missing[key]

    def satisfied(self, step: Step, clean: bool = True) -> bool:
        """The step's check: True means the host already is as the step would leave it."""
        if isinstance(step.action, Upload) and step.check.kind == "sha256":
            want = actions.host_sha256(self.build_root, step.action, self.digest_key)
            out = self.checks.take(step)
            if out is None:
                out = self._check_uploads(step, clean)
            stat = (actions.upload_matches(step.action, out.stdout, want)
                    if out.exit_code == 0 else None)
            if stat is not None:
                self._stats[step.id] = stat
            return stat is not None
        if step.check.kind == "probe":
            timeout = min(actions.action_timeout(step), 120)
            return self._run(step, step.check.value, timeout).exit_code == 0
        return False

    def _check_uploads(self, step: Step, clean: bool) -> CommandOutput:
        """Checks ``step`` and the uploads that follow it on the host in one round trip; the
        others' answers wait in ``self.checks``."""
        run = self.checks.run_of(step)
        scripts = [actions.upload_check_script(s.action, clean, self.state.known_stat(s))
                   for s in run]
        if len(run) == 1:
            return self._run(step, scripts[0], actions.PROBE_TIMEOUT)
        outputs = split_batch(self._run(step, batch_script(scripts),
                                        actions.PROBE_TIMEOUT * len(run)), len(run))
        self.checks.keep(run[1:], outputs[1:])
        return outputs[0]

    def _action(self, step: Step, restart: bool) -> CommandOutput:
        action = step.action
        timeout = actions.action_timeout(step)
        if isinstance(action, Upload):
            payload = actions.Payload.read(self.build_root, action, self.digest_key)
            # Bundle binaries and image archives are hundreds of MB: allow 1 MB/s on top.
            timeout = max(timeout, timeout + len(payload.data) // 1_000_000)
            return self._run(step, actions.upload_script(action, payload.sha256), timeout,
                             payload.data)
        if isinstance(action, Service):
            return self._run(step, actions.service_script(action, restart), timeout)
        return self._run(step, actions.command_script(action), timeout)

    def _missing_message(self, step: Step, missing: tuple[str, ...]) -> str:
        before = _before(self.plan, step.phase)
        stop = (f"run with --until {before} on hosts without Kubernetes packages" if before
                else "leave hosts without Kubernetes packages out with --limit")
        return (f"{missing[0]} is not installed on {step.host}: {stop}, or set "
                f"`install bundle path ...` (needed by {step.id})")

    # -- one step -------------------------------------------------------------------------
    def run(self, step: Step) -> StepResult:
        start, wall = time.monotonic(), time.time()

        def result(status: str, attempts: int = 0, out: CommandOutput | None = None,
                   message: str = "") -> StepResult:
            seconds = time.monotonic() - start
            if status != FAILED:
                self.state.record(step, ok=True, changed=status == CHANGED, seconds=seconds,
                                  host_stat=self._stats.pop(step.id, ""))
            else:
                self.state.record(step, ok=False, changed=False, seconds=seconds)
            return StepResult(step.id, step.host, step.phase, status, seconds, attempts,
                              out.exit_code if out else None, redact(message),
                              tail(out.stderr) if out else (), tail(out.stdout) if out else (),
                              wall)

        retry_safe = not isinstance(step.action, Command) or step.action.retry_safe
        for attempt in (1, 2):  # checks are read-only: always safe to repeat once
            try:
                if attempt > 1:
                    self.sessions.get(step.host, fresh=True)
                missing = self.missing_programs(step)
                if missing:
                    return result(FAILED, message=self._missing_message(step, missing))
                restart = self.state.needs_restart(step)
                if self.satisfied(step) and not restart:
                    return result(UNCHANGED)
                break
            except ConnectionLost as exc:
                if attempt > 1:
                    return result(FAILED, message=str(exc))
            except (TargetError, actions.BuildMismatch) as exc:
                return result(FAILED, message=str(exc))
        if not retry_safe and self.state.was_interrupted(step):
            return result(FAILED, message=(
                f"{step.id} was interrupted in an earlier apply and is not safe to run "
                f"twice; run `kubeforge reset --limit {step.host}` (or finish it by hand), "
                "then apply again"))
        if not retry_safe:
            self.state.mark_started(step)
        attempts, out, message, reconnect = 0, None, "", False
        changes = not (isinstance(step.action, Command) and step.check.kind == "none")
        while attempts < (ATTEMPTS_IF_SAFE if retry_safe else 1):
            attempts += 1
            try:
                if reconnect:
                    self.sessions.get(step.host, fresh=True)
                    reconnect = False
                self.checks.acted(step)
                out = self._action(step, restart)
            except ConnectionLost as exc:
                out, message, reconnect = None, f"connection lost: {exc}", True
            except StepTimeout as exc:
                out, message = None, f"timed out after {actions.action_timeout(step)}s ({exc})"
            except (TargetError, actions.BuildMismatch) as exc:
                return result(FAILED, attempts, message=str(exc))
            else:
                if out.exit_code == 0:
                    if isinstance(step.action, Upload):  # its script's last line
                        self._stats[step.id] = (out.stdout.splitlines() or [b""])[-1].decode()
                    return result(CHANGED if changes else OK, attempts, out)
                message = f"exit code {out.exit_code}"
            if attempts < (ATTEMPTS_IF_SAFE if retry_safe else 1):
                self.sleep(min(2.0, attempts))
        return result(FAILED, attempts, out, message)
