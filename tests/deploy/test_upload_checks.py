"""Upload checks: the quick check by stat, several checks in one round trip, and what voids a
waiting answer. The scripts run in a real ``sh`` on a temp directory; the runner against the
fake target (the e2e tests apply the same scripts over SSH)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import time

import pytest
from rich.console import Console

from kubeforge.compiler.plan import Check, Command, Plan, PlanHost, Step, Upload
from kubeforge.targets import actions
from kubeforge.targets.base import CHANGED, UNCHANGED, CommandOutput, TargetError
from kubeforge.targets.deploy import apply
from kubeforge.targets.runner import Selection
from kubeforge.targets.state import ApplyState
from kubeforge.targets.upload_checks import UploadChecks, batch_script, split_batch
from tests.deploy.fakes import FakeTarget, fake_stat, small_plan


def sh(script: str, stdin: bytes = b"") -> CommandOutput:
    proc = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, timeout=30)
    return CommandOutput(proc.returncode, proc.stdout, proc.stderr, 0.0)


def _upload(path, data: bytes) -> Upload:
    return Upload(str(path), "src", hashlib.sha256(data).hexdigest(), 0o640, "root:root")


def test_the_upload_prints_the_stat_the_next_check_trusts_until_the_file_changes(tmp_path):
    data = b"kind: Config\n"
    up = _upload(tmp_path / "etc" / "app.conf", data)
    out = sh(actions.upload_script(up, up.sha256), data)
    assert out.exit_code == 0, out.stderr
    stat = out.stdout.decode().splitlines()[-1]
    # Quick: the stat is what the upload left, so the file is not read again.
    check = sh(actions.upload_check_script(up, True, known=stat))
    assert check.stdout.decode().split()[2:] == [stat, "="]
    assert actions.upload_matches(up, check.stdout, up.sha256) == stat
    # Without a known stat (a first apply, or the step changed): the whole digest.
    check = sh(actions.upload_check_script(up, True))
    assert check.stdout.decode().split()[3] == up.sha256
    # Rewritten with other bytes of the same size, in place: the change time moves, so the
    # known stat no longer vouches for it and the digest shows the change. (The kernel stamps
    # change times at its clock tick: a test that rewrites at once waits one out.)
    time.sleep(0.02)
    (tmp_path / "etc" / "app.conf").write_bytes(b"kind: Cpnfig\n")
    check = sh(actions.upload_check_script(up, True, known=stat))
    assert check.stdout.decode().split()[2] != stat
    assert actions.upload_matches(up, check.stdout, up.sha256) is None
    assert sh(actions.upload_check_script(up, True, known=stat)).exit_code == 0


def test_a_wrong_mode_fails_the_quick_check_too(tmp_path):
    data = b"secret\n"
    up = _upload(tmp_path / "key", data)
    stat = sh(actions.upload_script(up, up.sha256), data).stdout.decode().splitlines()[-1]
    time.sleep(0.02)
    (tmp_path / "key").chmod(0o644)  # changes the change time as well
    check = sh(actions.upload_check_script(up, True, known=stat))
    assert actions.upload_matches(up, check.stdout, up.sha256) is None


def test_a_batch_answers_each_check_with_its_own_exit_code(tmp_path):
    ups = [_upload(tmp_path / name, name.encode()) for name in ("a", "b", "c")]
    for up in (ups[0], ups[2]):
        assert sh(actions.upload_script(up, up.sha256), up.path.encode()[-1:]).exit_code == 0
    scripts = [actions.upload_check_script(up, True) for up in ups]
    outputs = split_batch(sh(batch_script(scripts)), 3)
    assert [o.exit_code for o in outputs] == [0, 3, 0]
    assert actions.upload_matches(ups[0], outputs[0].stdout, ups[0].sha256)
    assert actions.upload_matches(ups[2], outputs[2].stdout, ups[2].sha256)
    with pytest.raises(TargetError, match="gave 3 answers"):
        split_batch(sh(batch_script(scripts)), 4)


def _plan() -> Plan:
    up = [Step(f"h/pki/upload-{n}", "h", "pki", Upload(f"/etc/{n}", n, "0" * 64, 0o644,
                                                       "root:root"),
               check=Check("sha256", "0" * 64)) for n in ("a", "b", "c")]
    cmd = Step("h/pki/cmd", "h", "pki", Command(shell="true"), needs=(up[1].id,))
    up[2] = Step(up[2].id, "h", "pki", up[2].action, check=up[2].check, needs=(cmd.id,))
    return Plan("c", (PlanHost("h", "10.0.0.1", ("worker",)),), (*up[:2], cmd, up[2]))


def test_a_run_stops_at_the_first_step_that_is_no_upload_and_answers_wait_until_an_action():
    plan = _plan()
    checks = UploadChecks(plan)
    a, b, cmd, c = plan.for_host("h")
    assert [s.id for s in checks.run_of(a)] == [a.id, b.id]
    assert [s.id for s in checks.run_of(c)] == [c.id]
    answer = CommandOutput(0, b"x", b"", 0.0)
    checks.keep([b], [answer])
    checks.acted(a)  # an upload of another path leaves b's answer standing
    assert checks.take(b) is answer and checks.take(b) is None
    checks.keep([b], [answer])
    checks.acted(cmd)  # a command may have written anything
    assert checks.take(b) is None


def _apply(dep, hosts):
    out = io.StringIO()
    report = apply(dep, FakeTarget(hosts), Selection(), jobs=2,
                   console=Console(file=out, width=200), live=False)
    assert not report.failed, out.getvalue()
    return {r.step_id: r for r in report.results}


def test_a_reapply_checks_each_run_of_uploads_in_one_round_trip_without_rehashing(setup):
    dep, hosts = setup
    plan = dep.plan
    _apply(dep, hosts)
    state = ApplyState.load(dep.state_dir / "apply-state.json", "demo")
    conf = plan.step("a/os-prepare/upload-etc-app-app.conf")
    data, mode, owner = hosts["a"].files["/etc/app/app.conf"]
    assert state.known_stat(conf) == fake_stat(data, mode, owner)

    hosts["a"].log.clear()
    by_id = _apply(dep, hosts)
    assert by_id[conf.id].status == UNCHANGED
    checks = [s for s in hosts["a"].log if "sha256sum" in s]
    assert len(checks) == 1 and checks[0].count("kf-check") == 2  # the config and the key

    # Changed behind kubeforge's back: the stat differs, the digest shows it, re-uploaded.
    hosts["a"].files["/etc/app/app.conf"] = (b"edited\n", mode, owner)
    by_id = _apply(dep, hosts)
    assert by_id[conf.id].status == CHANGED
    assert hosts["a"].files["/etc/app/app.conf"][0] == data


def test_the_state_vouches_for_a_stat_only_of_the_same_definition_done(tmp_path):
    plan = small_plan(tmp_path / "build")
    conf = plan.step("a/os-prepare/upload-etc-app-app.conf")
    state = ApplyState(tmp_path / "s.json", "demo")
    state.record(conf, ok=True, changed=True, seconds=1, host_stat="12.000000001:7:13")
    assert state.known_stat(conf) == "12.000000001:7:13"
    edited = Step(conf.id, conf.host, conf.phase,
                  Upload(conf.action.path, conf.action.source, "1" * 64, 0o644, "root:root"),
                  check=Check("sha256", "1" * 64), needs=conf.needs)
    assert state.known_stat(edited) == ""  # another content: its file was never verified
    state.record(conf, ok=False, changed=False, seconds=1)
    assert state.known_stat(conf) == ""
    # A stat without nanoseconds (old or busybox stat) could miss a change within a second.
    state.record(conf, ok=True, changed=False, seconds=1, host_stat="12:7:13")
    assert state.known_stat(conf) == ""
    reloaded = ApplyState.load(tmp_path / "s.json", "demo")
    assert reloaded.steps[conf.id] == state.steps[conf.id]


def test_a_stat_carries_over_to_another_step_with_the_same_content_and_path(tmp_path):
    """The upgrade plan and the bootstrap plan upload the same image to the same path under
    different step ids: what one verified, the other need not hash again."""
    plan = small_plan(tmp_path / "build")
    conf = plan.step("a/os-prepare/upload-etc-app-app.conf")
    state = ApplyState(tmp_path / "s.json", "demo")
    other = Step("a/upgrade-prepare/upload-etc-app-app.conf", "a", conf.phase, conf.action,
                 check=conf.check)
    state.record(other, ok=True, changed=True, seconds=1, host_stat="12.000000001:7:13")
    assert state.known_stat(conf) == "12.000000001:7:13"
    # Reloaded from disk, and only for the same content and the same host.
    reloaded = ApplyState.load(tmp_path / "s.json", "demo")
    assert reloaded.known_stat(conf) == "12.000000001:7:13"
    edited = Step(conf.id, conf.host, conf.phase,
                  Upload(conf.action.path, conf.action.source, "1" * 64, 0o644, "root:root"),
                  check=Check("sha256", "1" * 64), needs=conf.needs)
    assert reloaded.known_stat(edited) == ""
    elsewhere = Step("b/os-prepare/upload-etc-app-app.conf", "b", conf.phase, conf.action,
                     check=conf.check)
    assert reloaded.known_stat(elsewhere) == ""
    # A newer stat of the content wins.
    state.record(conf, ok=True, changed=False, seconds=1, host_stat="13.000000002:7:13")
    assert state.known_stat(other) == "13.000000002:7:13"
