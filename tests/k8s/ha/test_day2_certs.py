"""Day 2 on the real HA cluster: `kubeforge certs renew`.

`renew --all` re-issues every leaf from the kept CAs and restarts etcd, the API server, the
controller manager and the scheduler one control plane at a time, while a sampler asks the
API through the VIP (fresh TLS connection per request, client certificate of admin.conf).
Afterwards kubeadm's own `certs check-expiration` on every control plane shows later dates,
each API server serves the certificate the renewal issued (serial read over TLS), the nodes
are Ready and the three etcd members healthy. A renewal killed after the first control plane
converges when run again, without issuing anything new; a run with nothing to renew changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.k8s.ha.lab import CONTROL_PLANES, REPORT, WORKERS
from tests.k8s.ha.sampling import VipSampler
from tests.k8s.ha_cluster import HaCluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: The bound asserted for the API through the VIP while etcd and the API server restart on
#: one control plane at a time: haproxy needs up to two failed 5 s health checks to take a
#: stopped API server out, and a new connection it sends there meanwhile is cut (the client
#: sees an EOF in the TLS handshake), so a few requests may fail; but never longer than this
#: without a successful answer, and at least this share succeeds. Measured on the loaded
#: 2-core machine, two runs: 7 of 721 and 13 of 686 failed (1-2 %), the longest stretch
#: without an answer 2.6 s.
MAX_GAP_S = 15.0
MIN_SUCCESS = 0.95
COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]


def _args(ha: HaCluster, *extra: str) -> list[str]:
    return ["certs", "renew", str(ha.kf), *extra, "-i", str(ha.sandbox_dir / "inventory.yaml"),
            "--known-hosts", str(ha.sandbox_dir / "known_hosts")]


def _renew(ha: HaCluster, *extra: str) -> dict:
    proc = ha.kubeforge(*_args(ha, *extra, "--json"), timeout=3600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout)


def _state(ha: HaCluster) -> Path:
    return ha.root / ".kubeforge" / ha.name


def _expirations(ha: HaCluster, host: str) -> dict[str, dt.datetime]:
    code, out = ha.ssh(host, "kubeadm certs check-expiration -o json")
    assert code == 0, out
    return {c["name"]: dt.datetime.fromisoformat(c["expirationDate"].replace("Z", "+00:00"))
            for c in json.loads(out)["certificates"] if not c.get("missing")}


def _served_serial(ha: HaCluster, host: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only the serial is read
    with socket.create_connection((ha.address(host), 6443), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def _serials(report: dict, name: str) -> dict[str, str]:
    return {r["node"]: r["serial"] for r in report["renewal"] if r["name"] == name}


def _healthy(ha: HaCluster) -> None:
    ha.wait("all five nodes Ready", lambda: (r := ha.nodes_ready()) and len(r) == 5
            and all(r.values()), 300)
    etcdctl = ("-n", "kube-system", "exec", "etcd-cp1", "--", "etcdctl",
               "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
               "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
               "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")

    def members_healthy():
        health = json.loads(ha.kubectl(*etcdctl, "endpoint", "health", "--cluster",
                                       "-w", "json").stdout)
        return len(health) == 3 and all(h["health"] for h in health)

    ha.wait("3 etcd members healthy", members_healthy, 300)


def test_renew_all_keeps_the_api_answering(applied, tmp_path):
    ha = applied
    before = {cp: _expirations(ha, cp) for cp in CONTROL_PLANES}
    served_before = {cp: _served_serial(ha, cp) for cp in CONTROL_PLANES}
    started = time.monotonic()
    with VipSampler(ha, tmp_path) as sampler:
        report = _renew(ha, "--all")
    REPORT["certs_renew_all_s"] = round(time.monotonic() - started, 1)
    REPORT["certs_renew_per_host_s"] = {h["host"]: h["seconds"] for h in report["hosts"]}
    REPORT["certs_renew_vip"] = traffic = sampler.summary()

    assert report["complete"] and not report["resumed"]
    assert len(report["issued"]) == len(report["renewal"]) > 0
    assert [h["host"] for h in report["hosts"]] == list(CONTROL_PLANES)  # workers hold none
    for host in report["hosts"]:
        assert host["restarted"] == COMPONENTS, host
    assert not (_state(ha) / "renewal.json").exists()

    for cp in CONTROL_PLANES:
        after = _expirations(ha, cp)
        assert set(after) == set(before[cp]), cp
        for name, old in before[cp].items():
            assert after[name] > old, (cp, name, old, after[name])
    served = _serials(report, "apiserver")
    for cp in CONTROL_PLANES:
        assert _served_serial(ha, cp) == served[cp] != served_before[cp], cp
    _healthy(ha)

    assert traffic["requests"] > 20, traffic
    assert traffic["longest_gap_s"] <= MAX_GAP_S, traffic
    assert traffic["requests"] - traffic["failed"] >= MIN_SUCCESS * traffic["requests"], traffic


def test_nothing_to_renew_changes_nothing(applied):
    ha = applied
    for extra in ((), ("--all", "--expiring-within", "30d")):
        report = _renew(ha, *extra)
        assert report["complete"] and report["issued"] == [] and report["renewal"] == []
        assert all(not h["uploaded"] and not h["restarted"] for h in report["hosts"]), report


def test_an_interrupted_renewal_converges_when_run_again(applied):
    ha = applied
    served_before = {cp: _served_serial(ha, cp) for cp in CONTROL_PLANES}
    proc = subprocess.Popen([sys.executable, "-m", "kubeforge", *_args(ha, "--all")],
                            cwd=ha.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first_done = ""
    try:
        for line in proc.stderr:  # one line per finished host
            # its summary line, not its "restarting ..." progress lines
            if line.startswith(f"{CONTROL_PLANES[0]}: ") and line.rstrip().endswith("s)"):
                first_done = line
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert "restarted" in first_done, first_done
    assert (_state(ha) / "renewal.json").exists()
    # The first control plane runs its new certificate, the others still the old one.
    assert _served_serial(ha, CONTROL_PLANES[0]) != served_before[CONTROL_PLANES[0]]
    for cp in CONTROL_PLANES[1:]:
        assert _served_serial(ha, cp) == served_before[cp]

    started = time.monotonic()
    report = _renew(ha, "--all")
    REPORT["certs_renew_resumed_s"] = round(time.monotonic() - started, 1)
    assert report["complete"] and report["resumed"] and report["issued"] == [], report
    hosts = {h["host"]: h for h in report["hosts"]}
    assert not hosts[CONTROL_PLANES[0]]["uploaded"] and not hosts[CONTROL_PLANES[0]]["restarted"]
    for cp in CONTROL_PLANES[1:]:
        assert hosts[cp]["restarted"] == COMPONENTS, hosts[cp]
    served = _serials(report, "apiserver")
    for cp in CONTROL_PLANES:
        assert _served_serial(ha, cp) == served[cp], cp
    assert not (_state(ha) / "renewal.json").exists()
    _healthy(ha)
    report = _renew(ha)
    assert all(not h["uploaded"] and not h["restarted"] for h in report["hosts"]), report
    assert set(ha.nodes_ready()) == {*CONTROL_PLANES, *WORKERS}
