"""The storage addon on the real HA cluster: examples/ha-guestbook.kf declares
`addon storage local-path`, and examples/apps/notes.kf a statefulset whose `volume` claim
template names no class. The one `apply` of test_ha_e2e.py ran the addon after the CNI, from
the bundle's image; here:

* `local-path` is the cluster's only default StorageClass, and its provisioner runs the
  bundle's build (`--version` prints the release's stamp, v0.0.30);
* the statefulset's claim is Bound to a PersistentVolume the provisioner made for it (no
  PV by hand): of the default class, on the node that runs the pod, under the declared path;
* the pod wrote a file to its claim; the pod is deleted; its replacement (another pod) reads
  the same file back, and the file is on that node's disk where the PV says.

Runs right after test_ha_e2e.py (conftest.py's ORDER), on its cluster; what it measured
goes to ha-report.json (`storage_*`).
"""

from __future__ import annotations

import time

import pytest

from tests.k8s.ha.lab import REPORT, WORKERS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMESPACE, PROVISIONER = "local-path-storage", "local-path-provisioner"
IMAGE = "kubeforge.local/local-path-provisioner:v0.0.30"
VOLUMES = "/opt/local-path-provisioner"  # the `path` ha-guestbook.kf declares
CLAIM = "data-notes-0"  # volumeClaimTemplates `data` of statefulset `notes`


def _notes_pod(ha, not_uid: str = "") -> dict | None:
    """notes-0 when Ready (and not the pod ``not_uid``)."""
    pods = ha.ready_pods("default", "app=notes")
    return next((p for p in pods if p["metadata"]["uid"] != not_uid), None)


def test_local_path_is_the_default_class_and_runs_the_bundles_build(applied):
    ha = applied
    classes = ha.json("get", "storageclasses")["items"]
    defaults = [c["metadata"]["name"] for c in classes
                if c["metadata"].get("annotations", {}).get(
                    "storageclass.kubernetes.io/is-default-class") == "true"]
    assert defaults == ["local-path"], f"default StorageClasses: {defaults}"
    [pod] = ha.wait("the provisioner pod Ready", lambda: ha.ready_pods(NAMESPACE,
                                                                       f"app={PROVISIONER}"), 120)
    container = pod["spec"]["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == (IMAGE, "Never")
    version = ha.kubectl("-n", NAMESPACE, "exec", pod["metadata"]["name"], "--",
                         PROVISIONER, "--version").stdout.strip()
    assert version == f"{PROVISIONER} version v0.0.30", version


def test_the_claim_binds_to_a_volume_the_provisioner_made(applied):
    ha = applied
    pod = ha.wait("statefulset notes' pod Ready (its claim provisioned and mounted)",
                  lambda: _notes_pod(ha), 180)
    node = pod["spec"]["nodeName"]
    assert node in WORKERS, node
    pvc = ha.json("-n", "default", "get", "pvc", CLAIM)
    assert pvc["status"]["phase"] == "Bound", pvc["status"]
    assert pvc["spec"]["storageClassName"] == "local-path"  # given by the default class
    pv = ha.json("get", "pv", pvc["spec"]["volumeName"])
    annotations = pv["metadata"].get("annotations", {})
    assert annotations.get("pv.kubernetes.io/provisioned-by") == "rancher.io/local-path", \
        f"not a dynamically provisioned volume: {annotations}"
    assert pv["spec"]["storageClassName"] == "local-path"
    assert pv["spec"]["claimRef"]["name"] == CLAIM
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["hostPath"]["path"].startswith(VOLUMES + "/"), pv["spec"]
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert [e["values"] for t in terms for e in t["matchExpressions"]] == [[node]], terms


def test_a_replaced_pod_reads_the_file_its_predecessor_wrote(applied):
    ha = applied
    first = ha.wait("notes-0 Ready", lambda: _notes_pod(ha), 180)
    uid, node = first["metadata"]["uid"], first["spec"]["nodeName"]
    exec_ = ("-n", "default", "exec", "notes-0", "--")
    note = ha.kubectl(*exec_, "cat", "/data/note").stdout.strip()
    assert note.startswith("written by pod "), note
    starts = ha.kubectl(*exec_, "cat", "/data/starts").stdout.split()
    assert starts and starts[-1] == uid, starts

    started = time.monotonic()
    ha.kubectl("-n", "default", "delete", "pod", "notes-0", "--wait=true", "--timeout=60s",
               timeout=90)
    second = ha.wait("a new notes-0 Ready after the delete", lambda: _notes_pod(ha, uid), 120)
    REPORT["storage_pod_replaced_s"] = round(time.monotonic() - started, 1)
    new_uid = second["metadata"]["uid"]
    assert second["spec"]["nodeName"] == node  # the volume's node affinity brought it back
    log = ha.kubectl("-n", "default", "logs", "notes-0").stdout
    assert f"read: {note}" in log, f"the new pod did not read the file back; its log:\n{log}"
    assert ha.kubectl(*exec_, "cat", "/data/note").stdout.strip() == note
    assert ha.kubectl(*exec_, "cat", "/data/starts").stdout.split() == [*starts, new_uid]

    pvc = ha.json("-n", "default", "get", "pvc", CLAIM)
    path = ha.json("get", "pv", pvc["spec"]["volumeName"])["spec"]["hostPath"]["path"]
    status, on_disk = ha.ssh(node, f"cat {path}/note")
    assert status == 0 and on_disk.strip() == note, (status, on_disk)
