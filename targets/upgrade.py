"""The upgrade ``apply`` runs before the bootstrap plan when the cluster runs an older release
than the file names: ``upgrade-plan.json`` (compiler/emit/plan_upgrade.py) through the same
runner, state and progress as every apply, so an interrupted upgrade resumes where it stopped.

It runs only on a cluster every declared node of which has joined: a node added in the same
change would have no kubeadm configuration to upgrade (add nodes before or after, at one
release). Once every step is done the cluster's release is recorded, and the bootstrap plan
that follows finds the binaries and images in place.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kubeforge.compiler.plan import Plan
from kubeforge.targets.deploy import Deployment
from kubeforge.targets.state import DONE, ApplyState
from kubeforge.targets.version_change import INIT_STEP, VersionChange, change

PLAN_FILE = "upgrade-plan.json"
#: A node is in the cluster once one of these ran on it.
JOINED = (INIT_STEP, "/control-plane-join/kubeadm-join", "/workers-join/kubeadm-join")


def load(dep: Deployment) -> Plan | None:
    """The build's upgrade plan; None when the file installs no bundle."""
    path = Path(dep.build_root) / PLAN_FILE
    return Plan.from_json(path.read_text()) if path.exists() else None


def deployment(dep: Deployment, plan: Plan) -> Deployment:
    return replace(dep, plan=plan)


def not_joined(plan: Plan, state: ApplyState) -> list[str]:
    """The upgrade's hosts that never joined the cluster (by the apply state)."""
    done = {step_id for step_id, rec in state.steps.items() if rec.status == DONE}
    return [h.name for h in plan.hosts
            if any(s.id.endswith("/kubeadm-upgrade") for s in plan.for_host(h.name))
            and not any(f"{h.name}{j}" in done for j in JOINED)]


def refusal(dep: Deployment, plan: Plan | None, state: ApplyState, running: str,
            limited: bool) -> str | None:
    """Why apply cannot run the upgrade now, or None."""
    head = change(dep.plan.cluster, running, dep.kubernetes)
    if plan is None:
        return (f"{head}: apply upgrades a cluster from its bundle, and the file installs none; "
                f"upgrade with kubeadm (`kubeadm upgrade apply v{dep.kubernetes}` on one control "
                "plane, `kubeadm upgrade node` on the others, then kubelet and kubectl node by "
                "node), then run `kubeforge apply --version-upgraded`")
    if limited:
        return (f"{head}: an upgrade goes through every node in kubeadm's order; run apply "
                "without --limit, --phase or --until")
    missing = not_joined(plan, state)
    if missing:
        return (f"{head}, and {', '.join(missing)} never joined it: upgrade the nodes the "
                "cluster has first (declare the new ones after the upgrade), or add them "
                f'at {running} (`kubernetes "{running}"`) and upgrade afterwards')
    return None


def check(dep: Deployment, plan: Plan | None, state: ApplyState, running: str,
          limited: bool) -> None:
    problem = refusal(dep, plan, state, running, limited)
    if problem:
        raise VersionChange(problem)
