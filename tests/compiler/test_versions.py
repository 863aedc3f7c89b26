"""The versions table, and what the language and the emitters do with it (from .kf text).

`test_versions_kubeadm.py` checks the table's facts against each version's own kubeadm.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from kubeforge.compiler import versions
from kubeforge.compiler.api_schema import check_object
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit.kubeadm import INIT_PATH, kubelet_args
from kubeforge.compiler.emit.manifests import manifest_artifacts
from kubeforge.compiler.lower import load_program
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.conftest import EXAMPLES, FIXED_NOW, REPO

CLUSTER = """cluster lab {{
  kubernetes "{version}"
{extra}  node cp1 {{ address 192.168.56.11  role control-plane }}
  node w1 {{ address 192.168.56.21  role worker }}
}}
"""


def source(version: str, extra: str = "") -> str:
    return CLUSTER.format(version=version, extra=extra)


def load(tmp_path: Path, text: str):
    path = tmp_path / "main.kf"
    path.write_text(text)
    return load_program(path)[0]


def errors(tmp_path: Path, text: str):
    path = tmp_path / "main.kf"
    path.write_text(text)
    with pytest.raises(DiagnosticError) as info:
        load_program(path)
    return info.value.diagnostics


# ---------------------------------------------------------------- the table itself


def test_supported_minors_and_default():
    assert versions.SUPPORTED_MINORS == (33, 34, 35, 36, 37)
    assert versions.DEFAULT_VERSION == "1.37.2"
    assert versions.SUPPORTED_RANGE == "1.33 to 1.37"


def test_every_field_names_its_source():
    fields = {f.name for f in dataclasses.fields(versions.Release)} - {"minor"}
    assert fields <= set(versions.SOURCES)


def test_rows_are_consistent():
    for minor, row in versions.RELEASES.items():
        assert row.minor == minor and versions.KUBEADM_API in row.kubeadm_apis
        assert not set(row.kubeadm_apis) & set(row.kubeadm_experimental_apis)
        assert set(row.kubeadm_feature_gates_removed).isdisjoint(row.kubeadm_feature_gates)
        assert row.containerd and all(re.fullmatch(r"\d+\.\d+\.\d+", c) for c in row.containerd)
    eols = [versions.RELEASES[m].end_of_life for m in versions.SUPPORTED_MINORS]
    assert eols == sorted(eols)


def test_images():
    assert versions.kubeadm_images("1.37.2") == (
        "registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2",
        "registry.k8s.io/kube-scheduler:v1.37.2", "registry.k8s.io/kube-proxy:v1.37.2",
        "registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/pause:3.10.2",
        "registry.k8s.io/etcd:3.7.0-0")
    assert not any("etcd" in i for i in versions.kubeadm_images("1.33.1", stacked_etcd=False))


@pytest.mark.parametrize("version, bound", [
    ("1.33.11", False), ("1.33.12", True), ("1.34.7", False), ("1.34.8", True),
    ("1.35.4", False), ("1.35.5", True), ("1.36.0", False), ("1.36.1", True), ("1.37.0", True)])
def test_kubelet_api_admin_binding_patches(version, bound):
    assert versions.kubelet_api_admin_binding(version) is bound
    names = [b[0] for b in versions.kubeadm_bindings(version)]
    assert ("kubeadm:apiserver-kubelet-client" in names) is bound


def test_removed_kubelet_flags():
    assert versions.kubelet_flag_removed("pod-infra-container-image", "1.34.4") is None
    assert versions.kubelet_flag_removed("--pod-infra-container-image", "1.35.0") == 35
    assert versions.kubelet_flag_removed("cloud-config", "1.37.2") == 34
    assert versions.kubelet_flag_removed("node-ip", "1.37.2") is None


def test_runtime_and_etcd_ranges():
    assert versions.containerd_recommended("1.34.4", "1.7.28")
    assert not versions.containerd_recommended("1.35.4", "1.6.39")  # no 1.6 line any more
    assert versions.containerd_recommended("1.36.3", "2.2.0")
    assert not versions.containerd_recommended("1.36.3", "2.1.5")
    assert not versions.containerd_recommended("1.33.13", "2.0.3")
    assert versions.etcd_accepted("1.37.2", "3.5.24") and not versions.etcd_accepted("1.37.2",
                                                                                      "3.4.23")


def test_bundle_pins_fit_their_row():
    """`bundle build`'s runtime is one the row recommends, its crictl is the row's minor, and
    the default version (what `bundle build` builds when not told) has pins."""
    assert versions.NEWEST.bundle is not None
    for row in versions.RELEASES.values():
        if row.bundle is None:
            continue
        assert versions.containerd_recommended(row.newest, row.bundle.containerd), row.minor
        assert row.bundle.crictl.startswith(f"v1.{row.minor}."), row.minor


def test_end_of_support():
    assert versions.end_of_support("1.33.13") == dt.date(2026, 6, 28)
    assert versions.end_of_support("1.34.4") == dt.date(2026, 10, 27)
    assert versions.end_of_support("1.35.4") is None
    assert versions.end_of_support("1.35.4", dt.date(2027, 3, 1)) == dt.date(2027, 2, 28)
    with pytest.raises(versions.UnsupportedVersion):
        versions.release("1.32.13")


# ---------------------------------------------------------------- the language


def test_default_version_is_shown_everywhere():
    for path in (*EXAMPLES.glob("*.kf"), REPO / "README.md"):
        shown = re.findall(r'kubernetes "([^"]+)"', path.read_text())
        assert shown and set(shown) == {versions.DEFAULT_VERSION}, path
    language = (REPO / "docs/language.md").read_text()
    assert f'kubernetes "{versions.DEFAULT_VERSION}"' in language
    assert versions.SUPPORTED_RANGE in language


@pytest.mark.parametrize("version", ["1.32.13", "1.38.0", "1.30.14"])
def test_unsupported_versions_are_errors_with_the_range(tmp_path, version):
    [d] = [d for d in errors(tmp_path, source(version)) if d.code == "E113"]
    assert "not supported" in d.message and "1.33 to 1.37" in d.hint
    assert d.span.line == 2


@pytest.mark.parametrize("version, ended", [("1.33.13", "2026-06-28"), ("1.34.4", "2026-10-27"),
                                            ("1.35.4", None), ("1.37.2", None)])
def test_out_of_support_minors_warn_with_the_date(tmp_path, version, ended):
    program = load(tmp_path, source(version))
    warned = [w for w in program.warnings if w.code == "W113"]
    if ended is None:
        assert not warned
    else:
        assert len(warned) == 1 and ended in warned[0].message
        assert warned[0].span.line == 2 and versions.DEFAULT_VERSION in warned[0].hint
        with pytest.raises(DiagnosticError):
            load_program(tmp_path / "main.kf", strict=True)


def test_ecdsa_p384_needs_1_34(tmp_path):
    pki = "  pki { algorithm ecdsa-p384 }\n"
    [d] = [d for d in errors(tmp_path, source("1.33.13", pki)) if d.code == "E105"]
    assert "needs Kubernetes 1.34 or later" in d.message and "ECDSA-P256" in d.hint
    program = load(tmp_path, source("1.34.4", pki))
    assert program.cluster.pki.algorithm == "ecdsa-p384"


def test_cgroups_statement(tmp_path):
    assert load(tmp_path, source("1.37.2")).cluster.cgroups == "v2"
    assert load(tmp_path, source("1.37.2", "  cgroups v1\n")).cluster.cgroups == "v1"
    [d] = errors(tmp_path, source("1.37.2", "  cgroups v3\n"))
    assert d.code == "E104"


@pytest.mark.parametrize("version, cgroups, fail, preflight", [
    ("1.34.4", "", None, False), ("1.35.4", "", None, True),
    ("1.35.4", "  cgroups v1\n", False, False), ("1.37.2", "  cgroups v1\n", False, False)])
def test_cgroup_v1_policy_reaches_kubelet_and_preflight(tmp_path, version, cgroups, fail,
                                                        preflight):
    path = tmp_path / "main.kf"
    path.write_text(source(version, cgroups))
    result = compile_file(path, tmp_path / "out", state_dir=tmp_path / "state", now=FIXED_NOW)
    init = next(a for a in result.artifacts if a.host_path == INIT_PATH)
    kubelet = next(d for d in yaml.safe_load_all(init.content)
                   if d["kind"] == "KubeletConfiguration")
    assert kubelet.get("failCgroupV1") is fail
    plan = (result.root / "plan.txt").read_text()
    assert ("cgroup-v2" in plan) is preflight
    assert ("cgroup-v2" in (result.root / "plan.json").read_text()) is preflight


def test_kubelet_args_refuse_a_flag_the_version_removed(tmp_path):
    cluster = load(tmp_path, source("1.35.4")).cluster
    assert kubelet_args(cluster, [("node-ip", "10.0.0.1")]) == [
        {"name": "node-ip", "value": "10.0.0.1"}]
    with pytest.raises(RuntimeError, match="removed --pod-infra-container-image"):
        kubelet_args(cluster, [("pod-infra-container-image", "registry.k8s.io/pause:3.10.1")])


# ---------------------------------------------------------------- manifests per version


def example_objects() -> list[dict]:
    program = load_program(EXAMPLES / "ha-cluster.kf")[0]
    return [d for a in manifest_artifacts(program) if not a.secret
            for d in yaml.safe_load_all(a.content)]


def test_schema_check_reports_removed_and_deprecated_fields():
    deployment = next(o for o in example_objects() if o["kind"] == "Deployment")
    assert check_object(deployment, 33) == []
    deployment["spec"]["template"]["spec"]["serviceAccount"] = "web"  # deprecated alias
    deployment["spec"]["template"]["spec"]["nodeSelectorz"] = {}  # no such field
    problems = check_object(deployment, 37)
    assert [(p.severity, p.path) for p in problems] == [
        ("error", "spec.template.spec"), ("deprecated", "spec.template.spec.serviceAccount")]
    assert "serviceAccountName" in problems[1].message
    gone = {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "x"}}
    assert [p.message for p in check_object(gone, 37)] == [
        "Kubernetes 1.37 does not serve Ingress extensions/v1beta1"]


WORKLOAD = '''namespace shop {{
  deployment web {{
    image "nginx:1.27"
    patch """
      spec:
        template:
          spec:
            {field}: web
    """
  }}
}}
'''


def test_a_field_the_minor_does_not_serve_is_an_error_from_source(tmp_path):
    """`hostnameOverride` (PodSpec) arrived in 1.34: refused for 1.33 at the patch, accepted
    for 1.37, and the generated manifest carries it."""
    text = source("1.33.13") + WORKLOAD.format(field="hostnameOverride")
    [d] = [d for d in errors(tmp_path, text) if d.code == "E130"]
    assert "hostnameOverride" in d.message and d.span.line > 5
    path = tmp_path / "main.kf"
    path.write_text(source("1.37.2") + WORKLOAD.format(field="hostnameOverride"))
    result = compile_file(path, tmp_path / "out", state_dir=tmp_path / "state", now=FIXED_NOW)
    text = "".join(a.content.decode() for a in result.artifacts if a.path.endswith(".yaml")
                   and b"kind: Deployment" in a.content)
    assert "hostnameOverride: web" in text


def test_a_deprecated_field_warns_from_source(tmp_path):
    program = load(tmp_path, source("1.37.2") + WORKLOAD.format(field="serviceAccount"))
    [w] = [w for w in program.warnings if w.code == "W122"]
    assert "serviceAccount" in w.message and "deprecated in Kubernetes 1.37.2" in w.message
    assert "serviceAccountName" in w.hint
