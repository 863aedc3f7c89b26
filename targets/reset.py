"""``kubeforge reset``: undo what apply did on each host.

In this order: ``kubeadm reset -f`` where kubeadm exists (it removes what kubeadm made, and
leaves iptables alone as it says), stop and disable the services apply enabled, delete the
data directory of an external etcd member apply started (or of a stacked member kubeadm did
not get to: a join cut before kubeadm wrote etcd's manifest leaves /var/lib/etcd behind, and
the next join's preflight refuses it), put back what each file apply placed replaced and
remove the rest (compiler/emit/originals.py), and reload systemd. Firewall rules are never touched: kubeforge creates none, and flushing rules
it did not create would cut other software off. What apply did is read from the apply state;
when the state knows nothing of a host (lost state directory) the plan stands in for it.
"""

from __future__ import annotations

import re
import shlex
from concurrent.futures import ThreadPoolExecutor

from kubeforge.compiler.emit.originals import restore_script
from kubeforge.compiler.plan import Service, Step, Upload
from kubeforge.targets.base import HostSpec, Target, TargetError
from kubeforge.targets.deploy import Deployment
from kubeforge.targets.redact import tail

ETCD_ENV = "/etc/default/etcd"
#: kubeadm's local etcd dataDir (compiler/emit/kubeadm.py).
STACKED_ETCD_DATA = "/var/lib/etcd"
CONTROL_PLANE_PHASES = ("control-plane-init", "control-plane-join")


def _undo_steps(dep: Deployment, host: str, recorded: set[str]) -> list[Step]:
    steps = dep.plan.for_host(host)
    done = [s for s in steps if s.id in recorded]
    return done or list(steps)


def _etcd_data_dir(dep: Deployment, steps: list[Step]) -> str | None:
    for s in steps:
        if isinstance(s.action, Upload) and s.action.path == ETCD_ENV and not s.action.secret:
            text = (dep.build_root / s.action.source).read_text()
            found = re.search(r'^ETCD_DATA_DIR="?([^"\n]+)"?', text, re.M)
            if found and found.group(1).startswith("/") and found.group(1) != "/":
                return found.group(1)
    return None


def reset_script(dep: Deployment, host: str, recorded: set[str]) -> str:
    steps = _undo_steps(dep, host, recorded)
    services = [s.action.name for s in reversed(steps) if isinstance(s.action, Service)
                and s.action.enabled]
    files = [s.action.path for s in steps if isinstance(s.action, Upload)]
    lines = ["if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f; fi"]
    lines += [f"systemctl disable --now {shlex.quote(n)} 2>/dev/null || true" for n in services]
    data = _etcd_data_dir(dep, steps)
    if data and "etcd" in services:
        lines.append(f"rm -rf {shlex.quote(data)}/member")
    stacked = not any(isinstance(s.action, Service) and s.action.name == "etcd"
                      for s in dep.plan.steps)
    if stacked and any(s.phase in CONTROL_PLANE_PHASES for s in dep.plan.for_host(host)):
        lines.append(f"rm -rf {STACKED_ETCD_DATA}")
    if files:
        lines.append(restore_script(files))
    lines.append("systemctl daemon-reload")
    return "\n".join(lines)


def reset(dep: Deployment, target: Target, hosts: list[str], jobs: int = 8) -> dict[str, str]:
    """Reset ``hosts`` in parallel; returns host -> "" on success or an error message."""
    state = dep.load_state()
    recorded = {i for i, r in state.steps.items() if r.status in ("done", "started")}

    def one(name: str) -> str:
        spec: HostSpec = dep.hosts[name]
        try:
            session = target.open(spec)
            try:
                out = session.run(reset_script(dep, name, recorded), timeout=600)
            finally:
                session.close()
        except TargetError as exc:
            return str(exc)
        if out.exit_code != 0:
            return f"exit code {out.exit_code}: " + " / ".join(tail(out.stderr, 4))
        return ""

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcome = dict(zip(hosts, pool.map(one, hosts)))
    target.close()
    plan_steps = {s.id: s for s in dep.plan.steps}
    state.forget_hosts({h for h, err in outcome.items() if not err}, plan_steps)
    return outcome
