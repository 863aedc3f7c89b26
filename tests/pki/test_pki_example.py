"""The PKI of examples/ha-cluster.kf, lowered by the real language front end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from kubeforge.compiler.ir import Program
from pki_helpers import NOW, build

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ha-cluster.kf"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} is not there")
    from kubeforge.compiler.lower import load_program
    program: Program = load_program(EXAMPLE)[0]
    return program.cluster, build(program.cluster, tmp_path_factory.mktemp("example"))


def test_example_apiserver_certificates(example):
    cluster, built = example
    for cp in cluster.control_planes:
        pki_dir = built.root / f"nodes/{cp.name}/etc/kubernetes/pki"
        cert = x509.load_pem_x509_certificate((pki_dir / "apiserver.crt").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
        dns = set(san.get_values_for_type(x509.DNSName))
        assert {str(cp.address), str(cluster.kubernetes_service_ip),
                str(cluster.loadbalancer.vip)} <= ips
        assert {cp.name, f"kubernetes.default.svc.{cluster.domain}"} | \
            set(cluster.pki.extra_sans) - ips <= dns
        result = subprocess.run(
            ["openssl", "verify", "-attime", str(int(NOW.timestamp())), "-CAfile",
             str(pki_dir / "ca.crt"), "-purpose", "sslserver", str(pki_dir / "apiserver.crt")],
            capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    for worker in cluster.workers:
        assert not (built.root / f"nodes/{worker.name}/etc/kubernetes/pki").exists()


def test_example_admin_kubeconfig_points_at_the_endpoint(example):
    cluster, built = example
    doc = yaml.safe_load((built.root / "kubeconfigs/admin.conf").read_bytes())
    assert doc["clusters"][0]["name"] == cluster.name
    assert doc["clusters"][0]["cluster"]["server"] == f"https://{cluster.endpoint}"
