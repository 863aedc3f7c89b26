"""The Kubernetes version a cluster runs against the one its file names.

Once ``kubeadm init`` has run, apply records the cluster's version in the apply state. A file
that names another version is one of:

* a downgrade: refused, kubeadm cannot take a control plane back to an older release;
* a skipped minor: refused, kubeadm upgrades one minor at a time;
* the next patch or minor: apply upgrades the cluster first, in kubeadm's order
  (targets/upgrade.py), when the file installs a bundle to take the release from. Without
  one, the person upgrades with kubeadm and ``apply --version-upgraded`` records it: apply
  alone would put new kubelets under API servers of the old release.
"""

from __future__ import annotations

from kubeforge.compiler.versions import parse
from kubeforge.errors import UsageError
from kubeforge.targets.state import DONE, ApplyState

INIT_STEP = "/control-plane-init/kubeadm-init"


class VersionChange(UsageError):
    """The file names another Kubernetes version than the cluster runs."""


DOWNGRADE, SKIP, UPGRADE = "downgrade", "skip", "upgrade"


def change(cluster: str, running: str, wanted: str) -> str:
    """How every message about a version change starts."""
    return f"cluster {cluster} runs Kubernetes {running} and the file says {wanted}"


def problem(cluster: str, running: str, wanted: str) -> tuple[str, str] | None:
    """What kind of change taking ``cluster`` from ``running`` to ``wanted`` is, and why
    apply refuses it (None: no change, or nothing recorded yet)."""
    if not running or running == wanted:
        return None
    (old_minor, old_patch), (new_minor, new_patch) = parse(running), parse(wanted)
    head = change(cluster, running, wanted)
    if (new_minor, new_patch) < (old_minor, old_patch):
        return DOWNGRADE, (f"{head}: a downgrade, which kubeadm cannot do to a control "
                           f'plane; set `kubernetes "{running}"` again')
    if new_minor > old_minor + 1:
        return SKIP, (f"{head}: that skips 1.{old_minor + 1}, and kubeadm upgrades one "
                      f"minor at a time; go to a 1.{old_minor + 1} release first")
    return UPGRADE, f"{head}: an upgrade"


def check(cluster: str, running: str, wanted: str) -> str | None:
    """Refuses a downgrade or a skipped minor; returns UPGRADE for an upgrade by one minor
    or patch (None: no change)."""
    found = problem(cluster, running, wanted)
    if found is None:
        return None
    if found[0] != UPGRADE:
        raise VersionChange(found[1])
    return UPGRADE


def initialised(state: ApplyState) -> bool:
    """Whether an apply ran ``kubeadm init`` (its step done, in any definition)."""
    return any(step_id.endswith(INIT_STEP) and rec.status == DONE
               for step_id, rec in state.steps.items())


def record(state: ApplyState, version: str) -> None:
    """After an apply: once the cluster is initialised, it runs the file's version."""
    if initialised(state):
        state.set_kubernetes(version)
