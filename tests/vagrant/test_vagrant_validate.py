"""`vagrant validate` accepts the Vagrantfile of every example, offline (no box is needed),
for the docker provider (before and after `kubeforge vagrant up` made its key), with every
provider block ignored (-p), and for libvirt where its plugin is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeforge.targets.sandbox_files import client_key
from tests.conftest import EXAMPLES
from tests.vagrant.vagrant_helpers import needs_vagrant, run_vagrant, vagrantfile

pytestmark = needs_vagrant

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.kf"))


@pytest.fixture(scope="module", autouse=True)
def docker_daemon(tmp_path_factory):
    """Vagrant's docker provider asks the daemon whether it is usable even to validate, so
    these tests hold one (the sandbox's shared daemon, started if none answers) instead of
    depending on an end-to-end test having started it earlier in the session."""
    from kubeforge.targets import sandbox_daemon as daemon

    user = str(tmp_path_factory.mktemp("vagrant-validate"))
    daemon.acquire(user, Path(user) / "dockerd.log")
    yield
    daemon.release(user)


def _validate(root, *args, provider=None):
    env = {"VAGRANT_DEFAULT_PROVIDER": provider} if provider else None
    proc = run_vagrant(root, "validate", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


@pytest.mark.parametrize("source", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_validates(tmp_path, source):
    (tmp_path / "Vagrantfile").write_text(vagrantfile(source))
    _validate(tmp_path, "--ignore-provider")
    _validate(tmp_path, provider="docker")
    client_key(tmp_path / ".vagrant" / "kubeforge")  # what `kubeforge vagrant up` creates
    _validate(tmp_path, provider="docker")
    plugins = run_vagrant(tmp_path, "plugin", "list").stdout
    if "vagrant-libvirt" in plugins:
        _validate(tmp_path, provider="libvirt")


def test_validate_catches_a_broken_file(tmp_path):
    """The check has teeth: a provider setting Vagrant does not know fails."""
    text = vagrantfile(EXAMPLE_FILES[0]).replace("docker.has_ssh = true",
                                                 "docker.has_ssh = true\n        docker.bogus = 1")
    (tmp_path / "Vagrantfile").write_text(text)
    proc = run_vagrant(tmp_path, "validate", env={"VAGRANT_DEFAULT_PROVIDER": "docker"})
    assert proc.returncode != 0 and "bogus" in proc.stdout + proc.stderr
