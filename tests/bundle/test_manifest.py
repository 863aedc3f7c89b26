"""The manifest: round trip, lookups per role, and refusal of missing or malformed ones."""

from __future__ import annotations

import json

import pytest

from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.manifest import load_manifest, manifest_from_dict, sealed
from tests.bundle.bundle_helpers import make_bundle


def test_round_trip_and_lookups(tmp_path):
    manifest = make_bundle(tmp_path / "b", tmp_path / "src")
    loaded = load_manifest(tmp_path / "b")
    assert loaded == manifest
    assert manifest_from_dict(json.loads(manifest.to_json())) == manifest
    assert sealed(loaded).build_key == manifest.build_key  # the key covers the content
    worker = {f.install for f in loaded.files_for("worker")}
    assert "/usr/local/bin/kubelet" in worker and "/usr/local/sbin/runc" in worker
    assert "/opt/cni/bin/flannel" in worker and "/usr/local/bin/etcd" not in worker
    assert {f.install for f in loaded.files_for("etcd")} == {
        "/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl"}
    assert loaded.pause_image == "registry.k8s.io/pause:3.10.2"
    assert loaded.image_repository == "registry.k8s.io"
    assert loaded.image("coredns").tag == "v1.14.6"
    assert loaded.file("bin/kubeadm").mode == 0o755
    with pytest.raises(BundleError, match="unknown role `master`"):
        loaded.files_for("master")
    with pytest.raises(BundleError, match="no image nginx"):
        loaded.image("nginx")


def test_key_changes_with_any_file(tmp_path):
    one = make_bundle(tmp_path / "one", tmp_path / "s1")
    two = make_bundle(tmp_path / "two", tmp_path / "s2", version="v2")
    assert one.build_key != two.build_key


def test_missing_manifest_says_incomplete(tmp_path):
    with pytest.raises(BundleError, match="manifest.json is missing.*not a complete bundle"):
        load_manifest(tmp_path)


def test_malformed_manifests_are_refused_with_their_place(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": "kubeforge-bundle/v1",\n  "files": [}')
    with pytest.raises(BundleError, match=r"manifest.json:2:\d+: not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(BundleError, match="format `something-else` is not kubeforge-bundle/v1"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "kubeforge-bundle/v1"}')
    with pytest.raises(BundleError, match="malformed .*KeyError"):
        load_manifest(tmp_path)
