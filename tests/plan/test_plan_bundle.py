"""`install bundle path "DIR"` from source text to plan.json: what each host receives from
an offline bundle, and what a broken bundle does to a compile (nothing reaches a host)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.plan import Command, Plan, Upload
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.bundle.bundle_helpers import BUNDLE_IMAGES, make_bundle
from tests.conftest import FIXED_NOW

SOURCE = """cluster off {
  kubernetes "1.37.2"
  endpoint "10.77.0.11:6443"
  network { pods 10.244.0.0/16  services 10.96.0.0/12  nodes 10.77.0.0/24 }
  cni flannel
  loadbalancer external
  install bundle path "bundle"
  node cp1 { address 10.77.0.11  role control-plane }
  node w1 { address 10.77.0.21  role worker }
}
"""


@pytest.fixture
def tree(tmp_path) -> Path:
    make_bundle(tmp_path / "bundle", tmp_path / "src",
                images=(*BUNDLE_IMAGES, "ghcr.io/flannel-io/flannel:v0.28.10"))
    (tmp_path / "off.kf").write_text(SOURCE)
    return tmp_path


def compile_tree(tree: Path):
    return compile_file(tree / "off.kf", tree / "build", state_dir=tree / "state", now=FIXED_NOW)


def plan_of(tree: Path) -> Plan:
    compile_tree(tree)
    return Plan.from_json((tree / "build/off/plan.json").read_text())


def test_hosts_get_the_bundle_files_of_their_roles_by_absolute_path(tree):
    plan = plan_of(tree)
    manifest = json.loads((tree / "bundle/manifest.json").read_text())
    uploads = {(s.host, s.action.path): s.action for s in plan.steps
               if isinstance(s.action, Upload) and s.action.source.startswith(str(tree / "bundle"))}
    kubelet = uploads[("cp1", "/usr/local/bin/kubelet")]
    entry = next(f for f in manifest["files"] if f["path"] == "bin/kubelet")
    assert kubelet.source == str(tree / "bundle/bin/kubelet")
    assert (kubelet.sha256, kubelet.mode) == (entry["sha256"], 0o755)
    assert ("w1", "/opt/cni/bin/flannel") in uploads
    # etcd's binaries are for external etcd hosts only; control-plane images for control planes.
    assert ("cp1", "/usr/local/bin/etcd") not in uploads
    assert ("cp1", "/var/cache/kubeforge/images/kube-apiserver.tar") in uploads
    assert ("w1", "/var/cache/kubeforge/images/kube-apiserver.tar") not in uploads
    # Nothing of the bundle is copied into the build.
    assert not (tree / "build/off/bundle").exists()


def test_images_are_imported_pinned_after_containerd_starts(tree):
    plan = plan_of(tree)
    step = plan.step("cp1/runtime/import-kube-apiserver")
    assert isinstance(step.action, Command)
    assert "ctr -n k8s.io images import /var/cache/kubeforge/images/kube-apiserver.tar" \
        in step.action.shell
    assert "io.cri-containerd.pinned=pinned" in step.action.shell
    assert "cp1/runtime/service-containerd" in step.needs
    assert "cp1/runtime/upload-var-cache-kubeforge-images-kube-apiserver.tar" in step.needs


def test_kubeadm_pulls_nothing_and_no_apt_runs(tree):
    plan = plan_of(tree)
    init = (tree / "build/off/nodes/cp1/etc/kubernetes/kubeadm/init.yaml").read_text()
    join = (tree / "build/off/nodes/w1/etc/kubernetes/kubeadm/join.yaml").read_text()
    assert "imagePullPolicy: Never" in init and "imagePullPolicy: Never" in join
    assert not any("apt-get" in (getattr(s.action, "shell", None) or "") for s in plan.steps)
    assert not (tree / "build/off/nodes/cp1/etc/apt").exists()


def test_flannel_is_written_for_the_cluster_from_the_bundle_image(tree):
    compile_tree(tree)
    manifest = (tree / "build/off/nodes/cp1/etc/kubernetes/kubeforge/cni/flannel.yaml").read_text()
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest)}
    assert json.loads(docs["ConfigMap"]["data"]["net-conf.json"])["Network"] == "10.244.0.0/16"
    (container,) = docs["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/flannel-io/flannel:v0.28.10"
    assert "KUBERNETES_SERVICE_HOST" in manifest and "10.77.0.11" in manifest
    conflist = json.loads((tree / "build/off/nodes/w1/etc/cni/net.d/10-flannel.conflist")
                          .read_text())
    assert conflist["plugins"][0]["type"] == "flannel"


def test_a_corrupted_bundle_is_refused_at_compile_time(tree):
    compile_tree(tree)
    kubelet = tree / "bundle/bin/kubelet"
    data = bytearray(kubelet.read_bytes())
    data[0] ^= 1
    kubelet.write_bytes(bytes(data))
    with pytest.raises(DiagnosticError) as err:
        compile_tree(tree)
    rendered = str(err.value.diagnostics[0].render())
    assert "off.kf:7:" in rendered and "E150" in rendered and "bin/kubelet" in rendered


def test_an_incomplete_bundle_is_refused(tree):
    (tree / "bundle/images/kube-apiserver.tar").unlink()
    with pytest.raises(DiagnosticError, match="kube-apiserver.tar"):
        compile_tree(tree)
    shutil.rmtree(tree / "bundle")
    with pytest.raises(DiagnosticError, match="E150|install bundle"):
        compile_tree(tree)


def test_a_bundle_of_another_version_is_refused(tree):
    (tree / "off.kf").write_text(SOURCE.replace('"1.37.2"', '"1.36.3"'))
    with pytest.raises(DiagnosticError) as err:
        compile_tree(tree)
    assert "v1.37.2" in str(err.value.diagnostics[0].message)


def test_a_cni_the_bundle_lacks_is_refused(tree):
    (tree / "off.kf").write_text(SOURCE.replace("cni flannel", "cni calico"))
    with pytest.raises(DiagnosticError, match="carries flannel, not calico"):
        compile_tree(tree)
