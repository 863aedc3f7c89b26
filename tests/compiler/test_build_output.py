"""`compile -o`: the build is swapped in whole, holds exactly the current artifacts, and a
failure of any kind leaves the previous build as it was."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubeforge.cli import main

SOURCE = """cluster lab {
  kubernetes "1.37.2"
  pki { algorithm ecdsa-p256 }
  node NODE { address 192.168.56.11  role control-plane worker }
}
"""


def compile_(tmp_path: Path, node: str = "cp1", out: str = "build"):
    (tmp_path / "main.kf").write_text(SOURCE.replace("NODE", node))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(main, ["compile", "main.kf", "-o", out, "--state-dir", "state"])
    finally:
        os.chdir(old)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_build_holds_exactly_the_current_artifacts(tmp_path):
    assert compile_(tmp_path).exit_code == 0
    root = tmp_path / "build/lab"
    first = snapshot(root)
    assert compile_(tmp_path, node="cp9").exit_code == 0
    after = snapshot(root)
    assert not (root / "nodes/cp1").exists()  # not even an empty directory
    assert any(p.startswith("nodes/cp9/") for p in after)
    index = json.loads((root / "files.json").read_text())["files"]
    assert set(after) == set(index) | {"files.json"}
    assert set(first) != set(after)
    # Nothing else is left next to the build.
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["lab"]


def test_recompiling_gives_identical_files_and_links_unchanged_ones(tmp_path):
    assert compile_(tmp_path).exit_code == 0
    root = tmp_path / "build/lab"
    first = snapshot(root)
    inode = (root / "plan.json").stat().st_ino
    assert compile_(tmp_path).exit_code == 0
    assert snapshot(root) == first
    assert (root / "plan.json").stat().st_ino == inode


def test_recompiling_an_unchanged_file_leaves_the_build_as_it_is(tmp_path):
    assert compile_(tmp_path).exit_code == 0
    root = tmp_path / "build/lab"
    (root / "notes.txt").write_text("mine\n")
    inode = root.stat().st_ino
    assert compile_(tmp_path).exit_code == 0
    assert root.stat().st_ino == inode  # not a new directory swapped in
    assert (root / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("change", ["edited", "removed", "mode"])
def test_a_build_file_changed_by_hand_is_written_again(tmp_path, change):
    assert compile_(tmp_path).exit_code == 0
    root = tmp_path / "build/lab"
    first = snapshot(root)
    target = root / "plan.txt"
    if change == "edited":
        target.write_text(target.read_text().upper())
    elif change == "removed":
        target.unlink()
    else:
        target.chmod(0o600)
    assert compile_(tmp_path).exit_code == 0
    assert snapshot(root) == first
    assert target.stat().st_mode & 0o777 == 0o644


def test_files_kubeforge_did_not_write_move_into_the_new_build(tmp_path):
    assert compile_(tmp_path).exit_code == 0
    root = tmp_path / "build/lab"
    (root / ".vagrant/machines/cp1/docker").mkdir(parents=True)
    (root / ".vagrant/machines/cp1/docker/id").write_text("abc\n")
    (root / "vagrant-inventory.yaml").write_text("all: {}\n")
    (root / "nodes/cp1/notes.txt").write_text("mine\n")
    assert compile_(tmp_path, node="cp2").exit_code == 0
    assert (root / ".vagrant/machines/cp1/docker/id").read_text() == "abc\n"
    assert (root / "vagrant-inventory.yaml").read_text() == "all: {}\n"
    # The old node's directory keeps only what is not kubeforge's.
    assert [p.relative_to(root).as_posix() for p in (root / "nodes/cp1").rglob("*")] == \
        ["nodes/cp1/notes.txt"]


def test_a_full_disk_leaves_the_previous_build_intact(tmp_path):
    assert compile_(tmp_path).exit_code == 0
    root = tmp_path / "build/lab"
    before = snapshot(root)
    (tmp_path / "main.kf").write_text(SOURCE.replace("NODE", "cp2"))

    def small_files():  # the disk "fills up" after 16 KiB of one file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "compile", "main.kf", "-o", "build",
                           "--state-dir", "state"], cwd=tmp_path, capture_output=True,
                          text=True, preexec_fn=small_files, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"cannot write the build to {root}: File too large")
    assert proc.stderr.rstrip().endswith("; the previous build is unchanged")
    assert snapshot(root) == before
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["lab"]


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs (when this process may mount one): a real ENOSPC."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_no_space_left_on_device(tmp_path, tiny_fs):
    result = compile_(tmp_path, out=str(tiny_fs))
    assert result.exit_code == 1
    assert result.output.startswith(f"cannot write the build to {tiny_fs}/lab: No space left "
                                    "on device")
    assert list(tiny_fs.iterdir()) == []  # no half build, no temp directory


@pytest.mark.parametrize("case", ["out-is-a-file", "parent-is-a-file", "build-is-a-file",
                                  "not-ours", "in-the-way", "not-writable"])
def test_output_paths_in_the_way(tmp_path, case):
    out, expected = "build", None
    if case == "out-is-a-file":
        (tmp_path / "build").write_text("x")
        expected = "Directory 'build' is a file"  # click's check, exit 2
    elif case == "parent-is-a-file":
        (tmp_path / "afile").write_text("x")
        out = "afile/build"
        expected = (f"cannot write the build to {tmp_path}/afile/build/lab: {tmp_path}/afile/"
                    "build does not exist (a parent of it is not a directory)")
    elif case == "build-is-a-file":
        (tmp_path / "build").mkdir()
        (tmp_path / "build/lab").write_text("x")
        expected = f"{tmp_path}/build/lab exists and is not a directory; move it out of the way"
    elif case == "not-ours":
        (tmp_path / "build/lab").mkdir(parents=True)
        (tmp_path / "build/lab/thesis.tex").write_text("x")
        expected = (f"{tmp_path}/build/lab is not empty and holds no readable files.json, so "
                    "it is not a kubeforge build")
    elif case == "in-the-way":
        assert compile_(tmp_path).exit_code == 0
        (tmp_path / "build/lab/pki").rename(tmp_path / "pki-moved")
        (tmp_path / "build/lab/pki").write_text("a file where a directory goes\n")
        expected = (f"cannot write the build to {tmp_path}/build/lab: {tmp_path}/build/lab/pki "
                    "(not written by kubeforge) is in the way of the new build's pki; move it "
                    "away; the previous build is unchanged")
    else:
        out = "/proc/kubeforge-build"  # not writable, whoever runs the tests
        expected = "cannot write the build to /proc/kubeforge-build/lab: "
    (tmp_path / "main.kf").write_text(SOURCE.replace("NODE", "cp1"))

    def everything_but_state():
        return {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("state/")}
    before = everything_but_state()
    result = compile_(tmp_path, out=out)
    assert result.exit_code == (2 if case == "out-is-a-file" else 1), result.output
    assert "Traceback" not in result.output
    assert expected in result.output
    assert everything_but_state() == before
