"""The whole pipeline on examples/ha-cluster.kf: language -> IR -> our files."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml
from cluster_helpers import require_binary
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit.kubeadm import INIT_PATH, JOIN_PATH
from kubeforge.compiler.emit.loadbalancer import HAPROXY_CFG
from kubeforge.compiler.kubeadm_schema import validate_documents

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ha-cluster.kf"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    base = tmp_path_factory.mktemp("example")
    return compile_file(EXAMPLE, base / "out", state_dir=base / "state")


def kubeadm_files(result) -> dict[str, str]:
    return {a.node: a.content.decode() for a in result.artifacts
            if a.host_path in (INIT_PATH, JOIN_PATH)}


def test_kubeadm_configs_validate(example):
    files = kubeadm_files(example)
    assert sorted(files) == ["cp1", "cp2", "cp3", "worker1", "worker2"]
    for node, text in files.items():
        assert validate_documents(text) == [], node
    init = {d["kind"]: d for d in yaml.safe_load_all(files["cp1"])}
    assert init["ClusterConfiguration"]["controlPlaneEndpoint"] == "10.77.0.100:8443"
    assert {"10.77.0.100", "api.ha-lab.internal"} <= set(
        init["ClusterConfiguration"]["apiServer"]["certSANs"])
    ca = x509.load_pem_x509_certificate((example.root / "pki" / "ca.crt").read_bytes())
    spki = ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for node in ("cp2", "cp3", "worker1", "worker2"):
        discovery = yaml.safe_load(files[node])["discovery"]["bootstrapToken"]
        assert discovery["caCertHashes"] == ["sha256:" + hashlib.sha256(spki).hexdigest()]


def test_workers_get_no_ca_key_and_no_kubelet_conf(example):
    for worker in ("worker1", "worker2"):
        paths = {a.host_path for a in example.artifacts if a.node == worker}
        assert not any(p.endswith(".key") for p in paths)
        assert "/etc/kubernetes/kubelet.conf" not in paths
        assert INIT_PATH not in paths


def test_haproxy_accepts_the_example(example):
    result = subprocess.run([require_binary("haproxy"), "-c", "-f",
                             str(example.root / "nodes" / "cp1" / HAPROXY_CFG.lstrip("/"))],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
