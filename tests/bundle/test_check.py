"""`bundle check` refuses corrupt and incomplete bundles, naming each bad file."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from kubeforge.bundle.archive import read_image_names
from kubeforge.bundle.check import APP_IMAGES, check_bundle
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.manifest import load_manifest, manifest_from_dict, sealed
from kubeforge.cli import main
from tests.bundle.bundle_helpers import BUNDLE_IMAGES, KUBEADM_IMAGES, image_archive, make_bundle


@pytest.fixture
def bundle(tmp_path):
    make_bundle(tmp_path / "bundle", tmp_path / "src")
    return tmp_path / "bundle"


def _problems(directory) -> tuple[str, ...]:
    with pytest.raises(BundleError) as caught:
        check_bundle(directory)
    return caught.value.problems


def _rewrite_manifest(directory, change) -> None:
    """Change the manifest as a buggy or malicious writer would, with a matching key."""
    data = json.loads((directory / "manifest.json").read_text())
    change(data)
    (directory / "manifest.json").write_text(sealed(manifest_from_dict(data)).to_json())


def test_intact_bundle_passes(bundle):
    manifest = check_bundle(bundle)
    assert manifest.kubeadm_images == KUBEADM_IMAGES
    result = CliRunner().invoke(main, ["bundle", "check", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["kubernetes"] == "v1.37.2"
    assert sorted(report["images"]) == sorted(BUNDLE_IMAGES)


def test_same_size_corruption_is_found_by_sha256(bundle):
    path = bundle / "bin/kubelet"
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _problems(bundle) == (
        f"bin/kubelet: sha256 {__import__('hashlib').sha256(bytes(data)).hexdigest()[:16]}..., "
        f"manifest says {load_manifest(bundle).file('bin/kubelet').sha256[:16]}... "
        "(corrupt or replaced)",)


def test_truncated_missing_and_replaced_files_are_each_named(bundle):
    with open(bundle / "images/pause.tar", "r+b") as handle:
        handle.truncate(1024)
    (bundle / "cni/bin/flannel").unlink()
    (bundle / "bin/runc").unlink()
    os.symlink("/usr/bin/true", bundle / "bin/runc")
    problems = _problems(bundle)
    assert any(p.startswith("images/pause.tar: size 1024 bytes, manifest says") for p in problems)
    assert "cni/bin/flannel: missing" in problems
    assert "bin/runc: not a regular file" in problems
    assert len(problems) == 3  # the truncated archive is not also reported as unreadable


def test_cli_refuses_with_exit_1_and_names_the_file(bundle):
    (bundle / "bin/kubeadm").write_bytes(b"short")
    result = CliRunner().invoke(main, ["bundle", "check", str(bundle)])
    assert result.exit_code == 1
    assert "bin/kubeadm: size 5 bytes" in result.stderr
    assert "hint: rebuild it with `kubeforge bundle build`" in result.stderr
    assert "Traceback" not in result.output
    as_json = CliRunner().invoke(main, ["bundle", "check", str(bundle), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["problems"][0].startswith("bin/kubeadm: size 5")


def test_missing_manifest_is_an_incomplete_bundle(bundle):
    (bundle / "manifest.json").unlink()
    result = CliRunner().invoke(main, ["bundle", "check", str(bundle)])
    assert result.exit_code == 1 and "not a complete bundle" in result.stderr
    missing = CliRunner().invoke(main, ["bundle", "check", str(bundle / "nope")])
    assert missing.exit_code == 2


def test_image_kubeadm_needs_must_be_present(bundle):
    def drop_etcd(data):
        data["images"] = [i for i in data["images"] if "/etcd:" not in i["name"]]
    _rewrite_manifest(bundle, drop_etcd)
    assert _problems(bundle) == ("image registry.k8s.io/etcd:3.7.0-0: needed by kubeadm, "
                                 "not in the bundle",)


@pytest.mark.parametrize("name", sorted(APP_IMAGES))
def test_application_images_must_be_present(bundle, name):
    def drop(data):
        data["images"] = [i for i in data["images"] if i["name"] != name]
    _rewrite_manifest(bundle, drop)
    assert _problems(bundle) == (f"image {name}: {APP_IMAGES[name]}, not in the bundle",)


def test_host_binaries_must_be_listed(bundle):
    def drop_kubelet(data):
        data["files"] = [f for f in data["files"] if f["path"] != "bin/kubelet"]
    _rewrite_manifest(bundle, drop_kubelet)
    assert _problems(bundle) == ("bin/kubelet: missing from the manifest",)


def test_archive_must_hold_the_image_it_is_listed_as(bundle, tmp_path):
    # A valid archive of another image, with a manifest entry matching its bytes: only the
    # archive's own index can tell.
    other = tmp_path / "other.tar"
    image_archive(other, "registry.k8s.io/pause:3.9")
    os.replace(other, bundle / "images/pause.tar")
    manifest = load_manifest(bundle)
    from kubeforge.bundle.digest import sha256_file
    from dataclasses import replace
    files = tuple(replace(f, sha256=sha256_file(bundle / f.path), size=(bundle / f.path).stat().st_size)
                  if f.path == "images/pause.tar" else f for f in manifest.files)
    (bundle / "manifest.json").write_text(sealed(replace(manifest, files=files)).to_json())
    assert read_image_names(bundle / "images/pause.tar").keys() == {"registry.k8s.io/pause:3.9"}
    (problem,) = _problems(bundle)
    assert problem.startswith("images/pause.tar: does not hold registry.k8s.io/pause:3.10.2")
    assert "holds registry.k8s.io/pause:3.9" in problem


def test_hand_edited_manifest_is_noticed(bundle):
    data = json.loads((bundle / "manifest.json").read_text())
    data["kubeadm_images"] = data["kubeadm_images"][:-1]  # "etcd is not needed after all"
    (bundle / "manifest.json").write_text(json.dumps(data))
    assert _problems(bundle) == ("manifest.json: its build_key does not match its content "
                                 "(edited after the build?)",)


def test_paths_outside_the_bundle_are_refused(bundle):
    def escape(data):
        data["files"][0]["path"] = "../outside"
    _rewrite_manifest(bundle, escape)
    assert "../outside: path leaves the bundle directory" in _problems(bundle)
