"""Checking a host's uploads in one round trip instead of one per file.

A host's plan has runs of uploads one after another (PKI, kubeconfigs, manifests, the bundle's
binaries and images). When the first of a run is checked, the checks of the rest of the run go
along in the same script, and their answers wait here until their steps come up. An answer is
only good while nothing else ran on the host: any action but an upload of another path throws
the host's waiting answers away (the host runs one step at a time, so nothing else can change
its files in between; other hosts' steps only touch their own host).
"""

from __future__ import annotations

import threading

from kubeforge.compiler.plan import Plan, Step, Upload
from kubeforge.targets.base import CommandOutput, TargetError

MARK = "kf-check"
#: Enough for the longest run in a plan (a control plane's PKI) while keeping the script small.
BATCH = 48


def checkable(step: Step) -> bool:
    return isinstance(step.action, Upload) and step.check.kind == "sha256"


def batch_script(scripts: list[str]) -> str:
    """Each check in its own subshell (its ``exit`` ends only itself), each followed by a
    marker line with its exit code."""
    return "\n".join(f'( {script} ); echo "{MARK} $?"' for script in scripts)


def split_batch(output: CommandOutput, count: int) -> list[CommandOutput]:
    """The batch's output as ``count`` checks' own outputs."""
    outputs: list[CommandOutput] = []
    lines: list[bytes] = []
    prefix = MARK.encode() + b" "
    for line in output.stdout.splitlines():
        if line.startswith(prefix) and line[len(prefix):].isdigit():
            outputs.append(CommandOutput(int(line[len(prefix):]), b"".join(lines), b"", 0.0))
            lines = []
        else:
            lines.append(line + b"\n")
    if len(outputs) != count:
        raise TargetError(f"checking {count} uploads at once gave {len(outputs)} answers "
                          f"(exit code {output.exit_code}): "
                          f"{output.stderr.decode(errors='replace').strip()[-300:]}")
    return outputs


class UploadChecks:
    """Answers of checks that went along with an earlier one, by step id."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._answers: dict[str, CommandOutput] = {}
        self._lock = threading.Lock()

    def run_of(self, step: Step) -> list[Step]:
        """``step`` and the uploads right after it on its host, up to :data:`BATCH`."""
        steps = self.plan.for_host(step.host)
        run = [step]
        for other in steps[steps.index(step) + 1:]:
            if len(run) == BATCH or not checkable(other):
                break
            run.append(other)
        return run

    def take(self, step: Step) -> CommandOutput | None:
        with self._lock:
            return self._answers.pop(step.id, None)

    def keep(self, steps: list[Step], outputs: list[CommandOutput]) -> None:
        with self._lock:
            self._answers.update((s.id, out) for s, out in zip(steps, outputs))

    def acted(self, step: Step) -> None:
        """``step``'s action ran (or may have): answers it could have changed are void."""
        with self._lock:
            for step_id in list(self._answers):
                other = self.plan.step(step_id)
                if other.host != step.host:
                    continue
                if not isinstance(step.action, Upload) or other.action.path == step.action.path:
                    del self._answers[step_id]
