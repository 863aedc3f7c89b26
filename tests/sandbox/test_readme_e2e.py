"""End to end: the README's sandbox path, run as written.

The commands are read from the README (the ``sh`` block after the marker comment), so the
README cannot drift from what works. They run in a scratch directory that holds the
repository's ``examples/``, as a newcomer runs them from a clone: `sandbox up FILE`, then
plan, apply and verify with the inventory and known_hosts it wrote, nothing by hand.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from kubeforge.compiler.lower import load_program
from tests.conftest import EXAMPLES, REPO

MARKER = "<!-- the sandbox path: tests/sandbox/test_readme_e2e.py"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(re.escape(MARKER) + r".*?-->\s*```sh\n(.*?)```", text, re.S)
    assert block, "the README lost its sandbox path block"
    return [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_block_is_the_sandbox_path():
    commands = readme_commands()
    assert [shlex.split(c)[:2] for c in commands] == [
        ["kubeforge", "sandbox"], ["kubeforge", "plan"], ["kubeforge", "apply"],
        ["kubeforge", "verify"], ["kubeforge", "sandbox"]]
    assert shlex.split(commands[-1])[2] == "down"


def run(cwd, command: str) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    assert argv[0] == "kubeforge"
    return subprocess.run([sys.executable, "-m", "kubeforge", *argv[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=1200)


@pytest.mark.e2e
def test_the_readme_sandbox_path_works_as_written(tmp_path, shared_sandbox_paused):
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    commands = readme_commands()
    *steps, down = commands
    try:
        outputs = {}
        for command in steps:
            proc = run(tmp_path, command)
            assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
            outputs[shlex.split(command)[1]] = proc
        # The hosts are the file's nodes, at its addresses, grouped by role.
        source = shlex.split(steps[0])[3]
        cluster = load_program(tmp_path / source)[0].cluster
        inventory = yaml.safe_load((tmp_path / ".kubeforge/sandbox/inventory.yaml").read_text())
        assert {n: h["ansible_host"] for n, h in inventory["all"]["hosts"].items()} == \
            {n.name: str(n.address) for n in cluster.nodes}
        groups = {g: set(body.get("hosts") or ())  # k8s_cluster has children only
                  for g, body in inventory["all"]["children"].items()}
        assert groups["etcd"] == {n.name for n in cluster.nodes if "etcd" in n.roles}
        assert groups["control_plane"] == {n.name for n in cluster.nodes if n.is_control_plane}
        listed = outputs["sandbox"].stdout.splitlines()
        assert [line.split("\t")[:2] for line in listed] == \
            [[n.name, str(n.address)] for n in cluster.nodes]
        # apply changed every host, and verify's table ends with passing totals.
        changed = set(re.findall(r"^changed\s+([\w-]+)/", outputs["apply"].stderr, re.M))
        assert changed == {n.name for n in cluster.nodes}, outputs["apply"].stderr
        assert re.search(r"\d+ checks: \d+ passed, 0 failed", outputs["verify"].stdout)
        # The one warning is the example's `cgroups v1` (W150: deprecated upstream).
        warned = [line for line in (outputs["plan"].stderr + outputs["apply"].stderr).splitlines()
                  if "warning" in line and "W150" not in line]
        assert warned == []
    finally:
        proc = run(tmp_path, down)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / ".kubeforge/sandbox/state.json").exists()
    status = run(tmp_path, "kubeforge sandbox status --json")
    assert json.loads(status.stdout)["hosts"] == []
