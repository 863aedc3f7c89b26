"""Workload manifests: schema-valid for every supported version, deterministic, golden."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kubeforge.compiler.emit.manifests import manifest_artifacts
from kubeforge.compiler.emit.rbac import manifests as rbac_manifests
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.api_schema import check_object
from kubeforge.compiler.versions import SUPPORTED_MINORS
from tests.conftest import EXAMPLES, assert_golden

GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.kf"))
VERSIONS = [f"1.{minor}.0" for minor in SUPPORTED_MINORS]


def manifests_of(path: Path) -> dict[str, str]:
    program, _ = load_program(path)
    return {a.path: a.content.decode() for a in manifest_artifacts(program)}


def objects_of(path: Path, *, rbac: bool = False) -> list[dict]:
    docs = [doc for text in manifests_of(path).values() for doc in yaml.safe_load_all(text)]
    if rbac:
        docs += rbac_manifests(load_program(path)[0])
    return docs


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_schema_valid(path, version):
    objects = objects_of(path, rbac=True)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
        assert check_object(obj, int(version.split(".")[1])) == [], obj["metadata"]["name"]


def test_validation_would_catch_a_bad_field():
    obj = objects_of(EXAMPLES / "guestbook.kf")[0]
    obj["spec"]["portz"] = obj["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
    assert [p.severity for p in check_object(obj, 37)] == ["error"]


@pytest.mark.parametrize("name", ["guestbook.kf", "ha-cluster.kf"])
def test_manifest_goldens(name):
    for path, text in manifests_of(EXAMPLES / name).items():
        assert_golden(GOLDEN / name.removesuffix(".kf") / Path(path).name, text)


def test_deterministic():
    assert manifests_of(EXAMPLES / "ha-cluster.kf") == manifests_of(EXAMPLES / "ha-cluster.kf")


def test_apply_order_and_secret_file():
    program, _ = load_program(EXAMPLES / "ha-cluster.kf")
    arts = manifest_artifacts(program)
    assert [a.path for a in arts] == sorted(a.path for a in arts)
    secrets = [a for a in arts if a.secret]
    assert [a.path for a in secrets] == ["manifests/10-shop-secrets.yaml"]
    assert all(a.mode == 0o600 for a in secrets)
    for art in arts:
        if not art.secret:
            assert b"kind: Secret" not in art.content
    kinds = [d["kind"] for d in yaml.safe_load_all(
        next(a for a in arts if a.path == "manifests/10-shop.yaml").content)]
    assert kinds.index("ConfigMap") < kinds.index("Deployment")
    assert kinds.index("Service") < kinds.index("Deployment")
    assert kinds.index("Deployment") < kinds.index("HorizontalPodAutoscaler")


def test_every_kind_is_covered_by_ha_cluster():
    kinds = {o["kind"] for o in objects_of(EXAMPLES / "ha-cluster.kf")}
    assert kinds >= {"Namespace", "StorageClass", "ResourceQuota", "ConfigMap", "Secret",
                     "PersistentVolumeClaim", "Service", "Deployment", "StatefulSet", "DaemonSet",
                     "Job", "CronJob", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress",
                     "NetworkPolicy"}


def test_secret_from_env(write_kf, monkeypatch):
    from kubeforge.dsl.diagnostics import DiagnosticError

    path = write_kf('cluster c {\n kubernetes "1.37.2"\n node a { address 10.0.0.1 role control-plane }\n}\n'
                    'namespace a {\n  secret db from env "KF_TEST_PW"\n}\n')
    program, _ = load_program(path)
    monkeypatch.delenv("KF_TEST_PW", raising=False)
    with pytest.raises(DiagnosticError) as info:
        manifest_artifacts(program)
    assert info.value.diagnostics[0].code == "E117" and info.value.diagnostics[0].span.line == 6
    monkeypatch.setenv("KF_TEST_PW", "s3cret")
    (art,) = [a for a in manifest_artifacts(program) if a.secret]
    doc = yaml.safe_load(art.content)
    assert doc["data"] == {"KF_TEST_PW": "czNjcmV0"}
    assert os.environ["KF_TEST_PW"].encode() not in b"".join(
        a.content for a in manifest_artifacts(program) if not a.secret)


def test_template_inheritance(load):
    program = load('template base { image "a"  replicas 2  port 80  labels { tier = "web" } }\n'
                   'template mid extends base { replicas 3  port 81 }\n'
                   'namespace n { deployment d extends mid { image "b" } }\n')
    (w,) = program.workloads
    assert w.containers[0].image == "b" and w.replicas == 3
    assert [p.port for p in w.containers[0].ports] == [80, 81]
    assert dict(w.labels) == {"app": "d", "tier": "web"}


def test_imports(tmp_path):
    (tmp_path / "apps.kf").write_text('namespace n { deployment d { image "x" } }\n')
    (tmp_path / "main.kf").write_text(
        'import "apps.kf"\ncluster c {\n kubernetes "1.37.2"\n node a { address 10.0.0.1 role control-plane }\n}\n'
        'namespace n { service d -> d port 80 }\n')
    program, _ = load_program(tmp_path / "main.kf")
    assert [w.name for w in program.workloads] == ["d"]
    assert [s.target for s in program.services] == ["d"]


def test_fast_representer_writes_what_the_plain_one_writes():
    """manifests._Dumper builds its nodes itself; the text is _SlowDumper's, byte for byte."""
    import random

    from kubeforge.compiler.emit import manifests
    from kubeforge.compiler.emit.manifests import cluster_objects, namespace_objects

    docs = []
    for path in sorted((Path(__file__).parents[2] / "examples").glob("*.kf")):
        program, _ = load_program(path)
        for group in [cluster_objects(program)] + [
                namespace_objects(program, ns) for ns in sorted({n.name for n in program.namespaces})]:
            docs += [doc for _what, doc, _patches, _span in group]
    rng = random.Random(5)
    words = ["", "a", "true", "1", "x: y", "line\nline\n", "\n", "tab\t\n", "é", "- a", "#"]

    def shape(depth=0):
        roll = rng.random()
        if depth > 3 or roll < 0.5:
            return rng.choice([*words, 0, -1, True, False, None, 1.5])
        if roll < 0.8:
            return {rng.choice(words) + str(i): shape(depth + 1) for i in range(rng.randrange(4))}
        return [shape(depth + 1) for _ in range(rng.randrange(4))]

    shared = {"k": "v"}
    docs += [shape() for _ in range(500)] + [{"a": shared, "b": [shared]}, {1: "x", "y": 2}]
    for doc in docs:
        for sort in (True, False):
            options = dict(sort_keys=sort, explicit_start=True, default_flow_style=False,
                           width=100)
            assert yaml.dump_all([doc], Dumper=manifests._Dumper, **options) == \
                yaml.dump_all([doc], Dumper=manifests._SlowDumper, **options)
