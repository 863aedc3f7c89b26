"""`kubeforge certs renew` usage errors and `kubeforge plan`'s expiry warning, through the
command line from source text (no host is contacted: port 1 refuses at once)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SOURCE = """cluster c {{
  kubernetes "1.37.2"
  pki {{ cert_validity {validity} }}
  node cp1 {{ address 10.0.0.1  role control-plane worker }}
}}
"""


def _run(tmp_path, *args, validity="365d"):
    (tmp_path / "c.kf").write_text(SOURCE.format(validity=validity))
    (tmp_path / "inv.yaml").write_text(
        "all:\n  hosts:\n    cp1: {ansible_host: 127.0.0.1, ansible_port: 1}\n")
    (tmp_path / "known_hosts").write_text("")
    return subprocess.run([sys.executable, "-m", "kubeforge", *args, "-i", "inv.yaml",
                           "--known-hosts", "known_hosts"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (("apiserver", "--all"), "name certificates or pass --all, not both"),
    (("--all", "--limit", "cp1"), "--limit: a renewal works through every node"),
    (("kubelet.conf",), "kubelet.conf is not renewed by kubeforge"),
    (("apiserver@cp9",), "cluster c has no certificate apiserver on node cp9"),
    (("--all", "--expiring-within", "soon"), "`soon` is not a duration"),
])
def test_usage_errors(tmp_path, args, message):
    proc = _run(tmp_path, "certs", "renew", "c.kf", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / ".kubeforge" / "c" / "renewal.json").exists()


def test_a_state_without_cas_is_refused(tmp_path):
    proc = _run(tmp_path, "certs", "renew", "c.kf", "--all")
    assert proc.returncode == 1 and "no CA ca, front-proxy-ca, etcd/ca" in proc.stderr
    assert not (tmp_path / ".kubeforge" / "c" / "renewal.json").exists()


def test_an_unreachable_host_leaves_the_renewal_recorded(tmp_path):
    _run(tmp_path, "plan", "c.kf")  # compiles: the state now holds the CAs
    proc = _run(tmp_path, "certs", "renew", "c.kf", "apiserver")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "cp1: FAILED" in proc.stderr and "run `kubeforge certs renew` again" in proc.stderr
    record = json.loads((tmp_path / ".kubeforge" / "c" / "renewal.json").read_text())
    assert record["leaves"] == ["pki/nodes/cp1/apiserver"]


def test_plan_warns_of_short_lived_certificates(tmp_path):
    proc = _run(tmp_path, "plan", "c.kf", "--json", validity="20d")
    assert proc.returncode == 0, proc.stderr
    warning = "certificate(s) end within 30 days"
    assert warning in proc.stderr and "kubeforge certs renew FILE -i INV --all" in proc.stderr
    assert any(warning in w for w in json.loads(proc.stdout)["warnings"])
    (tmp_path / "long").mkdir()
    assert warning not in _run(tmp_path / "long", "plan", "c.kf").stderr
