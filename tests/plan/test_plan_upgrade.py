"""The upgrade plan, from source text to upgrade-plan.json: kubeadm's order, one node at a
time, and the kubelet never newer than the API servers; then what `plan` and `apply` make of
it against a cluster recorded at the previous release (fake hosts: nothing is contacted)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.plan import Command, Plan, Upload
from kubeforge.targets.actions import KUBERNETES_PROGRAMS
from kubeforge.targets.deploy import apply, prepare
from kubeforge.targets.runner import Selection
from tests.bundle.bundle_helpers import BUNDLE_IMAGES, make_bundle
from tests.conftest import FIXED_NOW
from tests.deploy.fakes import FakeHost, FakeTarget
from tests.plan.test_plan_bundle import SOURCE as BUNDLED

NODES = """  node cp1 { address 10.77.0.11  role control-plane }
  node w1 { address 10.77.0.21  role worker }
"""
#: test_plan_bundle's cluster with three control planes and two workers.
SOURCE = BUNDLED.replace(NODES, "".join(
    f"  node {n} {{ address 10.77.0.{a}  role {r} }}\n"
    for n, a, r in (("cp1", 11, "control-plane"), ("cp2", 12, "control-plane"),
                    ("cp3", 13, "control-plane"), ("w1", 21, "worker"), ("w2", 22, "worker"))))
assert SOURCE != BUNDLED
ORDER = ("cp1", "cp2", "cp3", "w1", "w2")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("upgrade")
    make_bundle(root / "bundle", root / "src",
                images=(*BUNDLE_IMAGES, "ghcr.io/flannel-io/flannel:v0.28.10"))
    (root / "off.kf").write_text(SOURCE)
    compile_file(root / "off.kf", root / "build", state_dir=root / "state", now=FIXED_NOW)
    return root


@pytest.fixture(scope="module")
def plan(tree) -> Plan:
    return Plan.from_json((tree / "build/off/upgrade-plan.json").read_text())


def _argv(plan: Plan, step_id: str) -> tuple[str, ...]:
    action = plan.step(step_id).action
    assert isinstance(action, Command)
    return action.argv


def test_kubeadm_upgrades_the_first_control_plane_then_each_node_in_turn(plan):
    assert _argv(plan, "cp1/upgrade-nodes/kubeadm-upgrade")[:5] == (
        "kubeadm", "upgrade", "apply", "v1.37.2", "--yes")
    for node in ORDER[1:]:
        assert _argv(plan, f"{node}/upgrade-nodes/kubeadm-upgrade")[:3] == (
            "kubeadm", "upgrade", "node")
    for node in ORDER:  # the certificates stay kubeforge's
        assert "--certificate-renewal=false" in _argv(plan, f"{node}/upgrade-nodes/kubeadm-upgrade")
    assert "cp1/upgrade-prepare/kubeadm-upgrade-plan" in plan.ancestors(
        "cp1/upgrade-nodes/kubeadm-upgrade")
    # Each node starts once the one before it is back: uncordoned, so Ready at the new release.
    for before, node in zip(ORDER, ORDER[1:]):
        assert f"cp1/upgrade-nodes/uncordon-{before}" in plan.ancestors(
            f"{node}/upgrade-nodes/kubeadm-upgrade")
        assert f"cp1/upgrade-nodes/ready-{before}" in plan.ancestors(
            f"cp1/upgrade-nodes/drain-{node}")


def test_no_two_nodes_are_ever_drained_at_once(plan):
    drains = [f"cp1/upgrade-nodes/drain-{n}" for n in ORDER]
    uncordons = [f"cp1/upgrade-nodes/uncordon-{n}" for n in ORDER]
    for i, drain in enumerate(drains):
        ancestors = plan.ancestors(drain)
        assert set(uncordons[:i]) <= ancestors
        assert not set(drains[i + 1:]) & ancestors
        assert _argv(plan, drain)[-4:-1] == (ORDER[i], "--ignore-daemonsets",
                                              "--delete-emptydir-data")


def test_a_nodes_kubelet_changes_only_in_its_own_turn(plan):
    """A kubelet may not be newer than the API servers: its binary and its restart come
    after the node was drained, which is after every control plane before it upgraded."""
    for node in ORDER:
        kubelet = f"{node}/upgrade-nodes/upload-usr-local-bin-kubelet"
        assert isinstance(plan.step(kubelet).action, Upload)
        assert f"cp1/upgrade-nodes/drain-{node}" in plan.ancestors(kubelet)
        assert f"{node}/upgrade-nodes/kubeadm-upgrade" in plan.ancestors(kubelet)
        restart = f"{node}/upgrade-nodes/restart-kubelet"
        assert kubelet in plan.ancestors(restart)
        assert "(deleted)" not in plan.step(restart).check.value  # the probe compares exe
        assert f"cp1/upgrade-nodes/ready-{node}" in plan.ancestors(
            f"cp1/upgrade-nodes/uncordon-{node}")
    early = [s.action.path for s in plan.steps_in_phase("upgrade-prepare")
             if isinstance(s.action, Upload) and s.action.path.startswith("/usr/local/")]
    assert set(early) == {"/usr/local/bin/kubeadm"}


def test_every_node_has_the_new_images_before_kubeadm_upgrade_apply(tree, plan):
    """`upgrade apply` rolls kube-proxy and CoreDNS onto every node at once; no node pulls.
    Each node imports the images the bootstrap plan gives it (this bundle: control planes')."""
    bootstrap = Plan.from_json((tree / "build/off/plan.json").read_text())
    wanted = {s.id.replace("/runtime/", "/upgrade-prepare/") for s in bootstrap.steps
              if "/import-" in s.id}
    imports = {s.id for s in plan.steps_in_phase("upgrade-prepare") if "/import-" in s.id}
    assert wanted and imports == wanted
    assert imports <= plan.ancestors("cp1/upgrade-nodes/kubeadm-upgrade")


def test_checks_make_a_finished_upgrade_a_no_op(plan):
    tag = "v1.37.2"
    for node in ORDER:
        check = plan.step(f"{node}/upgrade-nodes/kubeadm-upgrade").check
        assert check.kind == "probe" and tag in check.value
        assert tag in plan.step(f"cp1/upgrade-nodes/drain-{node}").check.value


def test_without_a_bundle_there_is_no_upgrade_plan(tmp_path):
    (tmp_path / "off.kf").write_text(SOURCE.replace('  install bundle path "bundle"\n', ""))
    compile_file(tmp_path / "off.kf", tmp_path / "build", state_dir=tmp_path / "state",
                 now=FIXED_NOW)
    assert (tmp_path / "build/off/plan.json").exists()
    assert not (tmp_path / "build/off/upgrade-plan.json").exists()


# ----- plan and apply against a cluster recorded at the previous release ------------------


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeforge", *args, "off.kf", "-i", "inv.yaml",
                           "--known-hosts", "known_hosts", "--state-dir", "state"],
                          cwd=root, capture_output=True, text=True, timeout=300)


@pytest.fixture
def recorded(tmp_path):
    """The cluster applied up to its joins on fake hosts, then recorded at 1.36.3, as an
    apply of the file at that release would have left it. Port 1 refuses at once."""
    make_bundle(tmp_path / "bundle", tmp_path / "src",
                images=(*BUNDLE_IMAGES, "ghcr.io/flannel-io/flannel:v0.28.10"))
    (tmp_path / "off.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text("all:\n  hosts:\n" + "".join(
        f"    {n}: {{ansible_host: 127.0.0.1, ansible_port: 1}}\n" for n in ORDER))
    (tmp_path / "known_hosts").write_text("")
    dep = prepare(tmp_path / "off.kf", tmp_path / "inv.yaml", tmp_path / "build",
                  tmp_path / "state")
    hosts = {n: FakeHost(programs={"sh", *KUBERNETES_PROGRAMS}) for n in ORDER}
    report = apply(dep, FakeTarget(hosts), Selection(until="workers-join"), jobs=4,
                   console=Console(file=io.StringIO()), live=False)
    assert not report.failed
    dep.load_state().set_kubernetes("1.36.3")
    return tmp_path, dep


def test_plan_shows_the_upgrade_apply_would_run_first(recorded):
    root, _ = recorded
    proc = _cli(root, "plan")
    assert proc.returncode == 0, proc.stderr
    head, _, rest = proc.stdout.partition("then:")
    assert head.startswith("first, the upgrade from Kubernetes 1.36.3 to 1.37.2")
    assert "upgrade-nodes" in head and "~ cp1/upgrade-nodes/kubeadm-upgrade" in head
    assert "plan for cluster off" in rest and "refuse" not in proc.stderr


def test_apply_upgrades_first_and_records_the_release_only_when_done(recorded):
    root, dep = recorded
    proc = _cli(root, "apply")
    assert proc.returncode == 1, proc.stderr
    assert "upgrading cluster off from Kubernetes 1.36.3 to 1.37.2" in proc.stderr
    assert "upgrade-prepare" in proc.stderr  # it went to the hosts (and met port 1)
    assert dep.load_state().kubernetes == "1.36.3"


def test_a_node_that_never_joined_stops_the_upgrade_before_any_host(recorded):
    root, dep = recorded
    state = dep.load_state()
    for step_id in [s for s in state.steps if s.startswith("w2/")]:
        del state.steps[step_id]
    state._save()
    for command in ("apply", "plan"):
        proc = _cli(root, command)
        assert "w2 never joined it" in proc.stderr, proc.stderr
        assert "upgrade-prepare" not in proc.stderr
    assert _cli(root, "apply").returncode == 2
