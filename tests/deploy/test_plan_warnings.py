"""`plan` and `apply` show the compiler's warnings as `check` does (file:line:col, the source
line and a caret), from source text through the command line; no host is contacted."""

from __future__ import annotations

import json
import subprocess
import sys

SOURCE = """cluster c {
  kubernetes "1.37.2"
  loadbalancer keepalived-haproxy { vip 10.0.0.100  interface "eth0" }
  node cp1 { address 10.0.0.1  role control-plane }
  node cp2 { address 10.0.0.2  role control-plane }
  node w1 { address 10.0.0.3  role worker }
}
"""


def _plan(tmp_path, *args):
    (tmp_path / "c.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text("all:\n  hosts:\n" + "".join(
        f"    {n}: {{ansible_host: 10.0.0.{i}}}\n" for i, n in enumerate(("cp1", "cp2", "w1"), 1)))
    return subprocess.run([sys.executable, "-m", "kubeforge", "plan", "c.kf", "-i", "inv.yaml",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_plan_shows_the_compilers_warnings_with_their_source_line(tmp_path):
    proc = _plan(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "c.kf:1:1: warning[W112]: etcd would have 2 members" in proc.stderr, proc.stderr
    assert "1 | cluster c {\n    ^" in proc.stderr
    proc = _plan(tmp_path, "--json")
    assert any("warning[W112]" in w for w in json.loads(proc.stdout)["warnings"])
