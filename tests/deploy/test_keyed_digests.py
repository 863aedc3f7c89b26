"""No world-readable file of a build confirms a guessed secret, and apply still skips
secret uploads that are already on the host (against the fake target)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from kubeforge.targets.actions import KUBERNETES_PROGRAMS, BuildMismatch
from kubeforge.targets.base import CHANGED, UNCHANGED
from kubeforge.targets.deploy import apply, prepare
from tests.deploy.fakes import FakeHost, FakeTarget

SOURCE = """cluster lab {
  kubernetes "1.37.2"
  pki { algorithm ecdsa-p256 }
  node cp1 { address 192.168.56.11  role control-plane worker }
}
namespace shop {
  secret db from env "KF_TEST_DB_PASSWORD"
  deployment web { image "nginx:1.27"  env PW from secret db key KF_TEST_DB_PASSWORD }
}
"""
INVENTORY = """all:
  children:
    control_plane:
      hosts:
        cp1: {ansible_host: 192.168.56.11}
"""


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    monkeypatch.setenv("KF_TEST_DB_PASSWORD", "hunter2")
    (tmp_path / "main.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    return prepare(tmp_path / "main.kf", tmp_path / "inv.yaml", tmp_path / "build",
                   tmp_path / "state")


def test_world_readable_files_carry_no_hash_of_a_secret(deployment):
    root = deployment.build_root
    secrets = [p for p in root.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) ==
               0o600]
    assert any("secrets" in p.name for p in secrets) and any(p.suffix == ".key" for p in secrets)
    public = [p for p in root.rglob("*") if p.is_file() and p.stat().st_mode & 0o044]
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in secrets}
    for path in public:
        text = path.read_text(errors="replace")
        leaked = [h for h in hashes if h in text]
        assert not leaked, f"{path} holds the SHA-256 of a secret file"
    # What they hold instead is keyed with a key only the state directory has.
    plan = (root / "plan.json").read_text()
    assert plan.count("hmac-sha256:") == sum(  # the action's digest, and the check's
        1 + (s.check.kind == "sha256") for s in deployment.plan.uploads() if s.action.secret)
    key = deployment.state_dir / "digest-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_guessed_password_cannot_be_confirmed_by_compiling_it(deployment, tmp_path,
                                                                monkeypatch):
    """Compiling the guess with a state of one's own gives other digests."""
    secret = next(s for s in deployment.plan.uploads() if "secrets" in s.action.source)
    monkeypatch.setenv("KF_TEST_DB_PASSWORD", "hunter2")  # the right guess
    other = prepare(tmp_path / "main.kf", tmp_path / "inv.yaml", tmp_path / "b2",
                    tmp_path / "attacker-state")
    guess = next(s for s in other.plan.uploads() if s.id == secret.id)
    assert (other.build_root / guess.action.source).read_bytes() == \
        (deployment.build_root / secret.action.source).read_bytes()
    assert guess.action.sha256 != secret.action.sha256


def test_digests_are_stable_across_compiles(deployment, tmp_path):
    again = prepare(tmp_path / "main.kf", tmp_path / "inv.yaml", tmp_path / "build",
                    tmp_path / "state")
    assert again.plan.to_json() == deployment.plan.to_json()


def _apply(dep, hosts):
    report = apply(dep, FakeTarget(hosts), jobs=2,
                   console=Console(file=io.StringIO(), width=200), live=False)
    return {r.step_id: r for r in report.results}


def test_unchanged_secret_uploads_are_skipped(deployment):
    hosts = {"cp1": FakeHost(programs={"sh", *KUBERNETES_PROGRAMS})}
    secret_steps = [s.id for s in deployment.plan.uploads() if s.action.secret]
    assert secret_steps
    first = _apply(deployment, hosts)
    assert {first[i].status for i in secret_steps} == {CHANGED}
    for step in deployment.plan.uploads():
        data, mode, _ = hosts["cp1"].files[step.action.path]
        assert data == (deployment.build_root / step.action.source).read_bytes()
        assert mode == step.action.mode
    second = _apply(deployment, hosts)
    assert {second[i].status for i in secret_steps} == {UNCHANGED}
    # Changed on the host: uploaded again.
    path = next(s.action.path for s in deployment.plan.uploads() if s.action.secret)
    data, mode, owner = hosts["cp1"].files[path]
    hosts["cp1"].files[path] = (data + b"tampered", mode, owner)
    third = _apply(deployment, hosts)
    assert [i for i in secret_steps if third[i].status == CHANGED] == \
        [s.id for s in deployment.plan.uploads() if s.action.path == path]


def test_a_secret_build_file_that_does_not_match_the_plan_is_refused(deployment):
    step = next(s for s in deployment.plan.uploads() if s.action.secret)
    source: Path = deployment.build_root / step.action.source
    os.chmod(source, 0o600)
    source.write_bytes(source.read_bytes() + b"\n")
    hosts = {"cp1": FakeHost(programs={"sh", *KUBERNETES_PROGRAMS})}
    results = _apply(deployment, hosts)
    assert results[step.id].status != CHANGED
    assert "does not match plan.json" in results[step.id].message
    with pytest.raises(BuildMismatch):
        from kubeforge.targets.actions import Payload
        Payload.read(deployment.build_root, step.action, deployment.digest_key)
