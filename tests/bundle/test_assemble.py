"""Writing a bundle directory: no-op when up to date, only changed files, never a partial
bundle that looks complete, and never into someone else's directory."""

from __future__ import annotations

import pytest

from kubeforge.bundle import assemble as assemble_module
from kubeforge.bundle.assemble import assemble
from kubeforge.bundle.check import check_bundle
from kubeforge.bundle.errors import BundleError
from tests.bundle.bundle_helpers import make_sources


def _quiet(_line):
    return None


def test_second_assemble_is_a_no_op(tmp_path):
    manifest, files = make_sources(tmp_path / "src")
    first = assemble(tmp_path / "b", files, manifest, _quiet)
    assert not first.up_to_date and len(first.changed) == len(manifest.files)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*")}
    second = assemble(tmp_path / "b", files, manifest, _quiet)
    assert second.up_to_date and second.changed == ()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*")} == before


def test_only_changed_files_are_written_and_stale_ones_removed(tmp_path):
    manifest, files = make_sources(tmp_path / "src")
    assemble(tmp_path / "b", files, manifest, _quiet)
    manifest2, files2 = make_sources(tmp_path / "src2", changed={"kubelet": b"kubelet v2\n"},
                                     images=tuple(i.name for i in manifest.images
                                                  if "etcd" not in i.name))
    # Same content except kubelet and without the etcd image (the kubeadm list still names
    # it, so this bundle is written but refused by check: the assembler does not judge).
    written = assemble(tmp_path / "b", files2, manifest2, _quiet)
    assert written.changed == ("bin/kubelet",)
    assert written.removed == ("images/etcd.tar",)
    assert not (tmp_path / "b" / "images/etcd.tar").exists()
    assert (tmp_path / "b" / "bin/kubelet").read_bytes() == b"kubelet v2\n"


def test_interrupted_write_leaves_no_manifest_and_resumes(tmp_path, monkeypatch):
    manifest, files = make_sources(tmp_path / "src")
    assemble(tmp_path / "b", files, manifest, _quiet)
    manifest2, files2 = make_sources(tmp_path / "src2", version="v2")
    real_copy, calls = assemble_module._copy_in, []

    def failing_copy(source, dest, mode):
        calls.append(dest)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed ^C in the middle
        real_copy(source, dest, mode)

    monkeypatch.setattr(assemble_module, "_copy_in", failing_copy)
    with pytest.raises(KeyboardInterrupt):
        assemble(tmp_path / "b", files2, manifest2, _quiet)
    assert not (tmp_path / "b" / "manifest.json").exists()
    assert not list((tmp_path / "b").rglob("*.tmp"))
    with pytest.raises(BundleError, match="not a complete bundle"):
        check_bundle(tmp_path / "b")
    monkeypatch.setattr(assemble_module, "_copy_in", real_copy)
    resumed = assemble(tmp_path / "b", files2, manifest2, _quiet)
    assert len(resumed.changed) < len(manifest2.files)  # what was written before is kept
    assert check_bundle(tmp_path / "b").build_key == manifest2.build_key


def test_foreign_directory_is_not_written(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    manifest, files = make_sources(tmp_path / "src")
    with pytest.raises(BundleError, match="not empty and holds no kubeforge bundle"):
        assemble(tmp_path / "home", files, manifest, _quiet)
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["notes.txt"]


def test_a_file_changed_in_place_is_noticed_and_restored(tmp_path):
    manifest, files = make_sources(tmp_path / "src")
    assemble(tmp_path / "b", files, manifest, _quiet)
    target = tmp_path / "b" / "bin/crictl"
    target.write_bytes(target.read_bytes().upper())  # same size, new content and mtime
    again = assemble(tmp_path / "b", files, manifest, _quiet)
    assert not again.up_to_date and again.changed == ("bin/crictl",)
    assert check_bundle(tmp_path / "b").build_key == manifest.build_key
    assert assemble(tmp_path / "b", files, manifest, _quiet).up_to_date
