"""The state directory through `kubeforge compile`: a lost CA is never made anew behind the
user's back, corrupt files are errors with their name, loosened modes are tightened."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubeforge.cli import main

SOURCE = """cluster lab {
  kubernetes "1.37.2"
  pki { algorithm ALGO }
  node cp1 { address 192.168.56.11  role control-plane worker }
  node w1 { address 192.168.56.21  role worker }
}
user alice { groups dev }
"""


def compile_(tmp_path: Path, algorithm: str = "ecdsa-p256"):
    (tmp_path / "main.kf").write_text(SOURCE.replace("ALGO", algorithm))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(main, ["compile", "main.kf", "-o", "build", "--state-dir",
                                         "state"])
    finally:
        os.chdir(old)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One compiled build with its state, copied for each test (keys are slow to make)."""
    base = tmp_path_factory.mktemp("state-safety")
    assert compile_(base, "rsa-2048").exit_code == 0
    return base


@pytest.fixture
def work(built, tmp_path):
    shutil.copytree(built, tmp_path, dirs_exist_ok=True, symlinks=True)
    return tmp_path


@pytest.mark.parametrize("lost", [["pki/etcd/ca.crt", "pki/etcd/ca.key"], ["pki"],
                                  ["pki/sa.key", "pki/sa.pub"]])
def test_lost_material_after_a_build_is_an_error(work, lost):
    for rel in lost:
        target = work / "state" / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    before = files(work)
    result = compile_(work, "rsa-2048")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "which holds an earlier build" in result.output
    assert f"remove the whole state directory {Path('state')}" in result.output
    assert files(work) == before  # nothing made, the build untouched


def test_removing_the_whole_state_directory_starts_a_new_cluster(work):
    old_ca = (work / "state/pki/ca.crt").read_bytes()
    shutil.rmtree(work / "state")
    assert compile_(work, "rsa-2048").exit_code == 0
    assert (work / "state/pki/ca.crt").read_bytes() != old_ca


def test_a_users_own_ca_and_token_are_seeds_not_evidence(work, tmp_path_factory):
    fresh = tmp_path_factory.mktemp("seeded")
    (fresh / "state/pki").mkdir(parents=True)
    for rel in ("pki/ca.crt", "pki/ca.key", "bootstrap-token"):
        shutil.copy(work / "state" / rel, fresh / "state" / rel)
    assert compile_(fresh, "rsa-2048").exit_code == 0
    assert (fresh / "state/pki/ca.crt").read_bytes() == (work / "state/pki/ca.crt").read_bytes()
    assert (fresh / "state/pki/etcd/ca.crt").is_file()


def _flip(path: Path, offset_from_end: int) -> None:
    """Change one base64 character of a PEM body, ``offset_from_end`` characters before
    the END line."""
    text = path.read_text()
    end = text.index("-----END")
    i = end - 1 - offset_from_end
    while text[i] == "\n":
        i -= 1
    text = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
    path.write_text(text)


@pytest.mark.parametrize("rel, offset, message", [
    ("pki/ca.crt", 20, "the signature of state/pki/ca.crt does not verify"),
    ("pki/etcd/ca.crt", 300, "CA etcd/ca: "),
    ("pki/ca.key", 400, "state/pki/ca.key is not an unencrypted PEM private key"),
    ("pki/sa.key", 900, "state/pki/sa.key is not an unencrypted PEM private key"),
    ("pki/nodes/cp1/apiserver.key", 600, "apiserver.key is not an unencrypted PEM private key"),
    ("kubeconfigs/admin.key", 100, "admin.key is not an unencrypted PEM private key"),
])
def test_one_changed_base64_character_in_the_state(work, rel, offset, message):
    _flip(work / "state" / rel, offset)
    result = compile_(work, "rsa-2048")
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_certificate_whose_version_field_is_changed(work):
    # Found by the hostile fuzzer: the 45th character of a PEM certificate is in the DER
    # version field, which cryptography rejects with InvalidVersion, no ValueError.
    cert = work / "state/kubeconfigs/admin.crt"
    text = cert.read_text()
    cert.write_text(text[:44] + "a" + text[45:])
    result = compile_(work, "rsa-2048")
    assert result.exit_code == 1, result.output
    assert "admin.crt is not a PEM certificate" in result.output
    assert "Traceback" not in result.output


def test_every_character_of_a_leaf_certificate(work):
    """Each change either fails with the file's name or re-issues the leaf: never a crash."""
    cert = work / "state/pki/nodes/cp1/apiserver.crt"
    original = cert.read_text()
    body = [i for i, c in enumerate(original) if c not in "\n-" and
            original.index("\n") < i < original.index("-----END")]
    outcomes = set()
    for i in body[::37]:
        cert.write_text(original[:i] + ("A" if original[i] != "A" else "B") + original[i + 1:])
        result = compile_(work, "rsa-2048")
        assert result.exit_code in (0, 1), result.output
        if result.exit_code == 1:
            assert "apiserver" in result.output and "Traceback" not in result.output
        outcomes.add(result.exit_code)
        cert.write_text(original)
    assert outcomes == {0, 1}


def test_loosened_modes_are_tightened_and_reported(work):
    state = work / "state"
    state.chmod(0o755)
    (state / "pki").chmod(0o755)
    (state / "pki/ca.key").chmod(0o644)
    result = compile_(work, "rsa-2048")
    assert result.exit_code == 0
    assert "state: warning[W301]: the state directory was readable by others: tightened 3 " \
           "mode(s): state 0755 -> 0700; state/pki 0755 -> 0700; state/pki/ca.key 0644 -> " \
           "0600" in result.output
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert "W301" not in compile_(work, "rsa-2048").output
