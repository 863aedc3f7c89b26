"""The Kubernetes version a cluster runs against the one its file names.

Once ``kubeadm init`` has run, apply records the cluster's version in the apply state. A file
that names another version is refused before anything runs, since apply alone would replace
kubelets, kubectl and kubeadm configs under control planes that stay at the old version
(kubeadm's static pods change only through ``kubeadm upgrade``), leaving kubelets newer than
their API servers, which the version skew policy forbids:

* a downgrade: kubeadm cannot take a control plane back to an older release;
* a skipped minor: kubeadm upgrades one minor at a time;
* the next patch or minor: ``kubeadm upgrade`` is not something apply runs yet; after
  upgrading with kubeadm (``upgrade plan/apply`` on one control plane, ``upgrade node`` on
  the others, then kubelet and kubectl per node), ``apply --version-upgraded`` records it.
"""

from __future__ import annotations

from kubeforge.compiler.versions import parse
from kubeforge.errors import UsageError
from kubeforge.targets.state import DONE, ApplyState

INIT_STEP = "/control-plane-init/kubeadm-init"


class VersionChange(UsageError):
    """The file names another Kubernetes version than the cluster runs."""


DOWNGRADE, SKIP, UPGRADE = "downgrade", "skip", "upgrade"


def problem(cluster: str, running: str, wanted: str) -> tuple[str, str] | None:
    """What kind of change taking ``cluster`` from ``running`` to ``wanted`` is, and why
    apply refuses it (None: no change, or nothing recorded yet)."""
    if not running or running == wanted:
        return None
    (old_minor, old_patch), (new_minor, new_patch) = parse(running), parse(wanted)
    head = f"cluster {cluster} runs Kubernetes {running} and the file says {wanted}"
    if (new_minor, new_patch) < (old_minor, old_patch):
        return DOWNGRADE, (f"{head}: a downgrade, which kubeadm cannot do to a control "
                           f'plane; set `kubernetes "{running}"` again')
    if new_minor > old_minor + 1:
        return SKIP, (f"{head}: that skips 1.{old_minor + 1}, and kubeadm upgrades one "
                      f"minor at a time; go to a 1.{old_minor + 1} release first")
    return UPGRADE, (f"{head}: an upgrade, which apply does not run yet (it would put new kubelets "
                     f"under API servers of {running}); upgrade with kubeadm (`kubeadm upgrade "
                     f"apply v{wanted}` on one control plane, `kubeadm upgrade node` on the "
                     "others, then kubelet and kubectl node by node), then run `kubeforge "
                     "apply --version-upgraded`")


def check(cluster: str, running: str, wanted: str, upgraded: bool = False) -> None:
    """Refuses a version change; ``upgraded`` (the person upgraded with kubeadm) lets an
    upgrade by one minor or patch through, never a downgrade or a skipped minor."""
    found = problem(cluster, running, wanted)
    if found is not None and not (upgraded and found[0] == UPGRADE):
        raise VersionChange(found[1])


def initialised(state: ApplyState) -> bool:
    """Whether an apply ran ``kubeadm init`` (its step done, in any definition)."""
    return any(step_id.endswith(INIT_STEP) and rec.status == DONE
               for step_id, rec in state.steps.items())


def record(state: ApplyState, version: str) -> None:
    """After an apply: once the cluster is initialised, it runs the file's version."""
    if initialised(state):
        state.set_kubernetes(version)
