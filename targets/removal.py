"""Nodes the file no longer declares: drained, deleted from the cluster, their etcd member
removed and their host reset, one node at a time, and only when ``apply --allow-removal``
says so (``plan`` shows what would happen).

Which hosts are leaving, and what they were, comes from the apply state: a host with
recorded steps that the plan no longer has. Its roles are the phases those steps ran in (a
kubeadm join or init: a node; a control-plane phase: a control plane; the etcd phase: an
external etcd member). How to reset it comes from the script apply saved for it
(``<state dir>/reset/<host>.sh``) while the file still declared it, since the new build no
longer knows its files.

In kubeadm's order: drain, reset the host (its API server and etcd stop; kubeadm reset also
takes a stacked member out of etcd), remove the etcd member if it is still listed, delete
the node. Quorum first: before anything stops, every other member's health is read, and a
removal that would leave fewer healthy members than the smaller cluster needs for a quorum
is refused (etcd would stop taking writes). kubectl talks to the applier's own API server,
not the VIP: the load balancers still list the leaving control plane until the apply that
follows, and a request they sent to it while it stopped would time out. Every action is
idempotent (a drained, deleted or removed node or member is skipped), so an interrupted
removal converges when ``apply`` runs again.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kubeforge.compiler import hostport
from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.emit.kubeadm import API_SERVER_PORT
from kubeforge.compiler.plan import Command, Plan
from kubeforge.errors import KubeforgeError
from kubeforge.targets.base import HostSpec, Session, Target, TargetError
from kubeforge.targets.redact import tail
from kubeforge.targets.state import ApplyState

KUBECTL = ("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf")
NODE_PHASES = ("control-plane-init", "control-plane-join", "workers-join")
CONTROL_PLANE_PHASES = ("control-plane-init", "control-plane-join")
DRAIN_TIMEOUT = 300


class RemovalError(KubeforgeError):
    """A leaving host could not be removed (or must not be: quorum)."""


@dataclass(frozen=True)
class Leaving:
    host: str
    node: bool  # a Kubernetes node (kubeadm init or join ran there)
    control_plane: bool
    etcd: bool  # an external etcd member
    spec: HostSpec | None  # None: not in the inventory; removed from the cluster, not reset

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r, yes in (("control-plane", self.control_plane),
                                      ("worker", self.node and not self.control_plane),
                                      ("etcd", self.etcd)) if yes)

    def actions(self, stacked: bool) -> tuple[str, ...]:
        out = []
        if self.node:
            out.append("drain")
        out.append("reset host" if self.spec else "no reset (not in the inventory)")
        if self.etcd or (self.control_plane and stacked):
            out.append("remove etcd member")
        if self.node:
            out.append("delete node")
        return tuple(out)


def reset_script_path(state_dir: Path, host: str) -> Path:
    return state_dir / "reset" / f"{host}.sh"


def save_reset_scripts(state_dir: Path, scripts: dict[str, str]) -> None:
    """What apply leaves for a later removal: each host's reset as of this plan (0600: it
    names paths of keys, and reset runs it as root)."""
    for host, script in scripts.items():
        path = reset_script_path(state_dir, host)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = (script + "\n").encode()
        if not path.exists() or path.read_bytes() != data:
            write_atomic(path, data, 0o600)


def save_for_later(dep) -> None:
    """Before an apply: every planned host's reset as this plan would undo it (a
    ``targets.deploy.Deployment``)."""
    from kubeforge.targets.reset import reset_script

    every = {s.id for s in dep.plan.steps}
    save_reset_scripts(dep.state_dir, {h.name: reset_script(dep, h.name, every)
                                       for h in dep.plan.hosts})


def stacked(plan: Plan) -> bool:
    """Whether etcd runs inside the control planes (no external etcd service in the plan)."""
    return not any(s.phase == "etcd" for s in plan.steps)


def leaving(plan: Plan, state: ApplyState, inventory: dict[str, HostSpec]) -> list[Leaving]:
    """Hosts the state has steps of and the plan does not: workers first, then control
    planes, then external etcd members (the API stays up while nodes go)."""
    planned = {h.name for h in plan.hosts}
    phases: dict[str, set[str]] = {}
    for step_id in state.steps:
        host, phase, _ = step_id.split("/", 2)
        if host not in planned:
            phases.setdefault(host, set()).add(phase)
    out = [Leaving(host, bool(p & set(NODE_PHASES)), bool(p & set(CONTROL_PLANE_PHASES)),
                   "etcd" in p, inventory.get(host))
           for host, p in phases.items()]
    return sorted(out, key=lambda l: (l.control_plane, l.etcd, l.host))


def describe(plan: Plan, hosts: list[Leaving]) -> list[dict]:
    s = stacked(plan)
    return [{"host": l.host, "roles": list(l.roles), "actions": list(l.actions(s)),
             "reachable": l.spec is not None} for l in hosts]


def refusal(plan: Plan, hosts: list[Leaving]) -> str:
    lines = [f"cluster {plan.cluster} no longer declares {', '.join(l.host for l in hosts)}; "
             "apply would:"]
    lines += [f"  {d['host']} ({', '.join(d['roles']) or 'no role'}): {', '.join(d['actions'])}"
              for d in describe(plan, hosts)]
    lines.append("run `kubeforge apply --allow-removal` to do it, or declare them again")
    return "\n".join(lines)


# ================================================================================ etcd quorum


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    client_urls: tuple[str, ...]


def members_from(output: str) -> list[Member]:
    data = json.loads(output)
    return [Member(int(m["ID"]), m.get("name", ""), tuple(m.get("clientURLs") or ()))
            for m in data.get("members", [])]


def healthy_from(output: str) -> set[str]:
    """Endpoints ``etcdctl endpoint health --cluster -w json`` found healthy (it exits 1 when
    one is not, and still prints every endpoint)."""
    try:
        data = json.loads(output)
    except ValueError:
        return set()
    return {e["endpoint"] for e in data if e.get("health")}


def quorum_problem(members: list[Member], healthy: set[str], leaving_name: str) -> str:
    """Why removing ``leaving_name`` would lose quorum, or ""."""
    rest = [m for m in members if m.name != leaving_name]
    if not rest:
        return f"{leaving_name} is the only etcd member"
    up = [m for m in rest if set(m.client_urls) & healthy]
    need = len(rest) // 2 + 1
    if len(up) < need:
        down = sorted(m.name for m in rest if m not in up)
        return (f"after removing {leaving_name}, {len(rest)} members need {need} healthy for a "
                f"quorum and only {len(up)} are ({', '.join(down)} not healthy): bring them "
                "back first")
    return ""


# ================================================================================ running


class _Remote:
    """One session and a shell command that fails with its output."""

    def __init__(self, target: Target, spec: HostSpec) -> None:
        self.host = spec.name
        self.session: Session = target.open(spec)

    def run(self, script: str, timeout: float = 120, ok: tuple[int, ...] = (0,)) -> str:
        out = self.session.run(script, timeout=timeout)
        if out.exit_code not in ok:
            raise RemovalError(f"{self.host}: `{script.splitlines()[0][:120]}` exit code "
                               f"{out.exit_code}: " + " / ".join(tail(out.stderr, 4)))
        return out.stdout.decode(errors="replace")

    def close(self) -> None:
        self.session.close()


def _etcdctl_prefix(plan: Plan) -> tuple[str, tuple[str, ...]]:
    """Where and how the plan itself asks etcd about the cluster: its verify etcd-health
    step (host, and the argv before ``endpoint health --cluster``)."""
    for step in plan.steps:
        if step.phase == "verify" and step.id.endswith("/etcd-health") \
                and isinstance(step.action, Command) and step.action.argv[-3:] == (
                    "endpoint", "health", "--cluster"):
            return step.host, step.action.argv[:-3]
    raise RemovalError(f"the plan of {plan.cluster} has no etcd health check to reach etcd with")


def _local_kubectl(plan: Plan, host: str) -> tuple[str, ...]:
    """kubectl with admin.conf, sent to ``host``'s own API server instead of the VIP."""
    address = next(h.address for h in plan.hosts if h.name == host)
    return (*KUBECTL, "--server", f"https://{hostport.join(address, API_SERVER_PORT)}")


def remove(plan: Plan, hosts_of_plan: dict[str, HostSpec], state: ApplyState, state_dir: Path,
           target: Target, gone: list[Leaving], say: Callable[[str], None]) -> None:
    """Remove every host of ``gone``, one at a time; raises RemovalError on the first that
    cannot be (the ones before it are removed and forgotten)."""
    applier = next((s.host for s in plan.steps if s.phase == "workloads"),
                   next(h.name for h in plan.hosts if "control-plane" in h.roles))
    kubectl = shlex.join(_local_kubectl(plan, applier))
    etcd_host, etcdctl = _etcdctl_prefix(plan)
    if etcdctl[:len(KUBECTL)] == KUBECTL:  # stacked etcd: etcdctl in the member's pod
        etcdctl = (*_local_kubectl(plan, etcd_host), *etcdctl[len(KUBECTL):])
    api = _Remote(target, hosts_of_plan[applier])
    etcd = api if etcd_host == applier else _Remote(target, hosts_of_plan[etcd_host])
    try:
        for l in gone:
            _remove_one(plan, kubectl, api, etcd, etcdctl, state_dir, target, l, say)
            state.mark_removed(l.host)
            reset_script_path(state_dir, l.host).unlink(missing_ok=True)
            say(f"removed {l.host}")
    finally:
        api.close()
        if etcd is not api:
            etcd.close()


def _remove_one(plan: Plan, kubectl: str, api: _Remote, etcd: _Remote,
                etcdctl: tuple[str, ...], state_dir: Path, target: Target, l: Leaving,
                say: Callable[[str], None]) -> None:
    node = shlex.quote(l.host)
    present = l.node and api.run(f"{kubectl} get node {node} -o name --ignore-not-found").strip()
    if present:
        say(f"{l.host}: draining")
        # A pod on a dead host never finishes terminating: past a minute it is not waited
        # for (the host is reset or gone next), so drain does not sit out its whole timeout.
        api.run(f"{kubectl} drain {node} --ignore-daemonsets --delete-emptydir-data --force "
                f"--skip-wait-for-delete-timeout=60 --timeout={DRAIN_TIMEOUT}s",
                timeout=DRAIN_TIMEOUT + 60)
    member_of_etcd = l.etcd or (l.control_plane and stacked(plan))
    if member_of_etcd:
        members = _members(etcd, etcdctl)
        if any(m.name == l.host for m in members):
            healthy = healthy_from(etcd.run(shlex.join(
                (*etcdctl, "endpoint", "health", "--cluster", "-w", "json")), ok=(0, 1)))
            problem = quorum_problem(members, healthy, l.host)
            if problem:
                raise RemovalError(f"{l.host}: not removed: {problem}")
    if l.spec is None:
        say(f"{l.host}: not in the inventory, so not reset")
    else:
        _reset(state_dir, target, l, say)
    if member_of_etcd:
        member = next((m for m in _members(etcd, etcdctl) if m.name == l.host), None)
        if member is not None:
            say(f"{l.host}: removing its etcd member {member.id:x}")
            etcd.run(shlex.join((*etcdctl, "member", "remove", f"{member.id:x}")))
    if present:
        say(f"{l.host}: deleting the node")
        api.run(f"{kubectl} delete node {node} --ignore-not-found")


def _members(etcd: _Remote, etcdctl: tuple[str, ...]) -> list[Member]:
    return members_from(etcd.run(shlex.join((*etcdctl, "member", "list", "-w", "json"))))


def _reset(state_dir: Path, target: Target, l: Leaving, say: Callable[[str], None]) -> None:
    assert l.spec is not None
    script_path = reset_script_path(state_dir, l.host)
    if not script_path.exists():
        raise RemovalError(f"{l.host}: no saved reset script ({script_path}); reset it by hand "
                           "(kubeadm reset -f) and remove its steps from the apply state")
    say(f"{l.host}: resetting the host")
    try:
        host = _Remote(target, l.spec)
    except TargetError as exc:
        raise RemovalError(f"{l.host}: {exc}") from None
    try:
        host.run(script_path.read_text(), timeout=600)
    finally:
        host.close()
