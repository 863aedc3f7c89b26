"""End to end, ``kubeforge verify`` on sandbox hosts: external etcd on node1-3 with keepalived
+ haproxy on node1-2 (the deploy e2e's cluster), applied up to etcd on those three hosts only
(``--limit``). verify passes for them; hosts broken on purpose (a private key readable by
all, a stopped etcd member, a server certificate without the node's address) make it fail
naming each host and check; an ansible apply repairs them and verify passes again.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from tests.ansible.test_ansible_e2e import clean
from tests.deploy.test_deploy_e2e import Cluster

pytestmark = pytest.mark.e2e

LIMIT = "node1,node2,node3"
PKI = "/etc/kubernetes/pki/etcd"


@pytest.fixture(scope="module")
def lab(sandbox, tmp_path_factory):
    c = Cluster(sandbox, tmp_path_factory.mktemp("verify"))
    clean(c)
    c.cli("apply", "--until", "etcd", "--limit", LIMIT)  # ssh target: the fast way to a cluster
    yield c
    clean(c)
    c.ssh.close()


@pytest.fixture(autouse=True)
def _wide_tables(monkeypatch):
    """rich sizes its tables to COLUMNS: wide enough to keep each row on one line."""
    monkeypatch.setenv("COLUMNS", "200")


def verify(lab, *extra: str, check: int) -> dict:
    proc = lab.cli("verify", "--until", "etcd", "--limit", LIMIT, "--json", *extra, check=check)
    return json.loads(proc.stdout)


def failed(report: dict) -> set[tuple[str, str]]:
    return {(c["node"], c["check"]) for c in report["checks"] if c["status"] == "failed"}


def test_limit_is_checked_like_applys(lab):
    proc = lab.cli("verify", "--limit", "node1,node9", check=2)
    assert "--limit names hosts the plan lacks: node9" in proc.stderr


def test_verify_passes_on_the_applied_hosts(lab):
    report = verify(lab, check=0)
    assert report["ok"]
    # node4 and node5 were left out of the apply, and so out of the checks.
    assert {c["node"] for c in report["checks"]} == {"node1", "node2", "node3"}
    checks = {(c["node"], c["check"]) for c in report["checks"] if c["status"] == "passed"}
    assert ("node3", f"certificate {PKI}/server.crt") in checks
    assert ("node1", f"file {PKI}/peer.key") in checks
    assert ("node2", "service etcd") in checks and ("node1", "service haproxy") in checks


def _cert_without(lab, host: str, address: str) -> str:
    """``host``'s etcd server certificate re-issued by the same CA for the same key, with
    every SAN but ``address``: a valid certificate, just not for that node."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    original = x509.load_pem_x509_certificate(
        (lab.build / f"nodes/{host}{PKI}/server.crt").read_bytes())
    ca_key = serialization.load_pem_private_key(
        (lab.state / "pki/etcd/ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((lab.state / "pki/etcd/ca.crt").read_bytes())
    sans = original.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    kept = [n for n in sans if str(n.value) != address]
    assert len(kept) == len(list(sans)) - 1
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(original.subject)
               .issuer_name(ca.subject).public_key(original.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=365))
               .add_extension(x509.SubjectAlternativeName(kept), critical=False))
    for ext in original.extensions:
        if not isinstance(ext.value, (x509.SubjectAlternativeName, x509.SubjectKeyIdentifier,
                                      x509.AuthorityKeyIdentifier)):
            builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_broken_hosts_are_named_then_apply_repairs_them(lab):
    node3 = lab.hosts["node3"].address
    pem = _cert_without(lab, "node3", node3)
    lab.ssh("node1", f"chmod 0644 {PKI}/peer.key")
    lab.ssh("node2", "systemctl stop etcd")
    lab.ssh("node3", f"cat > {PKI}/server.crt <<'EOF'\n{pem}EOF\n")

    report = verify(lab, check=1)
    assert not report["ok"]
    bad = failed(report)
    messages = {(c["node"], c["check"]): c["message"] for c in report["checks"]}
    key = ("node1", f"file {PKI}/peer.key")
    assert key in bad and "has mode 0644, expected 0600" in messages[key]
    assert ("node2", "service etcd") in bad and "not running" in messages[("node2", "service etcd")]
    assert ("node2", "port_listening 2379") in bad
    san = ("node3", f"certificate {PKI}/server.crt")
    assert san in bad and f"lacks SANs ['{node3}']" in messages[san]
    assert {check for node, check in bad if node == "node1"} == {f"file {PKI}/peer.key"}

    # The table a person reads names the same hosts and checks (wide enough not to truncate).
    proc = lab.cli("verify", "--until", "etcd", "--limit", LIMIT, "--failed-only", check=None)
    assert proc.returncode == 1
    tables = dict(re.findall(r"^verify (node\d)\s*\n(.*?)(?=^verify |\Z)", proc.stdout,
                             re.M | re.S))
    assert set(tables) == {"node1", "node2", "node3"}, proc.stdout
    assert re.search(rf"file {PKI}/peer\.key\s.*failed", tables["node1"])
    assert re.search(r"service etcd\s.*failed", tables["node2"])
    assert re.search(rf"certificate {PKI}/server\.crt\s.*failed", tables["node3"])
    assert re.search(r"\d+ checks: \d+ passed, [1-9]\d* failed", proc.stdout)

    proc = lab.cli("apply", "--target", "ansible", "--until", "etcd", "--limit", LIMIT)
    for step in ("node1/pki/upload-etc-kubernetes-pki-etcd-peer.key",
                 "node2/etcd/service-etcd",
                 "node3/pki/upload-etc-kubernetes-pki-etcd-server.crt"):
        assert re.search(rf"^changed\s+{re.escape(step)}\s", proc.stderr, re.M), proc.stderr
    report = verify(lab, check=0)
    assert report["ok"] and not failed(report)
