"""End to end on a sandbox host: `plan --probe` runs the preflight checks apply runs, and names
the one that would stop the apply with its output, before anything is changed.

One control plane (node1) installed from packages (the default `install`), so preflight wants
apt-get, curl and gpg; the sandbox image has no gpg (the news a newcomer got from apply). A port the control plane needs is then
taken by another program, which the ports check names.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import HOST_CGROUPS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(sandbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    node = next(h for h in sandbox.hosts() if h.name == "node1")
    net = ".".join(node.address.split(".")[:3]) + ".0/24"
    (root / "probe.kf").write_text(f"""cluster probe {{
  kubernetes "1.37.2"
  cgroups {HOST_CGROUPS}
  endpoint "{node.address}:6443"
  network {{ pods 10.244.0.0/16  services 10.96.0.0/12  nodes {net} }}
  node node1 {{ address {node.address}  role control-plane }}
}}
""")
    (root / "inventory.yaml").write_text(
        f"all:\n  children:\n    control_plane:\n      hosts:\n        node1:\n"
        f"          ansible_host: {node.address}\n          ansible_user: root\n"
        f"          ansible_ssh_private_key_file: {sandbox.key_path}\n")
    yield root, sandbox


def kf(lab, *args: str) -> subprocess.CompletedProcess:
    root, box = lab
    return subprocess.run([sys.executable, "-m", "kubeforge", *args, "probe.kf", "-i",
                           "inventory.yaml", "--known-hosts", str(box.known_hosts)],
                          cwd=root, capture_output=True, text=True, timeout=900)


def on_node1(lab, script: str) -> subprocess.CompletedProcess:
    _, box = lab
    container = next(h.container for h in box.hosts() if h.name == "node1")
    return subprocess.run(["docker", "exec", container, "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)


def failing(report: dict) -> dict[str, str]:
    return {item["step"]: item["note"] for phases in report["hosts"].values()
            for phase in phases.values() for item in phase["failing"]}


@pytest.fixture
def without_gpg(lab):
    """The sandbox image has no gpg; should it get one, it is moved aside for the test."""
    gpg = on_node1(lab, "command -v gpg").stdout.strip()
    if gpg:
        on_node1(lab, f"mv {gpg} {gpg}.kf-hidden")
    yield
    if gpg:
        on_node1(lab, f"mv {gpg}.kf-hidden {gpg}")


def test_probe_names_the_missing_program_apply_would_stop_on(lab, without_gpg):
    proc = kf(lab, "plan", "--probe", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["failing"] >= 1
    assert "missing: gpg" in failing(report)["node1/preflight/binaries"], failing(report)

    text = kf(lab, "plan", "--probe")
    assert "x node1/preflight/binaries fails: " in text.stdout and "missing: gpg" in text.stdout
    assert "preflight checks failing: apply would stop there" in text.stdout

    # Without --probe nothing ran on the host, so nothing can be said to fail.
    assert json.loads(kf(lab, "plan", "--json").stdout)["failing"] == 0
    # apply stops at the very check the probe named.
    applied = kf(lab, "apply", "--until", "preflight")
    assert applied.returncode == 1
    assert "node1/preflight/binaries" in applied.stderr and "missing: gpg" in applied.stderr


def test_probe_names_a_port_taken_by_another_program(lab):
    on_node1(lab, "nohup python3 -m http.server 10259 >/dev/null 2>&1 & sleep 1")
    try:
        report = json.loads(kf(lab, "plan", "--probe", "--json").stdout)
    finally:
        on_node1(lab, "pkill -f 'http.server 10259'")
    note = failing(report)["node1/preflight/ports"]
    assert "ports taken by other programs" in note and ":10259" in note and "python3" in note
    report = json.loads(kf(lab, "plan", "--probe", "--json").stdout)
    assert "node1/preflight/ports" not in failing(report)
