"""End to end, the ansible target on sandbox hosts: external etcd on node1-3, keepalived +
haproxy on node1-2, the control plane on node4 and a worker on node5 (the deploy e2e's
cluster), applied with ``--target ansible --until etcd`` (sandbox hosts carry no Kubernetes
packages). Then ``kubeforge verify`` passes, a second run changes nothing, and the hosts end
up exactly as the ssh target leaves them from clean hosts.

The tests share one deployment and run in file order.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import pytest

from kubeforge.compiler.plan import Plan, Service, Upload
from kubeforge.targets.runner import Selection
from tests.deploy.test_deploy_e2e import PEM, Cluster, _inventory
from tests.support.clean_hosts import cold

pytestmark = pytest.mark.e2e

HOSTS = ("node1", "node2", "node3", "node4", "node5")
#: What any e2e module may have left on these hosts, and every file this cluster uploads up to
#: etcd: services off, files gone or given back (a package's own config), so the next run
#: starts cold.
#: containerd is disabled as on a fresh sandbox host, so both targets must enable it.
CLEAN = cold(("/var/lib/etcd/member", "/etc/kubernetes", "/etc/default/etcd",
              "/etc/systemd/system/etcd.service", "/etc/haproxy/haproxy.cfg",
              "/etc/keepalived/keepalived.conf", "/etc/keepalived/check_apiserver.sh",
              "/etc/containerd/config.toml", "/etc/crictl.yaml",
              "/etc/sysctl.d/99-kubernetes.conf", "/etc/modules-load.d/k8s.conf"),
             ("etcd", "haproxy", "keepalived", "containerd"))


def clean(cluster: Cluster) -> None:
    for name in HOSTS:
        cluster.ssh(name, CLEAN)


@pytest.fixture(scope="module")
def lab(sandbox, tmp_path_factory):
    c = Cluster(sandbox, tmp_path_factory.mktemp("ansible"))
    c.inv.write_text(_inventory(list(c.hosts.values()), sandbox.key_path, worker=True))
    clean(c)
    yield c
    clean(c)  # leave no etcd, VIP or haproxy behind for the next module
    c.ssh.close()


def selected(cluster: Cluster) -> list:
    plan = Plan.from_json((cluster.build / "plan.json").read_text())
    return list(Selection(frozenset(HOSTS), until="etcd").steps(plan))


def snapshot(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Per host: every file, directory and link under the directories the plan uploads to
    (type, mode, owner, link target, sha256), and is-enabled/is-active of each service the
    plan manages. /etc itself is too broad to walk: only the uploads directly in it count."""
    steps = selected(cluster)
    out = {}
    for host in HOSTS:
        uploads = [s.action.path for s in steps if s.host == host and isinstance(s.action, Upload)]
        roots = sorted({str(PurePosixPath(p).parent) for p in uploads} - {"/etc"}
                       | {p for p in uploads if str(PurePosixPath(p).parent) == "/etc"})
        services = sorted({s.action.name for s in steps
                           if s.host == host and isinstance(s.action, Service)})
        where = " ".join(roots)
        script = (f"find {where} -xdev -printf 'stat %p %y %m %u:%g %l\\n' 2>/dev/null; "
                  f"find {where} -xdev -type f -exec sha256sum {{}} + 2>/dev/null | "
                  "sed 's/^/hash /'; "
                  + "".join(f"echo service {n} $(systemctl is-enabled {n}) "
                            f"$(systemctl is-active {n}); " for n in services))
        _, text = cluster.ssh(host, script)
        entries: dict[str, str] = {}
        for line in text.splitlines():
            kind, rest = line.split(" ", 1)
            if kind == "hash":
                digest, path = rest.split("  ", 1)
                entries[path] += f" sha256={digest}"
            elif kind == "service":
                name, value = rest.split(" ", 1)
                entries[f"service {name}"] = value
            else:
                path, value = rest.split(" ", 1)
                entries[path] = value.strip()
        assert any(e.startswith("f ") for e in entries.values()), (host, text)
        out[host] = entries
    return out


def latest_ansible_stdout(cluster: Cluster) -> str:
    runs = sorted((cluster.state / "ansible-runner" / "artifacts").glob("*/stdout"),
                  key=lambda p: p.stat().st_mtime)
    return runs[-1].read_text()


def test_ansible_apply_then_verify_passes(lab):
    proc = lab.cli("apply", "--target", "ansible", "--until", "etcd")
    assert "FAILED" not in proc.stderr
    changed = set(re.findall(r"^changed\s+(\S+?)/", proc.stderr, re.M))
    assert changed == set(HOSTS), proc.stderr  # every role's steps ran, worker's included
    proc = lab.cli("verify", "--until", "etcd", "--json")
    report = json.loads(proc.stdout)
    assert report["ok"], [c for c in report["checks"] if c["status"] == "failed"]
    passed = {(c["node"], c["check"]) for c in report["checks"] if c["status"] == "passed"}
    for expected in [("node1", "service etcd"), ("node2", "service keepalived"),
                     ("node3", "certificate /etc/kubernetes/pki/etcd/server.crt"),
                     ("node4", "certificate /etc/kubernetes/pki/apiserver.crt"),
                     ("node4", "file /etc/kubernetes/pki/ca.key"),
                     ("node5", "service containerd"), ("node5", "kernel_module br_netfilter"),
                     ("node1", "vip_reachable node1"), ("node4", "swap_off node4")]:
        assert expected in passed, expected
    assert any(node == "node2" and check.startswith("etcd_member_healthy")
               for node, check in passed)
    # The worker's and control plane's kubeadm checks belong to phases after etcd.
    skipped = {c["phase"] for c in report["checks"] if c["status"] == "skipped"}
    assert skipped and "etcd" not in skipped and "pki" not in skipped


def test_second_ansible_run_changes_nothing(lab):
    proc = lab.cli("apply", "--target", "ansible", "--until", "etcd")
    assert "no changes" in proc.stderr and not re.search(r"^changed ", proc.stderr, re.M)
    recap = re.findall(r"^(node\d) +: ok=\d+ +changed=(\d+) ", latest_ansible_stdout(lab), re.M)
    assert sorted(host for host, _ in recap) == list(HOSTS)
    assert all(n == "0" for _, n in recap), recap  # Ansible's own count, not kubeforge's


def test_no_key_material_in_the_runner_artifacts_or_output(lab):
    token = (lab.state / "bootstrap-token").read_text().split()[0]
    runner = lab.state / "ansible-runner"
    blobs = [*lab.outputs, (lab.state / "apply.log").read_text(),
             *(p.read_text(errors="replace") for p in runner.rglob("*") if p.is_file()),
             *(p.read_text() for p in (lab.build / "ansible").rglob("*.yml"))]
    for blob in blobs:
        assert not PEM.search(blob) and token not in blob


def test_end_state_equals_the_ssh_targets(lab):
    by_ansible = snapshot(lab)
    clean(lab)
    uploads = " ".join(s.action.path for s in selected(lab) if isinstance(s.action, Upload))
    for host in HOSTS:  # the ssh run below starts from hosts with no planned file but a
        # package's own (haproxy.cfg, /etc/default/etcd), as the ansible run did
        _, left = lab.ssh(host, f"for p in {uploads}; do [ -e \"$p\" ] && "
                                "! dpkg -S \"$p\" >/dev/null 2>&1 && echo \"$p\"; done; true")
        assert left == "", (host, left)
    proc = lab.cli("apply", "--until", "etcd")  # the default target: ssh
    assert "FAILED" not in proc.stderr
    by_ssh = snapshot(lab)
    for host in HOSTS:
        a, s = by_ansible[host], by_ssh[host]
        differ = {k: (a.get(k), s.get(k)) for k in a.keys() | s.keys() if a.get(k) != s.get(k)}
        assert not differ, (host, differ)
    assert by_ssh["node1"]["service etcd"] == "enabled active"
    assert by_ssh["node5"]["service containerd"] == "enabled active"
