"""Scale out and in on the real HA cluster, from the file: a worker and a fourth control plane
declared, `sandbox up FILE` adds their hosts, one `apply` joins them (only the new hosts'
steps and the steps that depend on the membership run: the load balancers' backends); then
both are taken out of the file again: `plan` says what will happen, `apply` refuses without
--allow-removal, and with it drains, removes cp4's etcd member, deletes both nodes and resets
both hosts, giving back what apply had replaced there (a file the host had before). The
removal is killed once halfway and converges when run again.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from tests.k8s.ha.lab import CONTROL_PLANES, NODEPORT, PREFIX, REPORT, WORKERS
from tests.k8s.ha_cluster import HaCluster, changed_steps, http_get

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEW = {"cp4": (PREFIX + "14", "control-plane"), "worker3": (PREFIX + "23", "worker")}
#: A file worker3 has before kubeforge ever touches it, at a path the plan uploads.
PLANTED = ("/etc/crictl.yaml", "# the host's own crictl settings, from before kubeforge\n")
ETCDCTL = ("-n", "kube-system", "exec", "etcd-cp1", "--", "etcdctl",
           "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
           "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
           "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")


def _members(ha: HaCluster) -> list[str]:
    data = json.loads(ha.kubectl(*ETCDCTL, "member", "list", "-w", "json").stdout)
    return sorted(m["name"] for m in data["members"] if not m.get("isLearner"))


def _backends(ha: HaCluster) -> set[str]:
    code, out = ha.ssh("cp1", "cat /etc/haproxy/haproxy.cfg")
    assert code == 0, out
    return set(re.findall(r"^\s*server (\S+) ", out, re.M))


def _served(ha: HaCluster) -> bool:
    status, _, body = http_get(f"http://{ha.address('worker1')}:{NODEPORT}/guestbook.php"
                               "?cmd=get&key=messages")
    return status == 200 and body.startswith('{"data"')


def _grown(source: str) -> str:
    anchor = re.search(r"^  node worker2 \{[^\n]*\}\n", source, re.M)
    assert anchor, "the example's last node line moved"
    lines = "".join(f"  node {n} {{ address {a}  role {r} }}\n" for n, (a, r) in NEW.items())
    return source[:anchor.end()] + lines + source[anchor.end():]


def test_scale_out_then_in(applied):
    ha = applied
    base = ha.kf.read_text()
    try:
        ha.kf.write_text(_grown(base))
        ha.up()  # the sandbox adds cp4 and worker3
        code, _ = ha.ssh("worker3", f"printf %s {shlex.quote(PLANTED[1])} > {PLANTED[0]}")
        assert code == 0

        plan = json.loads(ha.on_hosts("plan", "--json").stdout)
        changing = {h for h, phases in plan["hosts"].items()
                    if any(v["change"] for v in phases.values())}
        assert {"cp4", "worker3"} <= changing and not plan["remove"], plan

        started = time.monotonic()
        proc = ha.on_hosts("apply")
        REPORT["scale_out_apply_s"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
        old_hosts = {*CONTROL_PLANES, *WORKERS}
        foreign = [s for s in changed_steps(proc.stderr) if s.split("/")[0] in old_hosts
                   and "haproxy" not in s and "keepalived" not in s]
        assert not foreign, f"steps of the old hosts that do not follow membership: {foreign}"
        ha.wait("seven nodes Ready", lambda: (r := ha.nodes_ready()) and len(r) == 7
                and all(r.values()), 600)
        assert _members(ha) == ["cp1", "cp2", "cp3", "cp4"]
        assert "cp4" in _backends(ha)

        # Out again.
        ha.kf.write_text(base)
        plan = json.loads(ha.on_hosts("plan", "--json").stdout)
        assert plan["remove"] == [
            {"host": "worker3", "roles": ["worker"], "reachable": True,
             "actions": ["drain", "reset host", "delete node"]},
            {"host": "cp4", "roles": ["control-plane"], "reachable": True,
             "actions": ["drain", "reset host", "remove etcd member", "delete node"]}]
        refused = ha.on_hosts("apply")
        assert refused.returncode == 2 and "--allow-removal" in refused.stderr, refused.stderr

        started = time.monotonic()
        _killed_while_removing(ha, "cp4: draining")
        proc = ha.on_hosts("apply", "--allow-removal")
        REPORT["scale_in_apply_s"] = round(time.monotonic() - started, 1)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
        assert "removed cp4" in proc.stderr
        # worker3 went in the killed run; the inventory still listing it is no mistake.
        assert "worker3 was removed from cluster ha-lab by an earlier apply" in proc.stderr

        assert set(ha.nodes_ready()) == old_hosts
        assert _members(ha) == list(CONTROL_PLANES)
        assert "cp4" not in _backends(ha)
        code, out = ha.ssh("worker3", f"cat {PLANTED[0]}; ls /etc/kubernetes 2>&1; "
                                      "systemctl is-active kubelet")
        assert out.startswith(PLANTED[1]) and "No such file" in out, out
        code, out = ha.ssh("cp4", "ls /var/lib/etcd /etc/kubernetes/manifests 2>&1")
        assert out.count("No such file") == 2, out
        ha.wait("the guestbook served", lambda: _served(ha), 120)
        again = ha.on_hosts("plan", "--json")
        assert json.loads(again.stdout)["remove"] == []
    finally:
        ha.kf.write_text(base)
        # What the removal did not get to is left for the hosts' own down; the sandbox
        # drops the hosts the file no longer declares.
        ha.up()


def _killed_while_removing(ha: HaCluster, line: str) -> None:
    """`apply --allow-removal`, killed (SIGKILL, no chance to tidy up) once it prints
    ``line``; the worker before it is removed by then."""
    command = [sys.executable, "-m", "kubeforge", "apply", str(ha.kf), "--allow-removal",
               "-i", str(ha.sandbox_dir / "inventory.yaml"), "--known-hosts",
               str(ha.sandbox_dir / "known_hosts")]
    proc = subprocess.Popen(command, cwd=ha.root, stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL)
    seen = []
    try:
        for out in proc.stderr:
            seen.append(out)
            if out.strip() == line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=600)
    assert any(s.strip() == "removed worker3" for s in seen), "".join(seen)[-3000:]
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
