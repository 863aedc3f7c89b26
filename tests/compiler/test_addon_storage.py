"""The storage addon from source text: `addon storage local-path { ... }` to its IR, its
errors (file:line:col, caret, hint), its manifest (schema-valid, upstream's RBAC exactly, the
bundle's image), its plan steps and what `rbac can-i`, `matrix` and the lint know of it. The
real provisioner binds a statefulset's claim in tests/k8s/ha/test_addon_storage.py."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kubeforge.compiler import addon_storage as A
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit.rbac import binding_doc, role_doc
from kubeforge.compiler.ir import StorageAddon
from kubeforge.compiler.lower_addons import PROVIDERS
from kubeforge.compiler.plan import Plan
from kubeforge.compiler.rbac import Identity, Request
from kubeforge.compiler.rbac_compile import authorizer_for
from kubeforge.compiler.rbac_lint import lint
from kubeforge.compiler.rbac_matrix import program_matrix
from kubeforge.compiler.versions import SUPPORTED_MINORS
from tests.bundle.bundle_helpers import BUNDLE_IMAGES, make_bundle
from tests.conftest import FIXED_NOW, assert_golden

HERE = Path(__file__).parent
UPSTREAM_RBAC = HERE / "data" / "local-path-storage-v0.0.30-rbac.yaml"
GOLDEN = HERE / "golden" / "addons" / "local-path-storage.yaml"
IMAGE = "kubeforge.local/local-path-provisioner:v0.0.30"
ACCOUNT = Identity.service_account(A.NAMESPACE, A.SERVICE_ACCOUNT)

CLUSTER = """cluster lab {
  kubernetes "1.37.2"
  cni flannel
  INSTALL
  node cp1 { address 10.0.0.11  role control-plane }
  node w1 { address 10.0.0.21  role worker }
  ADDON
}
"""
STATEFULSET = """
namespace default {
  statefulset notes {
    image "kubeforge.local/local-path-provisioner:v0.0.30"
    command "sh" "-c" "sleep 3600"
    volume data 64Mi at "/data"
  }
}
"""


def source(addon: str = "addon storage local-path", install: str = "install packages",
           extra: str = "") -> str:
    return CLUSTER.replace("ADDON", addon).replace("INSTALL", install) + extra


def test_defaults_and_declared_settings(load):
    assert load(source()).cluster.storage == StorageAddon(
        "local-path", "v0.0.30", "/opt/local-path-provisioner", True,
        load(source()).cluster.storage.span)
    declared = load(source('addon storage local-path { path "/srv/volumes/"  default false  '
                           'version "0.0.30" }')).cluster.storage
    assert (declared.path, declared.default, declared.version) == ("/srv/volumes", False, "v0.0.30")
    assert (declared.span.line, declared.span.col) == (7, 3)
    assert load(CLUSTER.replace("ADDON", "").replace("INSTALL", "")).cluster.storage is None


@pytest.mark.parametrize("addon, code, at, message, hint", [
    ("addon storge local-path", "E104", "7:9", "unknown addon `storge`", "did you mean `storage`?"),
    ("addon metrics metrics-server", "E104", "7:9", "addon `metrics` is not available yet",
     "kubeforge builds and applies: storage"),
    ("addon storage localpath", "E104", "7:17", "unknown storage addon provider `localpath`",
     "did you mean `local-path`?"),
    ('addon storage local-path { path "volumes" }', "E105", "7:35",
     "addon path `volumes` is relative", 'e.g. `path "/opt/local-path-provisioner"`'),
    ('addon storage local-path { path "/var/lib/kubelet/pv" }', "E105", "7:35",
     "is inside /var/lib/kubelet", 'e.g. `path "/opt/local-path-provisioner"`'),
    ('addon storage local-path { path "/" }', "E105", "7:35", "volumes need a directory",
     'e.g. `path "/opt/local-path-provisioner"`'),
    ('addon storage local-path { path "/opt/a b" }', "E105", "7:35",
     "absolute path of letters", 'e.g. `path "/opt/local-path-provisioner"`'),
    ('addon storage local-path { version "v0.0.29" }', "E104", "7:38",
     "v0.0.29 is not a version kubeforge builds", "the bundle builds v0.0.30"),
    ('addon storage local-path { default true  default false }', "E101", "7:44",
     "`default` is given twice", "the first one is at line 7"),
    ('addon storage local-path\n  addon storage local-path', "E101", "8:3",
     "`addon storage` is given twice", "the first one is at line 7"),
])
def test_bad_input_is_an_error_with_place_and_hint(diagnose, addon, code, at, message, hint):
    err = diagnose(source(addon))
    found = [d for d in err.diagnostics if d.code == code and message in d.message]
    assert found, [d.message for d in err.diagnostics]
    span = found[0].span
    assert f"{span.line}:{span.col}" == at and found[0].hint.startswith(hint)
    rendered = err.render()
    assert f"main.kf:{at}: error[{code}]" in rendered and "^" in rendered


def test_what_the_addon_owns_cannot_be_declared_again(diagnose):
    err = diagnose(source(extra="""
storageclass fast provisioner "x" { default true }
storageclass local-path provisioner "y"
namespace local-path-storage { serviceaccount local-path-provisioner-service-account }
clusterrole local-path-provisioner-role { allow get on pods }
"""))
    messages = sorted(d.message for d in err.diagnostics)
    assert messages == ["only one storageclass can be the default",
                        "role `local-path-provisioner-role` is the storage addon's",
                        "serviceaccount `local-path-provisioner-service-account` is the "
                        "storage addon's",
                        "storageclass `local-path` is the storage addon's"]


def test_a_declared_default_class_is_fine_when_the_addon_is_not_the_default(load):
    program = load(source("addon storage local-path { default false }",
                          extra='storageclass fast provisioner "x" { default true }'))
    assert not program.cluster.storage.default


def _build(tmp_path: Path, text: str, bundle: bool) -> tuple[Path, Plan]:
    if bundle:
        make_bundle(tmp_path / "bundle", tmp_path / "src",
                    images=(*BUNDLE_IMAGES, "ghcr.io/flannel-io/flannel:v0.28.10", IMAGE))
    (tmp_path / "c.kf").write_text(text)
    result = compile_file(tmp_path / "c.kf", tmp_path / "build", state_dir=tmp_path / "state",
                          now=FIXED_NOW)
    return result.root, Plan.from_json((result.root / "plan.json").read_text())


def _docs(root: Path) -> list[dict]:
    return list(yaml.safe_load_all((root / "nodes" / "cp1" / A.MANIFEST.lstrip("/")).read_text()))


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bundled")
    return _build(tmp, source('addon storage local-path { path "/srv/volumes" }',
                              'install bundle path "bundle"', STATEFULSET), bundle=True)


def test_the_manifest_is_golden_and_schema_valid_for_every_version(bundled):
    root, _ = bundled
    text = (root / "nodes" / "cp1" / A.MANIFEST.lstrip("/")).read_text()
    assert_golden(GOLDEN, text)
    docs = _docs(root)
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "Role", "ClusterRole",
                                         "RoleBinding", "ClusterRoleBinding", "ConfigMap",
                                         "Deployment", "StorageClass"]
    for minor in SUPPORTED_MINORS:
        for doc in docs:
            kubernetes_validate.validate(doc, f"1.{minor}.0", strict=True)


def _rbac_key(doc: dict) -> tuple:
    meta = doc["metadata"]
    return doc["kind"], meta["name"], meta.get("namespace")


def _without_labels(doc: dict) -> dict:
    meta = {k: v for k, v in doc["metadata"].items() if k != "labels"}
    return {**doc, "metadata": meta}


def test_the_rbac_is_upstreams_exactly():
    upstream = {_rbac_key(d): d for d in yaml.safe_load_all(UPSTREAM_RBAC.read_text())}
    addon = StorageAddon()
    ours = [role_doc(r) for r in A.roles(addon)] + [binding_doc(b) for b in A.bindings(addon)]
    ours.append({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": A.SERVICE_ACCOUNT, "namespace": A.NAMESPACE}})
    assert {_rbac_key(d): _without_labels(d) for d in ours} == upstream


def test_bundle_image_config_and_storage_class(bundled):
    root, plan = bundled
    docs = {d["kind"]: d for d in _docs(root)}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == (IMAGE, "Never")
    data = docs["ConfigMap"]["data"]
    assert json.loads(data["config.json"]) == {"nodePathMap": [
        {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/srv/volumes"]}]}
    helper = yaml.safe_load(data["helperPod.yaml"])["spec"]["containers"][0]
    assert (helper["image"], helper["imagePullPolicy"]) == (IMAGE, "Never")
    assert data["setup"] == '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
    sc = docs["StorageClass"]
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"]) == \
        ("rancher.io/local-path", "WaitForFirstConsumer", "Delete")
    # imported like the other bundle images (on the hosts of the image's roles: every
    # kubelet node in a real bundle, tests/bundle/test_addons.py; control planes in this one)
    assert "cp1/runtime/import-local-path-provisioner" in {s.id for s in plan.steps}


def test_a_bundle_without_the_image_is_refused_at_the_addon(tmp_path):
    make_bundle(tmp_path / "bundle", tmp_path / "src",
                images=(*BUNDLE_IMAGES, "ghcr.io/flannel-io/flannel:v0.28.10"))
    (tmp_path / "c.kf").write_text(source(install='install bundle path "bundle"'))
    from kubeforge.dsl.diagnostics import DiagnosticError
    with pytest.raises(DiagnosticError) as info:
        compile_file(tmp_path / "c.kf", tmp_path / "build", state_dir=tmp_path / "state",
                     now=FIXED_NOW)
    [diag] = info.value.diagnostics
    assert diag.code == "E150" and IMAGE in diag.message and diag.span.line == 7


def test_without_a_bundle_upstreams_images_and_no_default_annotation(tmp_path):
    root, _ = _build(tmp_path, source("addon storage local-path { default false }"),
                     bundle=False)
    docs = {d["kind"]: d for d in _docs(root)}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "rancher/local-path-provisioner:v0.0.30"
    assert "busybox" in docs["ConfigMap"]["data"]["helperPod.yaml"]
    assert "annotations" not in docs["StorageClass"]["metadata"]


def test_plan_applies_after_the_cni_and_waits_before_the_workloads(bundled):
    _, plan = bundled
    steps = {s.id: s for s in plan.steps}
    apply = steps["cp1/addons/apply-local-path-storage.yaml"]
    ready = steps["cp1/addons/storage-ready"]
    assert apply.needs == ("cp1/addons/upload-etc-kubernetes-kubeforge-addons-"
                           "local-path-storage.yaml",)
    assert "cp1/cni/apply-flannel" in steps[apply.needs[0]].needs
    assert ready.needs == (apply.id,) and "rollout status" in " ".join(ready.action.argv)
    first_workload = next(s for s in plan.steps if s.phase == "workloads" and s.host == "cp1"
                          and not s.id.startswith("cp1/workloads/upload"))
    order = [s.id for s in plan.steps]
    assert order.index(ready.id) < order.index(first_workload.id)


def test_can_i_matrix_and_lint_know_the_service_account(load):
    program = load(source())
    authz = authorizer_for(program)
    assert authz.can_i(ACCOUNT, Request("create", "persistentvolumes")).allowed
    assert authz.can_i(ACCOUNT, Request("delete", "pods", namespace=A.NAMESPACE)).allowed
    assert not authz.can_i(ACCOUNT, Request("delete", "pods", namespace="default")).allowed
    assert not authz.can_i(ACCOUNT, Request("get", "secrets", namespace=A.NAMESPACE)).allowed
    row = program_matrix(program)["scopes"]["*"][
        f"serviceaccount {A.NAMESPACE}/{A.SERVICE_ACCOUNT}"]
    assert row["persistentvolumes"] == ["get", "list", "watch", "create", "update", "patch",
                                        "delete"]
    assert row["storageclasses"] == ["get", "list", "watch"]
    assert lint(program) == []
