"""etcd backup and restore on the real HA cluster (stacked etcd on cp1-3), as a user would:
a `backup { ... }` policy added to the file and applied (only its steps run; the timer is
active on every control plane; a run of the service writes a snapshot and keeps the newest
`keep`), then `kubeforge etcd backup`, the objects written before it deleted and every
member's data wiped, and `kubeforge etcd restore` (interrupted once, then run again to the
end): the objects are back, 3 members healthy, every node Ready, the guestbook served.

Destructive: this module runs last among the day-2 modules (conftest.ORDER).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.k8s.ha.lab import CONTROL_PLANES, NODEPORT, REPORT, WORKERS
from tests.k8s.ha_cluster import HaCluster, changed_steps, http_get

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICY = 'backup { schedule "*-*-* 03:00:00"  keep 2  dir "/var/backups/etcd" }'
NAMESPACE = "etcd-restore-check"
ETCDCTL = ("etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
           "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")


@pytest.fixture(scope="module")
def cluster(applied) -> HaCluster:
    return applied


@pytest.fixture(scope="module")
def with_policy(cluster):
    text = cluster.kf.read_text()
    assert "  etcd stacked\n" in text
    cluster.kf.write_text(text.replace("  etcd stacked\n", f"  etcd stacked\n  {POLICY}\n", 1))
    proc = cluster.on_hosts("apply")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return cluster, changed_steps(proc.stderr)


def test_adding_the_policy_runs_only_its_steps(with_policy):
    _, changed = with_policy
    assert changed, "the policy changed nothing"
    # keep-originals records what was at the policy's new paths before (reset gives it back)
    assert all("kubeforge-etcd-backup" in step or step.endswith("/os-prepare/keep-originals")
               for step in changed), changed
    assert any("service-kubeforge-etcd-backup.timer" in step for step in changed), changed
    assert {s.split("/")[0] for s in changed} == set(CONTROL_PLANES)


def _snapshots(ha: HaCluster, host: str) -> list[str]:
    code, out = ha.ssh(host, "ls -1 /var/backups/etcd")
    assert code == 0
    return sorted(line for line in out.split() if line.startswith(f"etcd-{host}-"))


def test_the_timer_is_active_and_each_run_keeps_the_newest(with_policy):
    ha, _ = with_policy
    for cp in CONTROL_PLANES:
        code, out = ha.ssh(cp, "systemctl is-enabled kubeforge-etcd-backup.timer; "
                               "systemctl is-active kubeforge-etcd-backup.timer")
        assert out.split() == ["enabled", "active"], (cp, out)
    runs = []
    for _ in range(3):  # keep 2: the third run removes the first snapshot
        code, out = ha.ssh("cp2", "systemctl start kubeforge-etcd-backup.service && "
                                  "systemctl show -p Result --value kubeforge-etcd-backup.service")
        assert (code, out.strip()) == (0, "success"), out
        runs.append(_snapshots(ha, "cp2")[-1])
    assert len(set(runs)) == 3
    assert _snapshots(ha, "cp2") == runs[1:]
    code, out = ha.ssh("cp2", f"stat -c %a /var/backups/etcd /var/backups/etcd/{runs[-1]}; "
                              f"etcdutl snapshot status /var/backups/etcd/{runs[-1]} -w json")
    lines = out.split("\n")
    assert code == 0 and lines[:2] == ["700", "600"], out
    assert json.loads(lines[2])["revision"] > 0


def _kubeforge(ha: HaCluster, *args: str) -> subprocess.Popen:
    inventory = ("-i", str(ha.sandbox_dir / "inventory.yaml"),
                 "--known-hosts", str(ha.sandbox_dir / "known_hosts"))
    return subprocess.Popen([sys.executable, "-m", "kubeforge", "etcd", *args[:1], str(ha.kf),
                             *inventory, *args[1:]], cwd=ha.root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 1800) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _members(ha: HaCluster) -> dict:
    code, out = ha.ssh("cp1", f"{ETCDCTL} member list -w json")
    assert code == 0, out
    members = {m["name"]: m for m in json.loads(out)["members"]}
    code, out = ha.ssh("cp1", f"{ETCDCTL} endpoint health --cluster -w json")
    assert code == 0, out
    return {m: next(h["health"] for h in json.loads(out) if h["endpoint"] in members[m]
                    ["clientURLs"]) for m in members}


def _gone_or_unanswered(ha: HaCluster) -> bool:
    proc = ha.kubectl("-n", "default", "get", "deployment", "frontend", check=False,
                      timeout=20)
    return proc.returncode != 0


def test_backup_wipe_and_restore(with_policy, tmp_path):
    ha, _ = with_policy
    token = secrets.token_hex(8)
    ha.kubectl("create", "namespace", NAMESPACE)
    for n in range(3):
        ha.kubectl("-n", NAMESPACE, "create", "configmap", f"kept-{n}",
                   f"--from-literal=token={token}-{n}")

    # kubeforge etcd backup: one snapshot now, fetched here, reported truthfully.
    started = time.monotonic()
    code, out, err = _finish(_kubeforge(ha, "backup", "-o", str(tmp_path), "--json"))
    REPORT["etcd_backup_s"] = round(time.monotonic() - started, 1)
    assert code == 0, err[-4000:]
    snap = json.loads(out)
    path = Path(snap["path"])
    data = path.read_bytes()
    assert path.parent == tmp_path and os.stat(path).st_mode & 0o777 == 0o600
    assert (snap["size"], snap["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert isinstance(snap["revision"], int) and snap["revision"] > 0
    assert snap["member"] in CONTROL_PLANES
    REPORT["etcd_snapshot_bytes"] = snap["size"]

    # Without --yes and without a terminal the restore refuses before touching anything.
    code, _, err = _finish(_kubeforge(ha, "restore", str(path)))
    assert code == 2 and "pass --yes" in err, err
    ha.kubectl("-n", NAMESPACE, "get", "configmap", "kept-0")

    # The objects go, then every member's data.
    ha.kubectl("delete", "namespace", NAMESPACE, "--wait=true", timeout=300)
    for cp in CONTROL_PLANES:  # etcd stopped on all three, its data removed, started again
        assert ha.ssh(cp, "mv /etc/kubernetes/manifests/etcd.yaml /root/etcd.yaml")[0] == 0
    for cp in CONTROL_PLANES:
        ha.wait(f"etcd stopped on {cp}", lambda cp=cp: ha.ssh(
            cp, "ss -Htln | awk '{print $4}' | grep -Eq ':2379$'")[0] == 1, 180)
    for cp in CONTROL_PLANES:
        code, out = ha.ssh(cp, "rm -rf /var/lib/etcd/member && "
                               "mv /root/etcd.yaml /etc/kubernetes/manifests/etcd.yaml")
        assert code == 0, (cp, out)
    ha.wait("the API lost the guestbook's Deployment", lambda: _gone_or_unanswered(ha), 300)

    # An interrupted restore (killed once the first member is restored) converges when run
    # again with the same snapshot.
    first = _kubeforge(ha, "restore", str(path), "--yes")
    killed = False
    for line in first.stderr:
        if ": restored" in line:
            first.kill()
            killed = True
            break
    first.wait(timeout=600)
    assert killed, "the first restore never restored a member"
    started = time.monotonic()
    code, out, err = _finish(_kubeforge(ha, "restore", str(path), "--yes", "--json"))
    REPORT["etcd_restore_s"] = round(time.monotonic() - started, 1)
    assert code == 0, err[-6000:]
    REPORT["etcd_restore_stages_s"] = json.loads(out)["seconds"]

    for n in range(3):
        got = ha.wait(f"configmap kept-{n} back", lambda n=n: ha.kubectl(
            "-n", NAMESPACE, "get", "configmap", f"kept-{n}", "-o", "jsonpath={.data.token}",
            check=False).stdout, 300)
        assert got == f"{token}-{n}"
    health = ha.wait("3 healthy etcd members", lambda: (h := _members(ha)) and len(h) == 3
                     and all(h.values()) and h, 300)
    assert sorted(health) == sorted(CONTROL_PLANES)
    ha.wait("all five nodes Ready", lambda: (r := ha.nodes_ready()) and len(r) == 5
            and all(r.values()), 600)
    for worker in WORKERS:
        ha.wait(f"the guestbook on {worker}:{NODEPORT}", lambda w=worker: http_get(
            f"http://{ha.address(w)}:{NODEPORT}/guestbook.php")[0] == 200, 600, 3)
    code, out = ha.ssh("cp1", "test ! -e /var/lib/kubeforge/etcd-restore && "
                              "ls /etc/kubernetes/manifests")
    assert code == 0 and "etcd.yaml" in out and "kube-apiserver.yaml" in out, out
