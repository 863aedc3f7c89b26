"""`kubeforge vagrant`: clear errors naming what to install, and the vagrant driver's
timeouts, failures and streamed output (against a stand-in `vagrant` program)."""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner

from kubeforge.cli import main
from kubeforge.targets.vagrant import VagrantError, require_running, status, vagrant

LAB = """
cluster lab {
  kubernetes "1.37.2"
  node cp1 { address 10.61.0.11  role control-plane }
  node w1 { address 10.61.0.21  role worker }
}
"""

# A stand-in for vagrant: behaviour by first argument, so the driver is tested without Ruby.
FAKE = """#!/bin/sh
case "$1" in
  plugin) echo "No plugins installed." ;;
  status) echo "1,cp1,provider-name,docker"; echo "1,cp1,state,running";
          echo "1,w1,provider-name,docker"; echo "1,w1,state,stopped" ;;
  slow) echo "==> cp1: started"; sleep 30 ;;
  fail) echo "==> cp1: trying"; echo "The box could not be found" >&2; exit 1 ;;
  *) echo "==> cp1: line one"; echo "    cp1: line two" ;;
esac
"""


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """PATH with only the stand-in vagrant (and sh): no VBoxManage, no virsh, no docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").write_text(FAKE)
    (bin_dir / "vagrant").chmod(0o755)
    for tool in ("sh", "sleep", "echo"):
        target = f"/bin/{tool}" if os.path.exists(f"/bin/{tool}") else f"/usr/bin/{tool}"
        (bin_dir / tool).symlink_to(target)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Commands compile into ./build and keep state in ./.kubeforge."""
    monkeypatch.chdir(tmp_path)


def invoke(tmp_path, *args):
    source = tmp_path / "lab.kf"
    source.write_text(LAB)
    return CliRunner().invoke(main, ["vagrant", *args, str(source)])


def test_missing_vagrant_names_the_package(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for command in (["up", "--provider", "docker"], ["destroy"], ["inventory"]):
        if command != ["up", "--provider", "docker"]:
            (tmp_path / "build" / "lab").mkdir(parents=True, exist_ok=True)
            (tmp_path / "build" / "lab" / "Vagrantfile").write_text("")
        result = invoke(tmp_path, *command)
        assert result.exit_code == 1, result.output
        assert "apt-get install vagrant" in result.output
        assert "Traceback" not in result.output


def test_missing_virtualbox_names_it(tmp_path, fake_path):
    result = invoke(tmp_path, "up", "--provider", "virtualbox")
    assert result.exit_code == 1
    assert "VBoxManage not found; install VirtualBox" in result.output
    assert "Traceback" not in result.output


def test_missing_libvirt_plugin_names_it(tmp_path, fake_path):
    result = invoke(tmp_path, "up", "--provider", "libvirt")
    assert result.exit_code == 1
    assert "apt-get install vagrant-libvirt" in result.output


def test_unknown_provider_is_a_usage_error(tmp_path, fake_path):
    assert invoke(tmp_path, "up", "--provider", "vmware").exit_code == 2


def make_machines(root, *names):
    """What Vagrant leaves for each machine it created."""
    for name in names:
        (root / ".vagrant" / "machines" / name / "docker").mkdir(parents=True)
        (root / ".vagrant" / "machines" / name / "docker" / "id").write_text("c0ffee")


def test_inventory_refuses_machines_that_are_not_running(tmp_path, fake_path):
    result = invoke(tmp_path, "inventory")
    assert result.exit_code == 1
    assert "no Vagrant machines in" in result.output  # never brought up
    make_machines(tmp_path / "build" / "lab", "cp1", "w1")
    result = invoke(tmp_path, "inventory")
    assert result.exit_code == 1
    assert "machines not running: w1 (stopped)" in result.output


def test_driver_streams_lines(tmp_path, fake_path):
    seen = []
    out = vagrant(tmp_path, "up", timeout=30, on_line=seen.append)
    assert seen == ["==> cp1: line one", "    cp1: line two"] and "line two" in out
    assert [(m.name, m.provider, m.state) for m in status(tmp_path)] == [
        ("cp1", "docker", "running"), ("w1", "docker", "stopped")]


def test_driver_reports_failures_with_stderr(tmp_path, fake_path):
    with pytest.raises(VagrantError, match="exit 1.*\n.*The box could not be found"):
        vagrant(tmp_path, "fail", timeout=30)


def test_destroy_without_machines_does_not_ask_vagrant(tmp_path, fake_path):
    (tmp_path / "build" / "lab").mkdir(parents=True)
    (tmp_path / "build" / "lab" / "Vagrantfile").write_text("")
    (fake_path / "vagrant").write_text("#!/bin/sh\nexit 3\n")  # would fail if called
    result = invoke(tmp_path, "destroy")
    assert result.exit_code == 0 and "no Vagrant machines" in result.output


def test_driver_kills_vagrant_on_timeout(tmp_path, fake_path):
    started = time.monotonic()
    with pytest.raises(VagrantError, match="did not finish within 1 s"):
        vagrant(tmp_path, "slow", timeout=1)
    assert time.monotonic() - started < 10  # the sleeping child was killed too


def test_require_running_lists_missing_machines(tmp_path, fake_path, load):
    make_machines(tmp_path, "cp1", "w1")
    cluster = load(LAB.replace("node w1", "node w2 { address 10.61.0.22  role worker }\n  node w1")
                   ).cluster
    with pytest.raises(VagrantError, match=r"w2 \(unknown\), w1 \(stopped\)"):
        require_running(tmp_path, cluster)
