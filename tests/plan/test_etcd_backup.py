"""The etcd backup policy and restore scripts, from source text: `backup { ... }` to units and
plan steps on every member (stacked and external), the backup script run for real against a
fake etcdctl (snapshot, report line, retention), the per-member restore scripts, and the
policy's errors. The real snapshot, timer and restore run in tests/k8s/ha/test_day2_etcd.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kubeforge.compiler import etcd_scripts as S
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.plan import Plan, Service, Upload
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.bundle.bundle_helpers import BUNDLE_IMAGES, make_bundle
from tests.conftest import FIXED_NOW

STACKED = """cluster lab {
  kubernetes "1.37.2"
  endpoint "10.77.0.100:8443"
  network { pods 10.244.0.0/16  services 10.96.0.0/12  nodes 10.77.0.0/24 }
  loadbalancer keepalived-haproxy { vip 10.77.0.100  interface "eth0" }
  cni flannel
  install bundle path "bundle"
  BACKUP
  node cp1 { address 10.77.0.11  role control-plane }
  node cp2 { address 10.77.0.12  role control-plane }
  node cp3 { address 10.77.0.13  role control-plane }
  node w1 { address 10.77.0.21  role worker }
}
"""
POLICY = 'backup { schedule "*-*-* 02:30:00"  keep 3  dir "/srv/etcd-snapshots" }'

EXTERNAL = """cluster ext {
  kubernetes "1.37.2"
  endpoint "10.77.0.11:6443"
  network { pods 10.244.0.0/16  services 10.96.0.0/12  nodes 10.77.0.0/24 }
  etcd external
  loadbalancer external
  install preinstalled
  backup { }
  node cp1 { address 10.77.0.11  role control-plane }
  node e1 { address 10.77.0.31  role etcd }
  node e2 { address 10.77.0.32  role etcd }
  node e3 { address 10.77.0.33  role etcd }
}
"""


def _tree(tmp_path: Path, source: str, bundle: bool = True) -> Path:
    if bundle:
        make_bundle(tmp_path / "bundle", tmp_path / "src",
                    images=(*BUNDLE_IMAGES, "ghcr.io/flannel-io/flannel:v0.28.10"))
    (tmp_path / "c.kf").write_text(source)
    return tmp_path


def _build(tree: Path) -> tuple[Path, Plan]:
    result = compile_file(tree / "c.kf", tree / "build", state_dir=tree / "state", now=FIXED_NOW)
    return result.root, Plan.from_json((result.root / "plan.json").read_text())


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    return _build(_tree(tmp_path_factory.mktemp("stacked"), STACKED.replace("BACKUP", POLICY)))


def test_every_stacked_member_gets_script_service_and_timer(stacked):
    root, _ = stacked
    for cp in ("cp1", "cp2", "cp3"):
        base = root / "nodes" / cp
        service = (base / "etc/systemd/system/kubeforge-etcd-backup.service").read_text()
        timer = (base / "etc/systemd/system/kubeforge-etcd-backup.timer").read_text()
        script = base / "usr/local/sbin/kubeforge-etcd-backup"
        assert "ExecStart=/usr/local/sbin/kubeforge-etcd-backup /srv/etcd-snapshots 3" in service
        assert "Type=oneshot" in service
        assert "OnCalendar=*-*-* 02:30:00\n" in timer and "WantedBy=timers.target" in timer
        assert script.stat().st_mode & 0o777 == 0o755
        address = {"cp1": "10.77.0.11", "cp2": "10.77.0.12", "cp3": "10.77.0.13"}[cp]
        assert f"--endpoints=https://{address}:2379" in script.read_text()
    assert not (root / "nodes/w1/etc/systemd/system/kubeforge-etcd-backup.timer").exists()


def test_the_timer_starts_after_the_member_exists_and_etcdctl_comes_from_the_bundle(stacked):
    _, plan = stacked
    steps = {s.id: s for s in plan.steps}
    timers = {s.host: s for s in plan.steps if isinstance(s.action, Service)
              and s.action.name == "kubeforge-etcd-backup.timer"}
    assert sorted(timers) == ["cp1", "cp2", "cp3"]
    assert "cp1/control-plane-init/kubeadm-init" in timers["cp1"].needs
    assert "cp2/control-plane-join/kubeadm-join" in timers["cp2"].needs
    # a changed script, service or timer restarts the timer
    assert {steps[i].action.path for i in timers["cp3"].action.restart_on} == {
        S.BACKUP_SCRIPT, "/etc/systemd/system/kubeforge-etcd-backup.service",
        "/etc/systemd/system/kubeforge-etcd-backup.timer"}
    tools = {(s.host, s.action.path) for s in plan.steps if isinstance(s.action, Upload)
             and s.action.path in ("/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl")}
    assert tools == {(cp, f"/usr/local/bin/{t}") for cp in ("cp1", "cp2", "cp3")
                     for t in ("etcdctl", "etcdutl")}


def test_no_policy_no_units_but_the_tools_still_reach_the_control_planes(tmp_path):
    root, plan = _build(_tree(tmp_path, STACKED.replace("BACKUP", "")))
    assert not list(root.glob("nodes/*/etc/systemd/system/kubeforge-etcd-backup*"))
    assert not [s for s in plan.steps if "kubeforge-etcd-backup" in s.id]
    assert ("cp2", "/usr/local/bin/etcdutl") in {
        (s.host, s.action.path) for s in plan.steps if isinstance(s.action, Upload)}


def test_external_members_get_the_defaults_and_the_timer_after_their_health(tmp_path):
    root, plan = _build(_tree(tmp_path, EXTERNAL, bundle=False))
    for member in ("e1", "e2", "e3"):
        service = (root / f"nodes/{member}/etc/systemd/system/kubeforge-etcd-backup.service")
        assert "ExecStart=/usr/local/sbin/kubeforge-etcd-backup /var/backups/etcd 7" \
            in service.read_text()
        assert "OnCalendar=daily" in (service.parent / "kubeforge-etcd-backup.timer").read_text()
        timer = next(s for s in plan.steps if s.id == f"{member}/etcd/service-kubeforge-etcd-"
                                                      "backup.timer")
        assert f"{member}/etcd/health" in timer.needs
        binaries = next(s for s in plan.steps if s.id == f"{member}/preflight/binaries")
        assert "etcdctl" in binaries.action.shell
    assert not (root / "nodes/cp1/etc/systemd/system/kubeforge-etcd-backup.timer").exists()


# ---------------------------------------------------------------- the script, run for real

FAKE_ETCDCTL = """#!/bin/sh
# records its arguments; `snapshot save FILE` writes FILE.part then renames it, as etcdctl does
echo "$@" >> "$FAKE_LOG"
case "$*" in
  *"snapshot save"*) eval "out=\\${$#}"; printf 'snap-%s' "$(date +%N)" > "$out.part"
                     mv "$out.part" "$out";;
esac
"""
FAKE_ETCDUTL = """#!/bin/sh
echo '{"hash":1,"revision":4242,"totalKey":10,"totalSize":20480,"version":"3.6.0"}'
"""


def _fake_tools(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("etcdctl", FAKE_ETCDCTL), ("etcdutl", FAKE_ETCDUTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_LOG": str(tmp_path / "log")}


def test_the_backup_script_snapshots_reports_and_keeps_the_newest(tmp_path, stacked):
    root, _ = stacked
    script = root / "nodes/cp2/usr/local/sbin/kubeforge-etcd-backup"
    env = _fake_tools(tmp_path)
    target = tmp_path / "snaps"
    (target).mkdir()
    (target / "etcd-cp1-20200101T000000.000000000Z.db").write_text("another member's")
    (target / "notes.txt").write_text("not a snapshot")
    reports = []
    for _ in range(5):
        proc = subprocess.run(["sh", str(script), str(target), "3"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        reports.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ours = sorted(p.name for p in target.glob("etcd-cp2-*.db"))
    assert len(ours) == 3 and ours == sorted(Path(r["path"]).name for r in reports[-3:])
    assert (target / "etcd-cp1-20200101T000000.000000000Z.db").exists()  # not cp2's to delete
    assert (target / "notes.txt").exists() and not list(target.glob(".*tmp*"))
    last = reports[-1]
    data = Path(last["path"]).read_bytes()
    assert last == {"member": "cp2", "path": last["path"], "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(), "revision": 4242}
    assert target.stat().st_mode & 0o777 == 0o700
    assert Path(last["path"]).stat().st_mode & 0o777 == 0o600
    log = (tmp_path / "log").read_text()
    assert "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in log


def test_a_failed_snapshot_leaves_nothing_and_fails(tmp_path, stacked):
    root, _ = stacked
    env = _fake_tools(tmp_path)
    (tmp_path / "bin/etcdctl").write_text("#!/bin/sh\necho 'context deadline exceeded' >&2\n"
                                          "exit 1\n")
    target = tmp_path / "snaps"
    proc = subprocess.run(["sh", str(root / "nodes/cp1/usr/local/sbin/kubeforge-etcd-backup"),
                           str(target), "2"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "deadline" in proc.stderr
    assert list(target.iterdir()) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("schedule", ["daily", "*-*-* 02:30:00", "Mon..Fri 03:00",
                                      "*-*-* 00/6:00:00", "weekly"])
def test_accepted_schedules_are_systemd_calendar_expressions(tmp_path, schedule):
    source = EXTERNAL.replace("backup { }", f'backup {{ schedule "{schedule}" }}')
    (tmp_path / "c.kf").write_text(source)
    program, _ = load_program(tmp_path / "c.kf")
    assert program.cluster.backup.schedule == schedule
    proc = subprocess.run(["systemd-analyze", "calendar", schedule], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- restore scripts


def test_restore_scripts_per_stacked_member(tmp_path):
    (tmp_path / "c.kf").write_text(STACKED.replace("BACKUP", "").replace(
        'install bundle path "bundle"', "install preinstalled"))
    cluster = load_program(tmp_path / "c.kf")[0].cluster
    sha = "ab" * 32
    hosts = S.restore_hosts(cluster, sha)
    assert [h.name for h in hosts] == ["cp1", "cp2", "cp3"] and all(h.member for h in hosts)
    initial = ("--initial-cluster=cp1=https://10.77.0.11:2380,cp2=https://10.77.0.12:2380,"
               "cp3=https://10.77.0.13:2380")
    for host, address in zip(hosts, ("10.77.0.11", "10.77.0.12", "10.77.0.13")):
        assert f"--name={host.name} " in host.restore and initial in host.restore
        assert f"--initial-advertise-peer-urls=https://{address}:2380" in host.restore
        assert "--initial-cluster-token=etcd-cluster" in host.restore  # kubeadm's default
        assert f"want={sha}" in host.restore and "--bump-revision" in host.restore
        for manifest in ("etcd", "kube-apiserver"):
            assert f"mv -f /etc/kubernetes/manifests/{manifest}.yaml" in host.stop
            assert f"{S.STAGING}/manifests/{manifest}.yaml /etc/kubernetes/manifests/" \
                   f"{manifest}.yaml" in host.start
        assert ":(2379|2380|6443)$" in host.stop and "systemctl" not in host.stop


def test_restore_scripts_with_external_etcd_stop_services_and_api_servers(tmp_path):
    (tmp_path / "c.kf").write_text(EXTERNAL)
    cluster = load_program(tmp_path / "c.kf")[0].cluster
    hosts = {h.name: h for h in S.restore_hosts(cluster, "cd" * 32)}
    assert list(hosts) == ["e1", "e2", "e3", "cp1"]
    assert "systemctl stop etcd" in hosts["e2"].stop and ".yaml" not in hosts["e2"].stop
    assert "systemctl start --no-block etcd" in hosts["e2"].start
    assert "--initial-cluster-token=ext-etcd" in hosts["e2"].restore
    assert "--name=e2 " in hosts["e2"].restore
    cp = hosts["cp1"]
    assert not cp.member and cp.restore == ""
    assert "kube-apiserver.yaml" in cp.stop and "etcd.yaml" not in cp.stop
    assert ":(6443)$" in cp.stop


@pytest.mark.parametrize("restored", [False, True])
def test_the_restore_step_runs_once_per_snapshot(tmp_path, restored):
    """The marker check: a member restored from this snapshot already skips the step (the
    rest of the script needs root paths, so only its first lines run here)."""
    cluster_file = tmp_path / "c.kf"
    cluster_file.write_text(EXTERNAL)
    cluster = load_program(cluster_file)[0].cluster
    script = S.restore_hosts(cluster, "ef" * 32)[0].restore
    staging = tmp_path / "staging"
    staging.mkdir()
    if restored:
        (staging / "restored").write_text("ef" * 32 + "\n")
    head = script.split("echo \"$want  ")[0].replace(S.STAGING, str(staging))
    assert "flock -w 900 9" in head  # an orphaned half of a killed run is waited for
    proc = subprocess.run(["sh", "-c", head + "echo WOULD-RESTORE"], capture_output=True,
                          text=True)
    assert ("restored already" in proc.stdout) == restored
    assert ("WOULD-RESTORE" in proc.stdout) == (not restored)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("policy, message, hint", [
    ('backup { schedule "dayly" }', "unknown schedule `dayly`", "did you mean `daily`?"),
    ('backup { schedule "02:30\\nExecStart=/bin/evil" }', "is not a systemd calendar "
     "expression", "systemd.time(7)"),
    ('backup { schedule "Mon..Fryday 03:00" }', "`Fryday` is not a weekday",
     "did you mean `Friday`?"),
    ("backup { keep 0 }", "keep 1 to 10000 snapshots", "newest snapshots"),
    ('backup { dir "backups" }', "must be an absolute path", "/var/backups/etcd"),
    ('backup { dir "/var/lib/etcd/snap" }', "overlaps /var/lib/etcd", "keep snapshots apart"),
    ('backup { dir "/" }', "snapshots need a directory of their own", None),
    ('backup { keep 3  keep 4 }', "`keep` is given twice in the backup block", "line 8"),
])
def test_policy_errors_point_at_the_value(tmp_path, policy, message, hint):
    (tmp_path / "c.kf").write_text(EXTERNAL.replace("backup { }", policy))
    with pytest.raises(DiagnosticError) as info:
        load_program(tmp_path / "c.kf")
    text = info.value.render()
    assert message in text, text
    assert re.search(r"c\.kf:8:\d+: error\[E10[15]\]", text), text
    assert "^" in text and (hint is None or hint in text)


def test_stacked_etcd_with_packages_has_no_etcdctl_for_the_policy(tmp_path):
    (tmp_path / "c.kf").write_text(STACKED.replace("BACKUP", "backup { }").replace(
        'install bundle path "bundle"', "install packages"))
    with pytest.raises(DiagnosticError) as info:
        load_program(tmp_path / "c.kf")
    text = info.value.render()
    assert "c.kf:8:3: error[E115]: `backup` with `etcd stacked` needs etcdctl" in text
    assert "install bundle" in text


@pytest.mark.parametrize("listening, code", [("127.0.0.1:2379", 1), ("10.77.0.11:6443", 1),
                                             ("*:8443", 0)])
def test_the_stop_step_waits_until_etcd_and_the_api_server_are_gone(tmp_path, listening,
                                                                     code):
    """The stop script's wait, run against a fake `ss`: a listener on an etcd or API port
    keeps it waiting (here until its shortened deadline), another port does not."""
    (tmp_path / "c.kf").write_text(STACKED.replace("BACKUP", "").replace(
        'install bundle path "bundle"', "install preinstalled"))
    stop = S.restore_hosts(load_program(tmp_path / "c.kf")[0].cluster, "ab" * 32)[0].stop
    wait = stop.splitlines()[-1].replace("timeout 240 ", "timeout 3 ")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ss").write_text(f"#!/bin/sh\necho 'LISTEN 0 4096 {listening} 0.0.0.0:*'\n")
    (fake / "ss").chmod(0o755)
    proc = subprocess.run(["sh", "-c", wait], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert proc.returncode == code, proc.stdout + proc.stderr


FAKE_ETCDUTL_RESTORE = """#!/bin/sh
# `snapshot restore SNAP ... --data-dir=DIR ...`: DIR/member holds the snapshot's bytes
echo "$@" >> "$FAKE_LOG"
for a in "$@"; do case "$a" in --data-dir=*) dir="${a#--data-dir=}";; esac; done
[ ! -e "$dir" ] || { echo "data-dir $dir exists" >&2; exit 1; }
mkdir -p "$dir/member" && cp "$3" "$dir/member/db"
"""


def test_the_restore_step_swaps_data_and_converges_after_an_interruption(tmp_path):
    """The member's restore script with its root paths moved under tmp_path and a fake
    etcdutl: the data is swapped (the replaced data kept), a second run does nothing, and a
    run killed between moving the old data aside and moving the new data in is repaired by
    the next run without losing the data that was replaced first."""
    (tmp_path / "c.kf").write_text(EXTERNAL)
    cluster = load_program(tmp_path / "c.kf")[0].cluster
    snapshot = b"the snapshot"
    sha = hashlib.sha256(snapshot).hexdigest()
    staging, data = tmp_path / "staging", tmp_path / "etcd-data"
    script = S.restore_hosts(cluster, sha)[1].restore.replace(S.STAGING, str(staging)) \
        .replace("/var/lib/etcd", str(data))
    staging.mkdir()
    (staging / "snapshot.db").write_bytes(snapshot)
    (data / "member").mkdir(parents=True)
    (data / "member" / "db").write_text("destroyed data")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "etcdutl").write_text(FAKE_ETCDUTL_RESTORE)
    (bin_dir / "etcdutl").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_LOG": str(tmp_path / "log")}

    def run() -> str:
        proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "member e2: restored" in run()
    assert (data / "member/db").read_bytes() == snapshot
    assert (staging / "before-restore/member/db").read_text() == "destroyed data"
    assert (data.stat().st_mode & 0o777) == 0o700
    log = (tmp_path / "log").read_text()
    assert "--name=e2 " in log and "--initial-advertise-peer-urls=https://10.77.0.32:2380" in log
    assert "restored already" in run() and log == (tmp_path / "log").read_text()

    # killed after `mv DATA before-restore`, before the new data moved in
    (staging / "restored").unlink()
    shutil.rmtree(data)
    (staging / "data" / "member").mkdir(parents=True)
    assert "member e2: restored" in run()
    assert (data / "member/db").read_bytes() == snapshot
    assert (staging / "before-restore/member/db").read_text() == "destroyed data"


@pytest.mark.parametrize("version, etcdutl, ok", [("3.6.5", False, False), ("3.6.5", True, True),
                                                  ("3.4.23", False, True)])
def test_a_restore_needs_etcdutl_or_an_etcdctl_that_still_restores(tmp_path, version, etcdutl,
                                                                   ok):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    programs = {"etcdctl": f"#!/bin/sh\necho 'etcdctl version: {version}'\n"}
    if etcdutl:
        programs["etcdutl"] = "#!/bin/sh\n"
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    proc = subprocess.run(["sh", "-c", S.tools_script(restore=True)], env=env,
                          capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, proc.stdout
    assert ok or proc.stdout.strip() == "missing: etcdutl"
    assert subprocess.run(["sh", "-c", S.tools_script()], env=env).returncode == 0
