"""Day 2 on the real HA cluster: an upgrade to the next minor, from the file.

The package's cluster runs the previous minor's newest release. Its file now names the newest
release and that release's bundle: `plan` shows the upgrade apply runs first, node by node;
`apply` runs it in kubeadm's order (`kubeadm upgrade apply` on cp1, `kubeadm upgrade node` on
the others, each node drained, given its new kubelet, kubectl and runtime, Ready at the new
release and uncordoned before the next one starts), then the bootstrap plan of the new
release. The first apply is killed in the middle of cp2's turn (its control plane upgraded,
its kubelet not yet); the apply run again finishes. All the while the guestbook is read
through every node's NodePort in turn and the API through the VIP. Afterwards every node and
component runs the new release, and another apply changes nothing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from kubeforge.compiler import versions
from tests.k8s.bundle_fixture import KUBERNETES, PREVIOUS, bundle_dir
from tests.k8s.ha.lab import CONTROL_PLANES, REPORT, WORKERS
from tests.k8s.ha.sampling import GuestbookSampler, VipSampler
from tests.k8s.ha_cluster import HaCluster, changed_steps, upgraded_source

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODES = (*CONTROL_PLANES, *WORKERS)
#: Bounds asserted for the guestbook's readers and the API through the VIP during the
#: upgrade. Each node's drain evicts its guestbook pods (redis-master's single replica
#: included: reads go to the replicas) and its kubelet and containerd restart; a NodePort
#: request that meets a restarting kube-proxy or an endpoint being removed may fail. The API
#: loses one API server at a time (haproxy takes it out after up to two failed 5 s checks).
MIN_SUCCESS = 0.95
MAX_GAP_S = 30.0
#: Where the first apply is killed: right after this step changed.
KILL_AFTER = "cp2/upgrade-nodes/kubeadm-upgrade"


def _retarget(ha: HaCluster, bundle) -> None:
    """The file, as a person edits it: the newest release, from its bundle."""
    text = ha.kf.read_text()
    if f'kubernetes "{PREVIOUS}"' not in text:  # the plan test did it already
        return
    ha.kf.write_text(upgraded_source(text, (PREVIOUS, KUBERNETES),
                                     (bundle_dir(PREVIOUS), bundle)))


def _running(ha: HaCluster) -> str:
    return json.loads((ha.root / ".kubeforge" / ha.name / "apply-state.json").read_text()
                      )["kubernetes"]


def _images(ha: HaCluster) -> dict[str, set[str]]:
    """kube-system's pods' images, by the pod's name without its node or hash."""
    found: dict[str, set[str]] = {}
    for pod in ha.json("-n", "kube-system", "get", "pods")["items"]:
        name = pod["metadata"].get("labels", {}).get("component") or \
            pod["metadata"].get("labels", {}).get("k8s-app") or pod["metadata"]["name"]
        for c in pod["spec"]["containers"]:
            found.setdefault(name, set()).add(c["image"])
    return found


def test_plan_shows_the_upgrade_apply_runs_first(applied, bundle):
    ha = applied
    assert _running(ha) == PREVIOUS
    _retarget(ha, bundle)
    proc = ha.on_hosts("plan")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    head, _, rest = proc.stdout.partition("\nthen:\n")
    assert head.startswith(f"first, the upgrade from Kubernetes {PREVIOUS} to {KUBERNETES}")
    for node in NODES:
        assert f"~ {node}/upgrade-nodes/kubeadm-upgrade" in head, head
        assert f"~ cp1/upgrade-nodes/drain-{node}" in head
    assert rest.startswith("plan for cluster ha-lab")
    assert _running(ha) == PREVIOUS  # plan changes nothing


def test_an_interrupted_upgrade_converges_while_the_guestbook_answers(applied, bundle,
                                                                      tmp_path):
    ha = applied
    _retarget(ha, bundle)
    args = [sys.executable, "-m", "kubeforge", "apply", str(ha.kf), "-i",
            str(ha.sandbox_dir / "inventory.yaml"), "--known-hosts",
            str(ha.sandbox_dir / "known_hosts")]
    started = time.monotonic()
    with GuestbookSampler(ha, NODES) as book, VipSampler(ha, tmp_path) as api:
        proc = subprocess.Popen(args, cwd=ha.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        seen = []
        try:
            for line in proc.stderr:  # one line per changed step without a terminal
                seen.append(line)
                if KILL_AFTER in changed_steps(line):
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=60)
        assert any(KILL_AFTER in changed_steps(line) for line in seen), "".join(seen[-40:])
        killed_at = time.monotonic() - started
        # cp2's control plane runs the new release, its kubelet still the old one.
        code, out = ha.ssh("cp2", "grep -h 'image: .*kube-apiserver' "
                                  "/etc/kubernetes/manifests/kube-apiserver.yaml; kubelet --version")
        assert code == 0 and f"kube-apiserver:v{KUBERNETES}" in out, out
        assert f"Kubernetes v{PREVIOUS}" in out, out
        assert _running(ha) == PREVIOUS

        again = ha.on_hosts("apply", timeout=3600)
    took = time.monotonic() - started
    # What each step took (one line per changed step), kept beside the report.
    (ha.root / "upgrade-apply.log").write_text("".join(seen) + "---- run again ----\n"
                                               + again.stderr)
    REPORT["upgrade"] = {"from": PREVIOUS, "to": KUBERNETES, "killed_after_s": round(killed_at, 1),
                         "total_s": round(took, 1), "guestbook": book.summary(),
                         "api_vip": api.summary()}
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-6000:]
    assert "upgrading cluster ha-lab" in again.stderr
    assert _running(ha) == KUBERNETES

    ready = ha.wait("all five nodes Ready", lambda: (r := ha.nodes_ready()) and len(r) == 5
                    and all(r.values()) and r, 300)
    assert set(ready) == set(NODES)
    release = versions.RELEASES[versions.parse(KUBERNETES)[0]]
    for node in ha.json("get", "nodes")["items"]:
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES}"
        assert not node["spec"].get("unschedulable"), node["metadata"]["name"]
    images = _images(ha)
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                      "kube-proxy"):
        assert images[component] == {f"registry.k8s.io/{component}:v{KUBERNETES}"}, images
    assert images["etcd"] == {f"registry.k8s.io/etcd:{release.etcd}"}
    assert images["kube-dns"] == {f"registry.k8s.io/coredns/coredns:{release.coredns}"}
    for cp in CONTROL_PLANES:
        code, out = ha.ssh(cp, "kubeadm version -o short")
        assert out.strip() == f"v{KUBERNETES}", (cp, out)

    for name, sampler in (("guestbook", REPORT["upgrade"]["guestbook"]),
                          ("api", REPORT["upgrade"]["api_vip"])):
        assert sampler["requests"] > 50, (name, sampler)
        assert sampler["longest_gap_s"] <= MAX_GAP_S, (name, sampler)
        assert sampler["requests"] - sampler["failed"] >= MIN_SUCCESS * sampler["requests"], \
            (name, sampler)


def test_after_the_upgrade_an_apply_changes_nothing(applied):
    ha = applied
    assert _running(ha) == KUBERNETES
    proc = ha.on_hosts("apply")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    assert "upgrading" not in proc.stderr
    assert changed_steps(proc.stderr) == [], proc.stderr[-4000:]
