"""Per-cluster apply state: which steps completed, with which definition, and what changed.

Kept in ``<state dir>/apply-state.json`` (the cluster's 0700 state directory) and rewritten
atomically after every step, so a killed apply loses at most the step in flight. The state
never decides on its own that a host is right (every step's check still runs); it answers
what the hosts cannot:

* a service must restart because a file it reads changed in an earlier, interrupted apply
  (the upload now matches, so this apply alone would not know);
* a step that is not safe to retry was started and never finished;
* ``plan`` without ``--probe``: which steps are new or changed since the last apply.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.plan import Service, Step, Upload
from kubeforge.errors import StateError

FORMAT = "kubeforge-apply-state/1"
DONE, STARTED, FAILED = "done", "started", "failed"
#: An upload's file as ``actions.STAT`` prints it (a stat without nanoseconds, from an old or
#: busybox ``stat``, is never trusted: it could miss a change within the same second).
_HOST_STAT = re.compile(r"\d+\.\d{9}:\d+:\d+")


def _stat_key(step_id: str, digest: str) -> tuple[str, str, str]:
    """An upload step's host, its name (``upload-<path>``, the same in every phase) and
    content."""
    host, _, rest = step_id.partition("/")
    return host, rest.partition("/")[2], digest


def step_fingerprint(step: Step) -> str:
    """Hash of what the step does (content hashes included); its prose does not count, nor
    do the steps it waits for: a node joining adds edges to steps of the hosts already
    there (kubeadm init waits for every load balancer), which must not run them again."""
    data = step.to_dict()
    data.pop("why", None)
    data.pop("needs", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StepRecord:
    fingerprint: str
    status: str
    done_seq: int = 0  # sequence number of the last successful run
    changed_seq: int = 0  # sequence number of the last run that changed the host (0: never)
    seconds: float = 0.0
    # An upload's file on its host right after this definition's content was written or
    # verified there (``actions.STAT``): while the file keeps it, the content needs no re-hash.
    host_stat: str = ""
    #: The content (the upload's digest) ``host_stat`` was taken with: another step that
    #: uploads the same content to the same path (the upgrade's and the bootstrap plan's
    #: uploads of one image) may use the stat too.
    digest: str = ""


class ApplyState:
    def __init__(self, path: Path, cluster: str, seq: int = 0,
                 steps: dict[str, StepRecord] | None = None,
                 removed: set[str] | None = None, kubernetes: str = "") -> None:
        self.path = path
        self.cluster = cluster
        self.seq = seq
        self.steps: dict[str, StepRecord] = dict(steps or {})
        # Hosts an apply removed from the cluster: the inventory may still list them.
        self.removed: set[str] = set(removed or ())
        # The Kubernetes version the cluster runs, as of the last apply after `kubeadm init`
        # ("" before that): a file naming another one is a version change (version_change).
        self.kubernetes = kubernetes
        self._lock = threading.Lock()
        # (host, step name, digest) -> (done_seq, host_stat, step id), built on first use.
        self._stats: dict[tuple[str, str, str], tuple[int, str, str]] | None = None

    @classmethod
    def load(cls, path: Path, cluster: str) -> "ApplyState":
        if not path.exists():
            return cls(path, cluster)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("cluster") != cluster:
                raise ValueError(f"format {data.get('format')!r}, cluster {data.get('cluster')!r}")
            steps = {k: StepRecord(**v) for k, v in data["steps"].items()}
            return cls(path, cluster, int(data["seq"]), steps, set(data.get("removed", ())),
                       str(data.get("kubernetes", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{path} is not an apply state of cluster {cluster}: {exc}; move "
                             "it away to start over (every step's check still runs)") from None

    def _save(self) -> None:
        data: dict[str, Any] = {"format": FORMAT, "cluster": self.cluster, "seq": self.seq,
                                "steps": {k: vars(v) for k, v in sorted(self.steps.items())}}
        if self.removed:
            data["removed"] = sorted(self.removed)
        if self.kubernetes:
            data["kubernetes"] = self.kubernetes
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(),
                     0o600)

    # -- queries --------------------------------------------------------------------------
    def is_done(self, step: Step) -> bool:
        rec = self.steps.get(step.id)
        return rec is not None and rec.status == DONE and rec.fingerprint == step_fingerprint(step)

    def was_interrupted(self, step: Step) -> bool:
        rec = self.steps.get(step.id)
        return rec is not None and rec.status == STARTED

    def known_stat(self, step: Step) -> str:
        """The stat the step's file had when its current content was last written or
        verified, or "" (never, or the step's definition changed since): its own, or the
        newer one another step on the host recorded for the same content at the same path
        (a file whose stat, inode and ctime included, still equals it was not touched)."""
        rec = self.steps.get(step.id)
        own = (rec.done_seq, rec.host_stat) if rec is not None and rec.status == DONE \
            and rec.fingerprint == step_fingerprint(step) else (0, "")
        if not isinstance(step.action, Upload):
            return own[1]
        with self._lock:
            if self._stats is None:
                self._stats = {}
                for step_id, other in self.steps.items():
                    self._index_stat(step_id, other)
            seq, stat, source = self._stats.get(_stat_key(step.id, step.action.sha256),
                                                (0, "", ""))
        # Its own record vouches for it only as its own (done, of this definition).
        return stat if source != step.id and seq > own[0] else own[1]

    def _index_stat(self, step_id: str, rec: StepRecord) -> None:
        if rec.status == DONE and rec.host_stat and rec.digest:
            key = _stat_key(step_id, rec.digest)
            if self._stats.get(key, (0, "", ""))[0] < rec.done_seq:
                self._stats[key] = (rec.done_seq, rec.host_stat, step_id)

    def needs_restart(self, step: Step) -> bool:
        """A service whose inputs changed after it last ran (in any apply)."""
        if not isinstance(step.action, Service):
            return False
        own = self.steps.get(step.id)
        last_run = own.done_seq if own and own.status == DONE else 0
        return any(self.steps[r].changed_seq > last_run
                   for r in step.action.restart_on if r in self.steps)

    # -- updates (each one is saved at once) --------------------------------------------------
    def mark_started(self, step: Step) -> None:
        with self._lock:
            self.removed.discard(step.host)  # declared again
            old = self.steps.get(step.id)
            self.steps[step.id] = replace(old, status=STARTED) if old else \
                StepRecord(step_fingerprint(step), STARTED)
            self._save()

    def record(self, step: Step, *, ok: bool, changed: bool, seconds: float,
               host_stat: str = "") -> None:
        with self._lock:
            self.removed.discard(step.host)  # declared again
            self.seq += 1
            old = self.steps.get(step.id) or StepRecord(step_fingerprint(step), FAILED)
            if ok:
                host_stat = host_stat if _HOST_STAT.fullmatch(host_stat) else ""
                self.steps[step.id] = StepRecord(
                    step_fingerprint(step), DONE, self.seq,
                    self.seq if changed else old.changed_seq, round(seconds, 3), host_stat,
                    step.action.sha256 if host_stat and isinstance(step.action, Upload) else "")
                if self._stats is not None:
                    self._index_stat(step.id, self.steps[step.id])
            else:
                # A step that was started (not safe to retry) and then failed may have
                # changed the host halfway: keep it marked as started.
                status = STARTED if old.status == STARTED else FAILED
                self.steps[step.id] = replace(old, status=status, seconds=round(seconds, 3))
            self._save()

    def set_kubernetes(self, version: str) -> None:
        with self._lock:
            if self.kubernetes != version:
                self.kubernetes = version
                self._save()

    def hosts(self) -> set[str]:
        """Hosts with any recorded step."""
        return {step_id.split("/", 1)[0] for step_id in self.steps}

    def mark_removed(self, host: str) -> None:
        """A host removed from the cluster: nothing of it is applied any more, and an
        inventory that still lists it is not a mistake."""
        with self._lock:
            for step_id in [i for i in self.steps if i.split("/", 1)[0] == host]:
                del self.steps[step_id]
            self.removed.add(host)
            self._save()

    def forget_hosts(self, hosts: set[str], plan_steps: dict[str, Step]) -> None:
        """After a reset: the hosts' steps are undone."""
        with self._lock:
            for step_id in list(self.steps):
                step = plan_steps.get(step_id)
                if step is None or step.host in hosts:
                    del self.steps[step_id]
            self._save()
