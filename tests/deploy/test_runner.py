"""Scheduling, state, resume and restarts against the fake target."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from kubeforge.errors import UsageError
from kubeforge.targets.base import CHANGED, FAILED, OK, SKIPPED, UNCHANGED
from kubeforge.targets.deploy import apply
from kubeforge.targets.runner import Selection
from tests.deploy.fakes import FakeTarget


def run(dep, hosts, selection=Selection(), **kw):
    out = io.StringIO()
    report = apply(dep, FakeTarget(hosts, **kw), selection, jobs=4,
                   console=Console(file=out, width=200), live=False)
    return report, {r.step_id: r for r in report.results}, out.getvalue()


def test_cold_apply_then_noop_reapply(setup):
    dep, hosts = setup
    report, by_id, _ = run(dep, hosts)
    assert not report.failed
    assert by_id["a/os-prepare/upload-etc-app-app.conf"].status == CHANGED
    assert by_id["a/preflight/root"].status == OK
    assert hosts["a"].files["/etc/app/app.key"][1:] == (0o600, "root:root")
    report, by_id, text = run(dep, hosts)
    assert report.changes == 0 and "no changes" in text
    assert {r.status for r in report.results} <= {UNCHANGED, OK}
    timings = json.loads((dep.state_dir / "timings.json").read_text())
    assert {s["id"] for s in timings["steps"]} == set(by_id) and "preflight" in timings["phases"]
    ats = [s["at"] for s in timings["steps"]]  # the timeline: when each step began
    assert all(at is not None and 0 <= at <= timings["wall_seconds"] for at in ats), ats


def test_failure_skips_dependents_and_lets_independent_work_finish(setup):
    dep, hosts = setup
    hosts["a"].fail["systemctl restart"] = 3
    report, by_id, text = run(dep, hosts)
    assert report.failed
    assert by_id["a/loadbalancer/service-app"].status == FAILED
    assert by_id["a/etcd/init"].status == SKIPPED
    assert by_id["b/etcd/init"].status == SKIPPED  # needs a's service, across hosts
    assert by_id["b/loadbalancer/service-app"].status == CHANGED  # independent
    assert "host a  step a/loadbalancer/service-app  exit code 3" in text
    assert "boom: systemctl restart" in text
    assert by_id["a/loadbalancer/service-app"].attempts == 2  # retried once: safe


def test_resume_restarts_a_service_whose_input_changed_in_an_interrupted_run(setup):
    dep, hosts = setup
    hosts["a"].fail["systemctl restart"] = 1
    run(dep, hosts)
    hosts["a"].fail.clear()
    hosts["a"].log.clear()
    report, by_id, _ = run(dep, hosts)
    # The upload now matches, but the service never saw it: it must restart anyway.
    assert by_id["a/os-prepare/upload-etc-app-app.conf"].status == UNCHANGED
    assert by_id["a/loadbalancer/service-app"].status == CHANGED
    assert any("systemctl restart app" in s for s in hosts["a"].log)
    assert not report.failed and by_id["b/etcd/init"].status == CHANGED


def test_config_change_restarts_only_that_service(setup, tmp_path):
    dep, hosts = setup
    run(dep, hosts)
    for h in hosts.values():
        h.log.clear()
    report, by_id, _ = run(dep, hosts)
    assert not any("restart" in s for h in hosts.values() for s in h.log)


def test_missing_kubeadm_fails_with_a_clear_message(setup):
    dep, hosts = setup
    hosts["b"].programs = set()
    report, by_id, text = run(dep, hosts)
    r = by_id["b/etcd/init"]
    assert r.status == FAILED
    assert r.message.startswith("kubeadm is not installed on b: run with --until loadbalancer")
    assert "install bundle path" in r.message
    assert by_id["a/etcd/init"].status == CHANGED


def test_step_not_safe_to_retry_is_not_rerun_after_an_interruption(setup):
    dep, hosts = setup
    hosts["a"].fail["kubeadm init"] = 1
    report, by_id, _ = run(dep, hosts)
    assert by_id["a/etcd/init"].attempts == 1  # retry_safe=False: never retried
    hosts["a"].fail.clear()
    report, by_id, _ = run(dep, hosts)
    assert by_id["a/etcd/init"].status == FAILED
    assert "not safe to run twice" in by_id["a/etcd/init"].message
    hosts["a"].files["/etc/app/inited"] = (b"", 0o644, "root:root")  # finished by hand
    report, by_id, _ = run(dep, hosts)
    assert by_id["a/etcd/init"].status == UNCHANGED and not report.failed


def test_dropped_connection_is_reopened_and_the_step_retried(setup):
    dep, hosts = setup
    run(dep, hosts, Selection(until="preflight"))
    hosts["a"].drop_next = 1
    report, by_id, _ = run(dep, hosts)
    assert not report.failed


def test_unreachable_host_fails_its_steps_only(setup):
    dep, hosts = setup
    report, by_id, text = run(dep, hosts, unreachable={"b"})
    assert by_id["b/preflight/root"].status == FAILED and "cannot connect" in text
    assert by_id["a/loadbalancer/service-app"].status == CHANGED


def test_until_limit_and_phase_narrow_the_run(setup):
    dep, hosts = setup
    report, by_id, _ = run(dep, hosts, Selection(until="os-prepare"))
    assert {r.phase for r in report.results} == {"preflight", "os-prepare"}
    report, by_id, _ = run(dep, hosts, Selection(limit=frozenset({"b"}), phase="etcd"))
    # b's init needs steps outside the run that were never applied: it must not run.
    assert by_id["b/etcd/init"].status == SKIPPED and "not applied yet" in \
        by_id["b/etcd/init"].message
    run(dep, hosts)
    report, by_id, _ = run(dep, hosts, Selection(limit=frozenset({"b"}), phase="etcd"))
    assert set(by_id) == {"b/etcd/init"} and by_id["b/etcd/init"].status == UNCHANGED


def test_selection_rejects_unknown_hosts_and_phases(setup):
    dep, _ = setup
    with pytest.raises(UsageError, match="--limit names hosts the plan lacks: zz"):
        Selection(limit=frozenset({"zz"})).steps(dep.plan)
    with pytest.raises(UsageError, match="--until nope: unknown phase"):
        Selection(until="nope").steps(dep.plan)


def test_no_key_material_in_summary_log_or_state(setup):
    dep, hosts = setup
    hosts["a"].fail["systemctl"] = 1
    _, _, text = run(dep, hosts)
    run(dep, hosts)
    for blob in (text, (dep.state_dir / "apply.log").read_text(),
                 (dep.state_dir / "apply-state.json").read_text(),
                 (dep.state_dir / "timings.json").read_text()):
        assert "PRIVATE KEY" not in blob and "secret\n" not in blob


def test_stale_build_is_refused(setup):
    dep, hosts = setup
    (dep.build_root / "nodes/a/app.conf").write_bytes(b"edited by hand\n")
    report, by_id, _ = run(dep, hosts)
    assert "does not match plan.json" in by_id["a/os-prepare/upload-etc-app-app.conf"].message


def test_without_a_terminal_each_host_and_phase_reports_when_it_finishes(setup):
    dep, hosts = setup
    _, _, text = run(dep, hosts)
    for host in ("a", "b"):
        for phase in {s.phase for s in dep.plan.steps}:
            lines = [line for line in text.splitlines()
                     if line.startswith(f"{host}: phase {phase} finished in ")]
            assert len(lines) == 1, (host, phase, text)
    assert re.search(r"^a: phase os-prepare finished in [\d.]+s: 1 changed$", text, re.M), text
    _, _, text = run(dep, hosts)  # nothing changes, and the phases still report
    assert re.search(r"^b: phase pki finished in [\d.]+s: 1 unchanged$", text, re.M), text


def test_failed_and_blocked_steps_are_counted_apart(setup):
    from kubeforge.targets.progress import Progress

    dep, hosts = setup
    hosts["a"].fail["systemctl restart"] = 3
    report, _, text = run(dep, hosts)
    assert re.search(r"^a: phase loadbalancer finished in [\d.]+s: 1 failed$", text, re.M)
    assert re.search(r"^a: phase etcd finished: 1 blocked$", text, re.M), text  # never started
    assert re.search(r"steps in [\d.]+s: .*1 failed, 2 blocked$", text, re.M), text
    assert "2 steps blocked: not run because something they need failed" in text
    # The live table a terminal shows: one column each.
    out = io.StringIO()
    console = Console(file=out, width=200)
    view = Progress(dep.plan.steps, console, live=False)
    for r in report.results:
        view.finished(r)
    console.print(view._table())
    header = next(line for line in out.getvalue().splitlines() if "host" in line)
    assert re.search(r"changed\s*┃\s*failed\s*┃\s*blocked", header), header
    row_a = next(line for line in out.getvalue().splitlines() if line.startswith("│ a "))
    assert [c.strip() for c in row_a.split("│")[1:6]] == ["a", "5/5", "2", "1", "1"], row_a


def test_progress_lines_stay_whole_in_a_pipe():
    """Without a terminal each changed step is one line however long its id, so `grep`,
    `| head` and a test parsing the log see whole step ids (rich would wrap at 80)."""
    from kubeforge.compiler.plan import Command, Step
    from kubeforge.targets.base import StepResult
    from kubeforge.targets.progress import Progress

    step_id = "cp1/workloads/upload-etc-kubernetes-kubeforge-manifests-10-default.yaml"
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    with Progress([Step(step_id, "cp1", "workloads", Command(argv=("true",)))], console) as p:
        p.finished(StepResult(step_id, "cp1", "workloads", CHANGED, seconds=0.1))
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["changed", step_id, "0.1s"]
    assert lines[1].startswith("cp1: phase workloads finished")


def test_a_new_edge_does_not_make_a_done_step_run_again(tmp_path):
    """A node joining adds edges (kubeadm init waits for its load balancer too): what the
    step does is the same, so it stays done; a changed command does not."""
    from dataclasses import replace

    from kubeforge.compiler.plan import Command, Step
    from kubeforge.targets.state import ApplyState

    step = Step("a/runtime/x", "a", "runtime", Command(argv=("true",)))
    state = ApplyState.load(tmp_path / "apply-state.json", "c")
    state.record(step, ok=True, changed=True, seconds=0.1)
    assert state.is_done(replace(step, needs=("b/loadbalancer/service-haproxy",)))
    assert not state.is_done(replace(step, action=Command(argv=("false",))))
