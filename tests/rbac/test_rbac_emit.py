"""The RBAC emitter: schema-valid deterministic manifests and per-user kubeconfigs whose
certificates carry CN/O and verify against the cluster CA with a real openssl."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeforge.compiler.artifacts import BuildContext
from kubeforge.compiler.emit import rbac as rbac_emitter
from kubeforge.compiler.versions import SUPPORTED_MINORS

from rbac_helpers import NOW, fixture_program

MANIFEST = "manifests/01-rbac.yaml"


def run(tmp_path: Path, program=None, now: dt.datetime = NOW) -> dict:
    ctx = BuildContext(program=program or fixture_program(), state_dir=tmp_path / "state",
                       now=now)
    return {a.path: a for a in rbac_emitter.emit(ctx)}


@pytest.fixture
def emitted(tmp_path):
    return run(tmp_path)


def manifest_objects(emitted) -> list[dict]:
    return list(yaml.safe_load_all(emitted[MANIFEST].content))


def kubeconfig_cert(content: bytes) -> tuple[dict, x509.Certificate, bytes]:
    conf = yaml.safe_load(content)
    pem = base64.b64decode(conf["users"][0]["user"]["client-certificate-data"])
    return conf, x509.load_pem_x509_certificate(pem), pem


@pytest.mark.parametrize("minor", SUPPORTED_MINORS)
def test_every_manifest_passes_kubernetes_validate(emitted, minor):
    objects = manifest_objects(emitted)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, f"1.{minor}", strict=True)


def test_object_kinds_and_order(emitted):
    kinds = [o["kind"] for o in manifest_objects(emitted)]
    order = ["ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"]
    assert kinds == sorted(kinds, key=order.index)
    assert set(kinds) == set(order)


def test_bindings_follow_the_scope_of_bind(emitted):
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in manifest_objects(emitted)}
    # `bind pod-reader in alpha` -> RoleBinding to the Role
    rb = by_name[("RoleBinding", "kubeforge:user:alice:pod-reader")]
    assert rb["metadata"]["namespace"] == "alpha" and rb["roleRef"]["kind"] == "Role"
    # `bind deploy-all in alpha` -> RoleBinding to the ClusterRole
    rb = by_name[("RoleBinding", "kubeforge:user:dave:deploy-all")]
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "deploy-all"}
    # a user's `bind node-reader` -> ClusterRoleBinding
    crb = by_name[("ClusterRoleBinding", "kubeforge:user:bob:node-reader")]
    assert "namespace" not in crb["metadata"]
    # a service account's `bind pod-reader` -> RoleBinding in its own namespace, no apiGroup
    rb = by_name[("RoleBinding", "kubeforge:serviceaccount:alpha:ci:pod-reader")]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "ci", "namespace": "alpha"}]


def test_aggregation_rule_and_labels(emitted):
    by_name = {o["metadata"]["name"]: o for o in manifest_objects(emitted)
               if o["kind"] == "ClusterRole"}
    assert by_name["custom-agg"]["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"team": "x"}}]}
    assert "rules" not in by_name["custom-agg"]
    labels = by_name["crd-viewer"]["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert by_name["health"]["rules"] == [{"nonResourceURLs": ["/healthz", "/metrics/*"],
                                           "verbs": ["get"]}]


def test_manifests_are_deterministic(tmp_path, emitted):
    again = run(tmp_path / "other")
    assert again[MANIFEST].content == emitted[MANIFEST].content


def test_user_kubeconfigs_are_secret_and_point_at_the_endpoint(emitted):
    users = sorted(p for p in emitted if p.startswith("kubeconfigs/users/"))
    assert users == [f"kubeconfigs/users/{u}.conf"
                     for u in ("alice", "bob", "carol", "dave", "erin", "frank")]
    for path in users:
        art = emitted[path]
        assert art.secret and art.mode == 0o600
        conf, _, _ = kubeconfig_cert(art.content)
        assert conf["clusters"][0]["cluster"]["server"] == "https://api.lab.internal:6443"


def _openssl_verify(tmp_path: Path, ca_pem: bytes, cert_pem: bytes) -> subprocess.CompletedProcess:
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "leaf.pem").write_bytes(cert_pem)
    # -attime: the certificates were issued at the fixed test clock, not today.
    return subprocess.run(["openssl", "verify", "-attime", str(int(NOW.timestamp())),
                           "-purpose", "sslclient", "-CAfile",
                           str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")],
                          capture_output=True, text=True)


def test_user_certificates_have_cn_o_and_verify_with_openssl(tmp_path):
    program = fixture_program()
    program = dataclasses.replace(program, subjects=tuple(
        dataclasses.replace(s, groups=("dev", "qa")) if s.name == "alice" else s
        for s in program.subjects))
    emitted = run(tmp_path, program)
    users = {s.name: s for s in program.subjects if s.kind == "User"}
    for name, subject in users.items():
        conf, cert, pem = kubeconfig_cert(emitted[f"kubeconfigs/users/{name}.conf"].content)
        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert cn == [name] and orgs == list(subject.groups)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        ca_pem = base64.b64decode(conf["clusters"][0]["cluster"]["certificate-authority-data"])
        result = _openssl_verify(tmp_path, ca_pem, pem)
        assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr
    _, alice, _ = kubeconfig_cert(emitted["kubeconfigs/users/alice.conf"].content)
    assert [a.value for a in alice.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] \
        == ["dev", "qa"]


def test_validity_from_the_user_or_the_pki_settings(tmp_path):
    program = fixture_program()
    program = dataclasses.replace(program, subjects=tuple(
        dataclasses.replace(s, cert_validity_days=7) if s.name == "bob" else s
        for s in program.subjects))
    emitted = run(tmp_path, program)
    for name, days in (("bob", 7), ("alice", 90)):
        _, cert, _ = kubeconfig_cert(emitted[f"kubeconfigs/users/{name}.conf"].content)
        assert cert.not_valid_after_utc - NOW == dt.timedelta(days=days)


def test_user_certificates_are_reused_across_compiles(tmp_path):
    first = run(tmp_path)
    later = run(tmp_path, now=NOW + dt.timedelta(days=1))
    for path, art in first.items():
        assert later[path].content == art.content


def test_keys_never_reach_plain_artifacts(emitted):
    for art in emitted.values():
        if b"PRIVATE KEY" in art.content or b"client-key-data" in art.content:
            assert art.secret
