"""A cluster's recorded Kubernetes version against its file's: a downgrade, a skipped minor
and an upgrade without a bundle to take it from are refused before any host is contacted;
`plan` says so (tests/plan/test_plan_upgrade.py: the upgrade apply runs from a bundle).
From source text: an apply of the file against fake hosts records the version, then the
command line meets the edited file."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console

from kubeforge.targets import version_change
from kubeforge.targets.actions import KUBERNETES_PROGRAMS
from kubeforge.targets.deploy import apply, prepare
from kubeforge.targets.runner import Selection
from kubeforge.targets.version_change import DOWNGRADE, SKIP, UPGRADE, VersionChange
from tests.deploy.fakes import FakeHost, FakeTarget

SOURCE = """cluster c {{
  kubernetes "{version}"
  node cp1 {{ address 10.0.0.1  role control-plane worker }}
}}
"""


@pytest.mark.parametrize("running, wanted, kind", [
    ("1.37.2", "1.37.2", None),
    ("", "1.35.4", None),  # nothing recorded yet: a first apply
    ("1.37.2", "1.37.1", DOWNGRADE),
    ("1.37.2", "1.36.3", DOWNGRADE),
    ("1.35.4", "1.37.2", SKIP),
    ("1.37.1", "1.37.2", UPGRADE),
    ("1.36.3", "1.37.0", UPGRADE),
])
def test_kinds_of_change(running, wanted, kind):
    found = version_change.problem("c", running, wanted)
    assert (found and found[0]) == kind


def test_check_refuses_a_downgrade_and_a_skip_and_names_an_upgrade():
    assert version_change.check("c", "1.36.3", "1.37.2") == UPGRADE
    assert version_change.check("c", "1.37.2", "1.37.2") is None
    with pytest.raises(VersionChange, match="a downgrade"):
        version_change.check("c", "1.37.2", "1.36.3")
    with pytest.raises(VersionChange, match="skips 1.36"):
        version_change.check("c", "1.35.4", "1.37.2")


def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "kubeforge", *args, "c.kf", "-i", "inv.yaml",
                           "--known-hosts", "known_hosts"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_an_applied_cluster_refuses_another_version_before_contacting_hosts(tmp_path):
    kf = tmp_path / "c.kf"
    kf.write_text(SOURCE.format(version="1.36.3"))
    # Port 1 refuses at once: had the refusal not come first, the apply would fail there.
    (tmp_path / "inv.yaml").write_text(
        "all:\n  hosts:\n    cp1: {ansible_host: 127.0.0.1, ansible_port: 1}\n")
    (tmp_path / "known_hosts").write_text("")
    dep = prepare(kf, tmp_path / "inv.yaml", tmp_path / "build", tmp_path / ".kubeforge" / "c")
    assert dep.load_state().kubernetes == ""
    hosts = {"cp1": FakeHost(programs={"sh", *KUBERNETES_PROGRAMS})}
    report = apply(dep, FakeTarget(hosts), Selection(until="control-plane-init"), jobs=2,
                   console=Console(file=io.StringIO()), live=False)
    assert not report.failed
    version_change.record(dep.load_state(), dep.kubernetes)
    assert dep.load_state().kubernetes == "1.36.3"

    # No bundle to upgrade from: apply cannot do the upgrade itself, and says how to.
    for version, words in (("1.35.4", "a downgrade"),
                           ("1.37.2", "apply upgrades a cluster from its bundle, and the file "
                                      "installs none")):
        kf.write_text(SOURCE.format(version=version))
        proc = _cli(tmp_path, "apply")
        assert proc.returncode == 2, proc.stderr
        assert f"cluster c runs Kubernetes 1.36.3 and the file says {version}: {words}" \
            in proc.stderr, proc.stderr
        assert "Connection refused" not in proc.stderr and "FAILED" not in proc.stderr
        proc = _cli(tmp_path, "plan")
        assert proc.returncode == 0 and "warning: apply will refuse: cluster c runs" \
            in proc.stderr, proc.stderr
    # Upgraded by hand: recorded, the apply goes on to the hosts (here: refused by port 1).
    proc = _cli(tmp_path, "apply", "--version-upgraded")
    assert proc.returncode == 1 and "cp1" in proc.stderr, proc.stderr
    assert dep.load_state().kubernetes == "1.37.2"
