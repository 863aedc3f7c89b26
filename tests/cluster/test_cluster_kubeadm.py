"""kubeadm configuration files: shape, strict schema validity per API version, goldens."""

from __future__ import annotations

import copy
import dataclasses
import hashlib

import pytest
import yaml
from cluster_helpers import (
    CONTROL_PLANES,
    ETCD_NODES,
    VIP,
    WORKERS,
    check_golden,
    compile_cluster,
    fixed_state,
    make_cluster,
    node,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kubeforge.compiler.emit.kubeadm import (
    INIT_PATH,
    JOIN_PATH,
    cluster_configuration,
    kubelet_may_set_label,
)
from kubeforge.compiler.emit.render import dump_yaml_documents, go_duration
from kubeforge.compiler.ir import NodeTaint
from kubeforge.compiler.kubeadm_schema import validate_document, validate_documents

VERSIONS = ["1.33.5", "1.34.1", "1.35.0", "1.36.3", "1.37.2"]
LB_MODES = ["keepalived-haproxy", "kube-vip", "local-proxy", "external"]


def docs(text: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(text)}


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    """3 control planes + 2 workers, stacked etcd, Kubernetes 1.37, fixed state."""
    base = tmp_path_factory.mktemp("ha")
    return compile_cluster(make_cluster(), base, fixed_state(base))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("etcd", ["stacked", "external"])
def test_every_document_validates_strictly(tmp_path, version, etcd):
    built = compile_cluster(make_cluster(version, etcd=etcd), tmp_path)
    files = [a for a in built.ctx.artifacts if a.host_path in (INIT_PATH, JOIN_PATH)]
    assert len(files) == 5  # one per control plane and worker, none on etcd nodes
    api = "kubeadm.k8s.io/v1beta4"
    for art in files:
        text = art.content.decode()
        assert validate_documents(text) == [], art.path
        assert {d["apiVersion"] for d in yaml.safe_load_all(text)
                if d["apiVersion"].startswith("kubeadm")} == {api}


@pytest.mark.parametrize("lb_mode", LB_MODES)
def test_documents_validate_for_every_load_balancer(tmp_path, lb_mode):
    built = compile_cluster(make_cluster(lb_mode=lb_mode), tmp_path)
    for art in built.ctx.artifacts:
        if art.host_path in (INIT_PATH, JOIN_PATH):
            assert validate_documents(art.content.decode()) == [], art.path


def test_misspelt_fields_are_caught(ha):
    init = list(yaml.safe_load_all(ha.text("cp1", INIT_PATH)))
    cluster_cfg = copy.deepcopy(init[1])
    cluster_cfg["networking"]["podSubnett"] = cluster_cfg["networking"].pop("podSubnet")
    problems = validate_document(cluster_cfg)
    assert any("podSubnett" in p for p in problems), problems

    kubelet = dict(init[2], cgroupDriverr="systemd")
    assert any("cgroupDriverr" in p for p in validate_document(kubelet))

    join = yaml.safe_load(ha.text("w1", JOIN_PATH))
    join["discovery"]["bootstrapToken"]["caCertHash"] = ["sha256:" + "0" * 64]
    assert any("caCertHash" in p for p in validate_document(join))

    # The whole-stream entry point reports the same thing with the document's position.
    broken = dump_yaml_documents([init[0], cluster_cfg])
    assert any(p.startswith("doc 1 (ClusterConfiguration)") and "podSubnett" in p
               for p in validate_documents(broken))


def test_kubeadm_schema_rejects_old_shapes(ha):
    init = list(yaml.safe_load_all(ha.text("cp1", INIT_PATH)))
    as_map = copy.deepcopy(init[0])
    as_map["nodeRegistration"]["kubeletExtraArgs"] = {"node-ip": "10.0.0.11"}  # v1beta3 shape
    assert validate_document(as_map)
    assert validate_document(dict(init[1], apiVersion="kubeadm.k8s.io/v1beta3"))
    assert validate_documents("") == ["no document"]


def test_init_configuration(ha):
    token = ha.ctx.shared["pki"].state.bootstrap_token()
    d = docs(ha.text("cp1", INIT_PATH))
    init, cc = d["InitConfiguration"], d["ClusterConfiguration"]
    assert init["bootstrapTokens"] == [{
        "token": token, "ttl": "24h0m0s", "usages": ["signing", "authentication"],
        "groups": ["system:bootstrappers:kubeadm:default-node-token"],
        "description": "kubeforge join token for cluster lab"}]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.0.0.11", "bindPort": 6443}
    reg = init["nodeRegistration"]
    assert reg["name"] == "cp1"
    assert reg["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert reg["taints"] == [{"key": "node-role.kubernetes.io/control-plane",
                              "effect": "NoSchedule"}]
    assert "certificateKey" not in init
    assert cc["clusterName"] == "lab"
    assert cc["kubernetesVersion"] == "v1.37.2"
    assert cc["controlPlaneEndpoint"] == f"{VIP}:8443"
    assert cc["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                "dnsDomain": "cluster.local"}
    assert VIP in cc["apiServer"]["certSANs"]
    assert "api.lab.internal" in cc["apiServer"]["certSANs"]
    assert cc["etcd"] == {"local": {"dataDir": "/var/lib/etcd"}}
    assert cc["encryptionAlgorithm"] == "ECDSA-P256"
    assert cc["certificateValidityPeriod"] == "8760h0m0s"
    assert cc["caCertificateValidityPeriod"] == "87600h0m0s"
    kubelet = d["KubeletConfiguration"]
    assert kubelet["cgroupDriver"] == "systemd"
    assert kubelet["clusterDNS"] == ["10.96.0.10"]
    assert d["KubeProxyConfiguration"]["clusterCIDR"] == "10.244.0.0/16"


def test_sans_in_config_match_the_certificates(ha):
    """kubeadm checks existing certificates against certSANs: both must agree."""
    cc = docs(ha.text("cp1", INIT_PATH))["ClusterConfiguration"]
    cert = x509.load_pem_x509_certificate(
        ha.path("cp1", "/etc/kubernetes/pki/apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert set(cc["apiServer"]["certSANs"]) <= names


def test_join_configurations(ha):
    bundle = ha.ctx.shared["pki"]
    ca = x509.load_pem_x509_certificate(ha.path("cp1", "/etc/kubernetes/pki/ca.crt").read_bytes())
    spki = ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    expected_hash = "sha256:" + hashlib.sha256(spki).hexdigest()
    assert bundle.ca_cert_hash == expected_hash
    for name in ("cp2", "cp3", "w1", "w2"):
        join = yaml.safe_load(ha.text(name, JOIN_PATH))
        assert join["kind"] == "JoinConfiguration"
        assert join["discovery"]["bootstrapToken"] == {
            "apiServerEndpoint": f"{VIP}:8443", "token": bundle.state.bootstrap_token(),
            "caCertHashes": [expected_hash]}
        if name.startswith("cp"):
            assert join["controlPlane"] == {"localAPIEndpoint": {
                "advertiseAddress": str(ha.cluster.nodes[int(name[2]) - 1].address),
                "bindPort": 6443}}
        else:
            assert "controlPlane" not in join
            assert join["nodeRegistration"]["taints"] == []
        assert INIT_PATH not in ha.node_paths(name)


def test_config_files_are_secret(ha):
    for art in ha.ctx.artifacts:
        if art.host_path in (INIT_PATH, JOIN_PATH):
            assert art.secret and art.mode == 0o600
            assert (ha.root / art.path).stat().st_mode & 0o777 == 0o600


def test_workers_get_no_ca_key_and_no_kubelet_conf(ha):
    for worker in ("w1", "w2"):
        paths = ha.node_paths(worker)
        assert not any(p.endswith(".key") for p in paths), paths
        assert "/etc/kubernetes/kubelet.conf" not in paths
        # worker join preflight also refuses a pre-placed caCertPath
        assert "/etc/kubernetes/pki/ca.crt" not in paths


def test_external_etcd_section(tmp_path):
    built = compile_cluster(make_cluster(etcd="external"), tmp_path)
    cc = docs(built.text("cp1", INIT_PATH))["ClusterConfiguration"]
    assert cc["etcd"] == {"external": {
        "endpoints": [f"https://{n.address}:2379" for n in ETCD_NODES],
        "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
        "certFile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "keyFile": "/etc/kubernetes/pki/apiserver-etcd-client.key"}}
    for cp in CONTROL_PLANES:
        for f in ("etcd/ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key"):
            assert built.path(cp.name, f"/etc/kubernetes/pki/{f}").exists()


@pytest.mark.parametrize("algorithm, expected", [
    ("rsa-2048", "RSA-2048"), ("rsa-3072", "RSA-3072"), ("rsa-4096", "RSA-4096"),
    ("ecdsa-p256", "ECDSA-P256"), ("ecdsa-p384", "ECDSA-P384")])
def test_encryption_algorithm(algorithm, expected):
    cluster = make_cluster("1.34.1",
                           pki=dataclasses.replace(make_cluster().pki, algorithm=algorithm))
    cc = cluster_configuration(cluster, ())
    assert cc["encryptionAlgorithm"] == expected
    assert validate_document(cc) == []


def test_taints_labels_and_feature_gates(tmp_path):
    nodes = (
        node("cp1", "10.0.0.11", "control-plane", "worker"),
        node("w1", "10.0.0.21", "worker",
             labels=(("disk", "ssd"), ("node-role.kubernetes.io/storage", ""),
                     ("topology.kubernetes.io/zone", "a")),
             taints=(NodeTaint("dedicated", "db", "NoSchedule"),)),
    )
    cluster = make_cluster(nodes=nodes, lb_mode="external", endpoint_host="api.lab.internal",
                           endpoint_port=6443, feature_gates=(("InPlacePodVerticalScaling", True),))
    built = compile_cluster(cluster, tmp_path)
    init = docs(built.text("cp1", INIT_PATH))
    assert init["InitConfiguration"]["nodeRegistration"]["taints"] == []
    assert init["ClusterConfiguration"]["apiServer"]["extraArgs"] == [
        {"name": "feature-gates", "value": "InPlacePodVerticalScaling=true"}]
    assert init["KubeletConfiguration"]["featureGates"] == {"InPlacePodVerticalScaling": True}
    reg = yaml.safe_load(built.text("w1", JOIN_PATH))["nodeRegistration"]
    assert reg["taints"] == [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    assert reg["kubeletExtraArgs"] == [
        {"name": "node-ip", "value": "10.0.0.21"},
        {"name": "node-labels", "value": "disk=ssd,topology.kubernetes.io/zone=a"}]
    # the kubelet may not give itself a node-role label: applied through the API instead
    assert built.ctx.shared["node_labels_after_join"] == {
        "w1": (("node-role.kubernetes.io/storage", ""),)}


@pytest.mark.parametrize("key, allowed", [
    ("app", True), ("example.com/rack", True), ("kubernetes.io/hostname", True),
    ("node-role.kubernetes.io/worker", False), ("kubernetes.io/role", False),
    ("foo.kubelet.kubernetes.io/x", True), ("node.kubernetes.io/instance-type", True),
    ("k8s.io/x", False),
])
def test_kubelet_label_rules(key, allowed):
    assert kubelet_may_set_label(key) is allowed


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (90, "1m30s"),
                                           (86400, "24h0m0s"), (3661, "1h1m1s")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_deterministic_output(tmp_path):
    state = fixed_state(tmp_path)
    first = compile_cluster(make_cluster(), tmp_path / "a", state)
    second = compile_cluster(make_cluster(), tmp_path / "b", state)
    for path in ("nodes/cp1" + INIT_PATH, "nodes/w2" + JOIN_PATH):
        assert first.artifact(path).content == second.artifact(path).content


@pytest.mark.parametrize("version", ["1.33.13", "1.37.2"])
def test_golden_kubeadm_configs(tmp_path, version):
    built = compile_cluster(make_cluster(version), tmp_path, fixed_state(tmp_path))
    for n in CONTROL_PLANES + WORKERS:
        path = INIT_PATH if n == CONTROL_PLANES[0] else JOIN_PATH
        check_golden(f"v{version}/{n.name}/{path.rsplit('/', 1)[1]}", built.text(n.name, path))
