"""The Plan model: validation, deterministic order, queries and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from kubeforge.compiler.plan import (PHASES, Check, Command, Plan, PlanError, PlanHost,
                                     PreflightIgnore, Service, Step, Upload, probe)

HOSTS = (PlanHost("a", "10.0.0.1", ("control-plane",)), PlanHost("b", "10.0.0.2", ("worker",)))


def run(step_id: str, *needs: str, phase: str = "preflight", host: str = "a") -> Step:
    return Step(step_id, host, phase, Command(argv=("true",)), needs=needs)


def test_cycle_is_refused():
    with pytest.raises(PlanError, match="cycle"):
        Plan("c", HOSTS, (run("x", "y"), run("y", "x")))


@pytest.mark.parametrize("steps, message", [
    ((run("x"), run("x")), "duplicate step id"),
    ((run("x", "nope"),), "unknown step nope"),
    ((Step("x", "zz", "preflight", Command(argv=("true",))),), "unknown host"),
    ((Step("x", "a", "warmup", Command(argv=("true",))),), "unknown phase"),
    ((run("late", phase="verify"), run("early", "late", phase="pki")), "later phase verify"),
])
def test_invalid_plans_are_refused(steps, message):
    with pytest.raises(PlanError, match=message):
        Plan("c", HOSTS, steps)


def test_a_restart_trigger_must_come_before_the_service():
    upload = Step("u", "a", "runtime", Upload("/etc/x", "nodes/a/etc/x", "0" * 64),
                  Check("sha256", "0" * 64))
    service = Step("s", "a", "runtime", Service("x", restart_on=("u",)))
    with pytest.raises(PlanError, match="does not need"):
        Plan("c", HOSTS, (upload, service))
    Plan("c", HOSTS, (upload, Step("s", "a", "runtime", Service("x", restart_on=("u",)),
                                   needs=("u",))))


def test_command_needs_exactly_one_form():
    with pytest.raises(PlanError):
        Command()
    with pytest.raises(PlanError):
        Command(argv=("true",), shell="true")
    assert Command(shell="a | b").text == "a | b"
    assert Command(argv=("echo", "a b")).text == "echo 'a b'"


def test_check_kinds_are_validated():
    with pytest.raises(PlanError):
        Check("maybe", "x")
    with pytest.raises(PlanError):
        Check("probe", "")


def test_order_is_topological_then_phase_host_declaration():
    steps = (run("b2", host="b", phase="os-prepare"), run("a2", "a1", phase="os-prepare"),
             run("b1", host="b"), run("a1"))
    plan = Plan("c", HOSTS, steps)
    assert [s.id for s in plan.order()] == ["a1", "b1", "b2", "a2"]
    assert [s.id for s in plan.for_host("a")] == ["a1", "a2"]
    assert [s.id for s in plan.steps_in_phase("os-prepare")] == ["b2", "a2"]
    with pytest.raises(PlanError):
        plan.steps_in_phase("nope")
    assert Plan.ordered("c", HOSTS, steps).steps == plan.order()


def test_json_round_trip_keeps_every_field():
    steps = (
        Step("a/pki/upload", "a", "pki",
             Upload("/etc/k/ca.key", "nodes/a/etc/k/ca.key", "ab" * 32, 0o600, "root:root", True),
             Check("sha256", "ab" * 32)),
        Step("a/control-plane-init/init", "a", "control-plane-init",
             Command(argv=("kubeadm", "init"), timeout=900, retry_safe=False,
                     ignore_preflight_errors=(PreflightIgnore("NumCPU", "1 CPU declared"),)),
             probe("test -f /x"), needs=("a/pki/upload",), why="because"),
        Step("a/verify/svc", "a", "verify",
             Service("kubelet", True, None, ("a/pki/upload",), no_block=True),
             needs=("a/control-plane-init/init",)),
    )
    plan = Plan.ordered("c", HOSTS, steps)
    text = plan.to_json()
    again = Plan.from_json(text)
    assert again == plan
    assert again.to_json() == text
    data = json.loads(text)
    assert data["phases"] == list(PHASES)
    assert data["steps"][0]["action"]["mode"] == "0600"


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"),
    ('{"format": "other/9"}', "format"),
    ('{"format": "kubeforge-plan/1", "cluster": "c"}', "malformed"),
])
def test_bad_plan_json_is_refused(text, message):
    with pytest.raises(PlanError, match=message):
        Plan.from_json(text)


def test_json_is_the_whole_plan_dumped_at_once():
    from kubeforge.compiler import json_indent

    plan = Plan.ordered("c", HOSTS, (run("a/preflight/x"), run("a/preflight/y", "a/preflight/x")))
    assert plan.to_json() == json_indent.dumps(plan.to_dict()) + "\n"
    empty = Plan("c", HOSTS, ())
    assert empty.to_json() == json_indent.dumps(empty.to_dict()) + "\n"
