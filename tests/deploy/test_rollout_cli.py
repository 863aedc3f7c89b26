"""`kubeforge rollout`'s usage errors, from source text (the real rollback runs in
tests/k8s/ha/test_ha_e2e.py against a real cluster)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SOURCE = """cluster c {
  kubernetes "1.37.2"
  node cp1 { address 10.0.0.1  role control-plane worker }
}
namespace a {
  deployment web { image "nginx:1.27"  port 80 }
  job once { image "busybox:1.36"  restart Never }
}
namespace b {
  deployment web { image "nginx:1.27"  port 80 }
}
"""


def _rollout(tmp_path, *args):
    (tmp_path / "c.kf").write_text(SOURCE)
    # Port 1 of this machine refuses at once: the tests never wait on a timeout.
    (tmp_path / "inv.yaml").write_text(
        "all:\n  hosts:\n    cp1: {ansible_host: 127.0.0.1, ansible_port: 1}\n")
    return subprocess.run([sys.executable, "-m", "kubeforge", "rollout", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("undo", "c.kf", "api"), "c.kf declares no workload api; it declares a/deployment/web, "
                              "b/deployment/web"),
    (("undo", "c.kf", "web"), "web is declared in namespaces a, b: pick one with -n"),
    (("undo", "c.kf", "statefulset/web", "-n", "a"), "declares no workload statefulset/web"),
    (("undo", "c.kf", "once", "-n", "a"), "job once has no rollout to undo"),
    (("history", "c.kf", "web"), "pick one with -n"),
])
def test_workload_must_be_declared_and_rollable(tmp_path, args, message):
    proc = _rollout(tmp_path, *args, "-i", "inv.yaml")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_control_plane_is_one_clear_line(tmp_path):
    """The workload exists, so the command goes on to SSH: the host that applies workloads
    is named with why it cannot be reached, and paramiko's own traceback stays out."""
    (tmp_path / "known_hosts").write_text("")
    proc = _rollout(tmp_path, "undo", "c.kf", "web", "-n", "a", "-i", "inv.yaml",
                    "--known-hosts", "known_hosts")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "cp1: cannot connect to 127.0.0.1:1" in proc.stderr



def test_a_port_that_is_not_sshd_is_one_clear_line(tmp_path):
    """A port that accepts and hangs up (not sshd): paramiko logs its banner traceback, which
    must not reach the user under kubeforge's own message."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def hang_up():
        try:
            while True:
                conn, _ = server.accept()
                conn.close()
        except OSError:  # the test closed the socket: done
            pass

    threading.Thread(target=hang_up, daemon=True).start()
    (tmp_path / "c.kf").write_text(SOURCE)
    (tmp_path / "inv.yaml").write_text(
        f"all:\n  hosts:\n    cp1: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n")
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "rollout", "undo", "c.kf", "web",
                           "-n", "a", "-i", "inv.yaml", "--known-hosts", "known_hosts"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    server.close()
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr and f"cp1: cannot connect to 127.0.0.1:{port}" in \
        proc.stderr, proc.stderr
