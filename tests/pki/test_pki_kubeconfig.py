"""Kubeconfigs (reference section 2): placement, server URLs, embedded client identities,
parsed by a real kubectl."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki_helpers import build, make_cluster

KUBE = "etc/kubernetes"


def load(built, rel: str) -> dict:
    return yaml.safe_load(built.read(rel))


def client_cert(doc: dict) -> x509.Certificate:
    pem = base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    return x509.load_pem_x509_certificate(pem)


def identity(doc: dict) -> tuple[str, tuple[str, ...]]:
    subject = client_cert(doc).subject
    return (subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            tuple(a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)))


def server(doc: dict) -> str:
    return doc["clusters"][0]["cluster"]["server"]


def test_files_per_node(built):
    files = built.files()
    confs = {p for p in files if p.endswith(".conf")}
    assert confs == {
        "kubeconfigs/admin.conf", "kubeconfigs/super-admin.conf",
        *(f"nodes/{cp}/{KUBE}/{f}" for cp in ("cp1", "cp2", "cp3")
          for f in ("admin.conf", "controller-manager.conf", "scheduler.conf")),
        # kubeadm init writes these two on the first control plane only; joins must not
        # find kubelet.conf (preflight) and super-admin.conf is a break-glass credential.
        f"nodes/cp1/{KUBE}/super-admin.conf", f"nodes/cp1/{KUBE}/kubelet.conf",
    }
    assert not any(p.startswith("nodes/w1/") for p in files)


def test_modes_are_private(built):
    for art in built.ctx.artifacts:
        if art.path.endswith(".conf"):
            assert art.secret and art.mode == 0o600
            assert (built.root / art.path).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("rel,cn,orgs,url", [
    ("kubeconfigs/admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",),
     "https://api.lab.internal:6443"),
    ("kubeconfigs/super-admin.conf", "kubernetes-super-admin", ("system:masters",),
     "https://api.lab.internal:6443"),
    (f"nodes/cp2/{KUBE}/admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",),
     "https://api.lab.internal:6443"),
    (f"nodes/cp2/{KUBE}/controller-manager.conf", "system:kube-controller-manager", (),
     "https://10.0.0.12:6443"),
    (f"nodes/cp3/{KUBE}/scheduler.conf", "system:kube-scheduler", (), "https://10.0.0.13:6443"),
    (f"nodes/cp1/{KUBE}/kubelet.conf", "system:node:cp1", ("system:nodes",),
     "https://10.0.0.11:6443"),  # ControlPlaneKubeletLocalMode: its own apiserver
])
def test_identity_and_server(built, rel, cn, orgs, url):
    doc = load(built, rel)
    assert identity(doc) == (cn, orgs)
    assert server(doc) == url
    assert doc["clusters"][0]["name"] == "lab"
    assert doc["users"][0]["name"] == cn
    assert doc["current-context"] == f"{cn}@lab"
    assert doc["contexts"][0]["context"] == {"cluster": "lab", "user": cn}
    ca_pem = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca_pem == built.read("pki/ca.crt")
    cert = client_cert(doc)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_user_and_node_admin_conf_are_identical(built):
    assert built.read("kubeconfigs/admin.conf") == built.read(f"nodes/cp3/{KUBE}/admin.conf")
    assert built.read("kubeconfigs/super-admin.conf") == \
        built.read(f"nodes/cp1/{KUBE}/super-admin.conf")


@pytest.mark.parametrize("version", ["1.33.1", "1.35.0", "1.37.2"])
def test_kubelet_conf_of_the_first_control_plane_uses_its_own_apiserver(tmp_path, version):
    # ControlPlaneKubeletLocalMode: on by default in every supported minor (gate gone in 1.36).
    built = build(make_cluster(version), tmp_path)
    assert server(load(built, f"nodes/cp1/{KUBE}/kubelet.conf")) == "https://10.0.0.11:6443"


def test_ipv6_and_missing_endpoint_urls(tmp_path):
    from pki_helpers import node
    cluster = make_cluster(endpoint_host=None, nodes=(
        node("cp1", "fd00::11", "control-plane"), node("cp2", "fd00::12", "control-plane")))
    built = build(cluster, tmp_path)
    assert server(load(built, "kubeconfigs/admin.conf")) == "https://[fd00::11]:6443"
    assert server(load(built, f"nodes/cp2/{KUBE}/scheduler.conf")) == "https://[fd00::12]:6443"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
def test_kubectl_parses_every_kubeconfig(built):
    confs = sorted(p for p in built.files() if p.endswith(".conf"))
    assert len(confs) == 13
    for rel in confs:
        result = subprocess.run(
            ["kubectl", "config", "view", "--kubeconfig", str(built.root / rel), "--raw",
             "-o", "jsonpath={.current-context} {.clusters[0].cluster.server}"],
            capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        context, url = result.stdout.split()
        assert context.endswith("@lab") and url.startswith("https://")
