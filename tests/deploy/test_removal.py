"""Removing nodes the file no longer declares: what `plan` shows and `apply` refuses without
--allow-removal (from source text, through the CLI), the quorum rule, and the order of the
removal's commands against a scripted target (the real removal runs in
tests/k8s/ha/test_day2_scale.py on a real cluster)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.plan import Plan
from kubeforge.targets import removal
from kubeforge.targets.base import CommandOutput, HostSpec
from kubeforge.targets.state import ApplyState

NODES = {"cp1": "10.0.0.11", "cp2": "10.0.0.12", "cp3": "10.0.0.13", "w1": "10.0.0.21",
         "w2": "10.0.0.22"}


def _source(names) -> str:
    nodes = "\n".join(
        f"  node {n} {{ address {NODES[n]}  role {'control-plane' if n.startswith('cp') else 'worker'} }}"
        for n in names)
    return f"""cluster c {{
  kubernetes "1.37.2"
  endpoint "10.0.0.100:8443"
  loadbalancer keepalived-haproxy {{ vip 10.0.0.100  interface "eth0"  port 8443 }}
{nodes}
}}
"""


def _applied(tmp_path: Path, names) -> tuple[Path, Plan]:
    """The file with ``names`` compiled and every step of its plan recorded as done."""
    (tmp_path / "c.kf").write_text(_source(names))
    result = compile_file(tmp_path / "c.kf", tmp_path / "build", state_dir=tmp_path / "state")
    plan = Plan.from_json((result.root / "plan.json").read_text())
    state = ApplyState.load(tmp_path / "state" / "apply-state.json", plan.cluster)
    for step in plan.steps:
        state.record(step, ok=True, changed=True, seconds=0.1)
    return tmp_path / "state", plan


def _inventory(tmp_path: Path, names) -> Path:
    path = tmp_path / "inv.yaml"
    # Port 1 refuses at once: nothing here may connect.
    path.write_text("all:\n  hosts:\n" + "".join(
        f"    {n}: {{ansible_host: {NODES[n]}, ansible_port: 1}}\n" for n in names))
    return path


def _kf(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeforge", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_plan_shows_the_removal_and_apply_refuses_it_without_the_flag(tmp_path):
    everyone = ("cp1", "cp2", "cp3", "w1", "w2")
    state, _ = _applied(tmp_path, everyone)
    (tmp_path / "c.kf").write_text(_source(("cp1", "cp2", "w1")))  # w2 and cp3 leave
    inv = _inventory(tmp_path, everyone)
    common = ("c.kf", "-i", str(inv), "--state-dir", str(state))
    plan = _kf(tmp_path, "plan", *common, "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["remove"] == [
        {"host": "w2", "roles": ["worker"], "reachable": True,
         "actions": ["drain", "reset host", "delete node"]},
        {"host": "cp3", "roles": ["control-plane"], "reachable": True,
         "actions": ["drain", "reset host", "remove etcd member", "delete node"]},
    ]
    text = _kf(tmp_path, "plan", *common).stdout
    assert "  - [cp3] (control-plane) is no longer declared: drain, reset host, remove etcd " \
           "member, delete node (apply needs --allow-removal)" in text
    refused = _kf(tmp_path, "apply", *common)
    assert refused.returncode == 2, refused.stderr
    assert "cluster c no longer declares w2, cp3; apply would:" in refused.stderr
    assert "run `kubeforge apply --allow-removal` to do it" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_host_neither_declared_nor_applied_is_still_an_inventory_mistake(tmp_path):
    state, _ = _applied(tmp_path, ("cp1", "w1"))
    proc = _kf(tmp_path, "plan", "c.kf", "-i", str(_inventory(tmp_path, ("cp1", "w1", "w2"))),
               "--state-dir", str(state))
    assert proc.returncode == 2 and "host(s) w2 are not nodes of cluster c" in proc.stderr


def _member(n: int, name: str) -> dict:
    return {"ID": n, "name": name, "clientURLs": [f"https://10.0.0.1{n}:2379"]}


@pytest.mark.parametrize("healthy, leaving, problem", [
    ({1, 2, 3}, "cp3", ""),
    ({1, 2}, "cp3", ""),  # the one leaving is the one down: 2 of 2 left are healthy
    ({1, 3}, "cp3", "only 1 are (cp2 not healthy)"),  # 2 left need 2 healthy
    ({1}, "cp3", "2 members need 2 healthy"),
])
def test_a_removal_never_breaks_quorum(healthy, leaving, problem):
    members = removal.members_from(json.dumps(
        {"members": [_member(1, "cp1"), _member(2, "cp2"), _member(3, "cp3")]}))
    up = removal.healthy_from(json.dumps(
        [{"endpoint": f"https://10.0.0.1{n}:2379", "health": n in healthy} for n in (1, 2, 3)]))
    found = removal.quorum_problem(members, up, leaving)
    assert (problem in found) if problem else found == "", found


class _Scripted:
    """A target whose hosts answer kubectl and etcdctl as a cluster with cp1-cp3 would."""

    def __init__(self, healthy: set[int]) -> None:
        self.healthy = healthy
        self.log: list[tuple[str, str]] = []

    def open(self, spec: HostSpec):
        target = self

        class Session:
            def run(self, script: str, *, timeout: float, stdin: bytes | None = None):
                target.log.append((spec.name, script))
                if "get node" in script:
                    out = "node/cp3\n"
                elif "member list" in script:
                    out = json.dumps({"members": [_member(n, f"cp{n}") for n in (1, 2, 3)]})
                elif "endpoint health" in script:
                    out = json.dumps([{"endpoint": f"https://10.0.0.1{n}:2379",
                                       "health": n in target.healthy} for n in (1, 2, 3)])
                else:
                    out = ""
                return CommandOutput(0, out.encode(), b"", 0.0)

            def close(self) -> None:
                pass

        return Session()

    def close(self) -> None:
        pass


def _remove(tmp_path: Path, healthy: set[int]) -> tuple[_Scripted, Path, Plan]:
    state_dir, _ = _applied(tmp_path, ("cp1", "cp2", "cp3", "w1"))
    removal.save_reset_scripts(state_dir, {"cp3": "kubeadm reset -f"})
    (tmp_path / "c.kf").write_text(_source(("cp1", "cp2", "w1")))
    result = compile_file(tmp_path / "c.kf", tmp_path / "build", state_dir=state_dir)
    plan = Plan.from_json((result.root / "plan.json").read_text())
    state = ApplyState.load(state_dir / "apply-state.json", plan.cluster)
    hosts = {h.name: HostSpec(h.name, h.address) for h in plan.hosts}
    gone = removal.leaving(plan, state, {"cp3": HostSpec("cp3", NODES["cp3"])})
    target = _Scripted(healthy)
    said: list[str] = []
    try:
        removal.remove(plan, hosts, state, state_dir, target, gone, said.append)
    except removal.RemovalError as exc:
        said.append(f"error: {exc}")
    (tmp_path / "said.txt").write_text("\n".join(said))
    return target, state_dir, plan


def test_a_control_plane_is_drained_its_member_removed_its_node_deleted_then_reset(tmp_path):
    target, state_dir, plan = _remove(tmp_path, {1, 2, 3})
    acts = [(host, next(word for word in ("drain", "member remove", "delete node",
                                          "kubeadm reset") if word in script))
            for host, script in target.log
            if any(w in script for w in ("drain", "member remove", "delete node",
                                         "kubeadm reset"))]
    assert acts == [("cp1", "drain"), ("cp3", "kubeadm reset"), ("cp1", "member remove"),
                    ("cp1", "delete node")]
    assert any("--skip-wait-for-delete-timeout=60" in s for _, s in target.log if " drain " in s)
    # The applier's own API server (kubectl, and etcdctl in its etcd pod), not the VIP the
    # load balancers still share with cp3.
    assert all("--server https://10.0.0.11:6443" in script for _, script in target.log
               if script.startswith("kubectl"))
    assert any("member remove 3" in s for _, s in target.log)
    state = ApplyState.load(state_dir / "apply-state.json", plan.cluster)
    assert "cp3" not in state.hosts() and not removal.reset_script_path(state_dir, "cp3").exists()


def test_an_inventory_may_keep_a_removed_host_until_the_file_declares_it_again(tmp_path):
    # An interrupted removal of two hosts is run again with the same inventory: the one
    # already removed must not turn into an inventory mistake.
    target, state_dir, plan = _remove(tmp_path, {1, 2, 3})
    inv = _inventory(tmp_path, ("cp1", "cp2", "cp3", "w1"))
    common = ("c.kf", "-i", str(inv), "--state-dir", str(state_dir))
    proc = _kf(tmp_path, "plan", *common, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["remove"] == []
    assert "cp3 was removed from cluster c by an earlier apply; it can leave the inventory" \
        in proc.stderr
    state = ApplyState.load(state_dir / "apply-state.json", plan.cluster)
    assert state.removed == {"cp3"}
    # Declared again, it is a node like any other once a step of it runs.
    (tmp_path / "c.kf").write_text(_source(("cp1", "cp2", "cp3", "w1")))
    result = compile_file(tmp_path / "c.kf", tmp_path / "build", state_dir=state_dir)
    again = Plan.from_json((result.root / "plan.json").read_text())
    state.record(next(s for s in again.steps if s.host == "cp3"), ok=True, changed=True,
                 seconds=0.1)
    assert ApplyState.load(state_dir / "apply-state.json", plan.cluster).removed == set()


def test_a_removal_that_would_lose_quorum_changes_nothing(tmp_path):
    target, state_dir, plan = _remove(tmp_path, {1, 3})  # cp2 is down
    said = (tmp_path / "said.txt").read_text()
    assert "error: cp3: not removed: after removing cp3, 2 members need 2 healthy" in said
    assert not any("member remove" in s or "kubeadm reset" in s for _, s in target.log)
    assert "cp3" in ApplyState.load(state_dir / "apply-state.json", plan.cluster).hosts()
