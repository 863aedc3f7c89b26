"""IPv6-only and dual-stack clusters, from source text to the files kubeadm, haproxy and
keepalived read (examples/ipv6-only.kf, examples/dual-stack.kf and variants of them)."""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from cluster_helpers import host_interface, require_binary
from cryptography import x509

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.kubeadm_schema import validate_documents
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.conftest import EXAMPLES, FIXED_NOW

KUBEADM = "etc/kubernetes/kubeadm"


def build(tmp_path, source, name="main.kf"):
    path = tmp_path / name
    path.write_text(source)
    return compile_file(path, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW).root


@pytest.fixture(scope="module")
def ipv6(tmp_path_factory):
    base = tmp_path_factory.mktemp("ipv6")
    return build(base, (EXAMPLES / "ipv6-only.kf").read_text())


@pytest.fixture(scope="module")
def dual(tmp_path_factory):
    base = tmp_path_factory.mktemp("dual")
    return build(base, (EXAMPLES / "dual-stack.kf").read_text())


def docs(path):
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


def args(pairs):
    return {a["name"]: a["value"] for a in pairs}


def split(hostport: str) -> tuple[str, int]:
    """How Go's net.SplitHostPort (kubeadm) reads host:port: brackets required for IPv6."""
    parts = urlsplit("//" + hostport)
    return parts.hostname, parts.port


# ------------------------------------------------------------------------------ endpoint


def test_an_ipv6_endpoint_keeps_its_brackets_everywhere(ipv6):
    init = docs(ipv6 / "nodes/cp1" / KUBEADM / "init.yaml")
    endpoint = init["ClusterConfiguration"]["controlPlaneEndpoint"]
    assert endpoint == "[fd00:77::100]:8443"
    assert split(endpoint) == ("fd00:77::100", 8443)
    for node in ("cp2", "cp3", "worker1"):
        join = docs(ipv6 / f"nodes/{node}" / KUBEADM / "join.yaml")["JoinConfiguration"]
        assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == endpoint
    for conf in ("kubeconfigs/admin.conf", "kubeconfigs/super-admin.conf",
                 "nodes/cp2/etc/kubernetes/admin.conf"):
        server = yaml.safe_load((ipv6 / conf).read_text())["clusters"][0]["cluster"]["server"]
        assert server == f"https://{endpoint}", conf
    plan = (ipv6 / "plan.json").read_text()
    assert "fd00:77::100:8443" not in plan.replace("[fd00:77::100]:8443", "")


@pytest.mark.parametrize("text, message", [
    ("fd00:77::100:8443", "needs brackets"),
    ("[fd00:77::100", "not host:port"),
    ("[fd00:77::100]:99999", "out of range"),
    ("[10.0.0.1]:6443", "not host:port"),
])
def test_malformed_endpoints_are_errors(tmp_path, text, message):
    source = (EXAMPLES / "ipv6-only.kf").read_text().replace("[fd00:77::100]:8443", text)
    with pytest.raises(DiagnosticError) as info:
        build(tmp_path, source)
    [diag] = info.value.diagnostics
    assert diag.span.line == 6
    assert message in f"{diag.message} {diag.hint}"


def test_upper_case_names_in_endpoint_and_san_are_one_name(tmp_path):
    source = (EXAMPLES / "ipv6-only.kf").read_text().replace(
        '"[fd00:77::100]:8443"', '"API.V6-Lab.Internal:8443"').replace(
        'san "api.v6-lab.internal"', 'san "API.v6-lab.INTERNAL" "*.Apps.V6-Lab.internal"')
    root = build(tmp_path, source)
    cluster = docs(root / "nodes/cp1" / KUBEADM / "init.yaml")["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "api.v6-lab.internal:8443"
    assert cluster["apiServer"]["certSANs"] == ["api.v6-lab.internal",
                                               "*.apps.v6-lab.internal", "fd00:77::100"]


def test_a_san_that_is_no_name_is_an_error(tmp_path):
    source = (EXAMPLES / "ipv6-only.kf").read_text().replace(
        'san "api.v6-lab.internal"', 'san "api_lab!"')
    with pytest.raises(DiagnosticError) as info:
        build(tmp_path, source)
    assert [d.code for d in info.value.diagnostics] == ["E105"]
    assert "neither an IP address nor a DNS name" in info.value.diagnostics[0].message


# ------------------------------------------------------------------------------ IPv6-only


def test_ipv6_only_kubeadm_configs(ipv6):
    init = docs(ipv6 / "nodes/cp1" / KUBEADM / "init.yaml")
    assert validate_documents((ipv6 / "nodes/cp1" / KUBEADM / "init.yaml").read_text()) == []
    assert init["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "fd00:77::11"
    assert args(init["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"])["node-ip"] \
        == "fd00:77::11"
    net = init["ClusterConfiguration"]["networking"]
    assert (net["podSubnet"], net["serviceSubnet"]) == ("fd00:10:244::/56", "fd00:10:96::/112")
    assert init["KubeletConfiguration"]["clusterDNS"] == ["fd00:10:96::a"]
    assert init["KubeProxyConfiguration"]["clusterCIDR"] == "fd00:10:244::/56"
    join = docs(ipv6 / "nodes/cp2" / KUBEADM / "join.yaml")["JoinConfiguration"]
    assert join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == "fd00:77::12"
    assert validate_documents((ipv6 / "nodes/cp2" / KUBEADM / "join.yaml").read_text()) == []


def test_ipv6_only_serving_certificate(ipv6):
    cert = x509.load_pem_x509_certificate(
        (ipv6 / "nodes/cp1/etc/kubernetes/pki/apiserver.crt").read_bytes())
    ips = {str(ip) for ip in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)}
    assert {"fd00:10:96::1", "fd00:77::11", "fd00:77::100"} <= ips


def test_ipv6_only_haproxy_accepts_its_config(ipv6):
    cfg = ipv6 / "nodes/cp1/etc/haproxy/haproxy.cfg"
    text = cfg.read_text()
    assert "bind [::]:8443" in text
    assert "server cp2 [fd00:77::12]:6443 check" in text
    result = subprocess.run([require_binary("haproxy"), "-c", "-f", str(cfg)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ipv6_only_keepalived_accepts_its_config_without_warnings(ipv6, tmp_path):
    text = (ipv6 / "nodes/cp1/etc/keepalived/keepalived.conf").read_text()
    assert "unicast_src_ip fd00:77::11" in text and "authentication" not in text
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text.replace("interface eth0\n", f"interface {host_interface()}\n")
                    .replace('"/etc/keepalived/check_apiserver.sh"',
                             f'"{ipv6}/nodes/cp1/etc/keepalived/check_apiserver.sh"'))
    result = subprocess.run([require_binary("keepalived"), "-t", "-l", "-f", str(conf)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ignoring" not in result.stdout + result.stderr


def test_ipv6_forwarding_is_turned_on(ipv6):
    text = (ipv6 / "nodes/worker1/etc/sysctl.d/99-kubernetes.conf").read_text()
    assert "net.ipv6.conf.default.forwarding = 1" in text
    assert "net.ipv6.conf.all.forwarding = 1" in text


def test_ipv6_external_etcd_urls_are_bracketed(tmp_path):
    source = (EXAMPLES / "ipv6-only.kf").read_text().replace(
        "  node worker1", "  etcd external\n  node e1 { address fd00:77::31  role etcd }\n"
        "  node e2 { address fd00:77::32  role etcd }\n  node e3 { address fd00:77::33  role etcd }\n"
        "  node worker1")
    root = build(tmp_path, source)
    cluster = docs(root / "nodes/cp1" / KUBEADM / "init.yaml")["ClusterConfiguration"]
    assert cluster["etcd"]["external"]["endpoints"] == [
        "https://[fd00:77::31]:2379", "https://[fd00:77::32]:2379", "https://[fd00:77::33]:2379"]
    env = (root / "nodes/e1/etc/default/etcd").read_text()
    assert "ETCD_LISTEN_PEER_URLS=https://[fd00:77::31]:2380" in env.replace('"', "")


# ------------------------------------------------------------------------------ dual-stack


def test_dual_stack_kubeadm_configs(dual):
    init_path = dual / "nodes/cp1" / KUBEADM / "init.yaml"
    assert validate_documents(init_path.read_text()) == []
    init = docs(init_path)
    net = init["ClusterConfiguration"]["networking"]
    assert net["podSubnet"] == "10.244.0.0/16,fd00:10:244::/56"
    assert net["serviceSubnet"] == "10.96.0.0/12,fd00:10:96::/112"
    assert init["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "10.78.0.11"
    assert args(init["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"])["node-ip"] \
        == "10.78.0.11,fd00:78::11"
    assert init["KubeletConfiguration"]["clusterDNS"] == ["10.96.0.10"]
    assert init["KubeProxyConfiguration"]["clusterCIDR"] == "10.244.0.0/16,fd00:10:244::/56"
    for node, v4, v6 in (("cp2", "10.78.0.12", "fd00:78::12"), ("worker1", "10.78.0.21",
                                                                   "fd00:78::21")):
        path = dual / f"nodes/{node}" / KUBEADM / "join.yaml"
        assert validate_documents(path.read_text()) == []
        join = docs(path)["JoinConfiguration"]
        assert args(join["nodeRegistration"]["kubeletExtraArgs"])["node-ip"] == f"{v4},{v6}"


def test_dual_stack_primary_family_follows_the_service_network(tmp_path):
    """IPv6 first: the API servers advertise IPv6 addresses and node-ip lists IPv6 first,
    whatever order each node's addresses were written in."""
    source = (EXAMPLES / "dual-stack.kf").read_text()
    source = source.replace("services 10.96.0.0/12 fd00:10:96::/112",
                            "services fd00:10:96::/112 10.96.0.0/12")
    source = source.replace("pods 10.244.0.0/16 fd00:10:244::/56",
                            "pods fd00:10:244::/56 10.244.0.0/16")
    source = source.replace('endpoint "10.78.0.100:8443"', 'endpoint "[fd00:78::100]:8443"')
    source = source.replace("vip 10.78.0.100", "vip fd00:78::100")
    root = build(tmp_path, source)
    init = docs(root / "nodes/cp1" / KUBEADM / "init.yaml")
    assert init["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "fd00:78::11"
    assert args(init["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"])["node-ip"] \
        == "fd00:78::11,10.78.0.11"
    assert init["KubeletConfiguration"]["clusterDNS"] == ["fd00:10:96::a"]
    assert "unicast_src_ip fd00:78::11" in (root / "nodes/cp1/etc/keepalived/keepalived.conf") \
        .read_text()


def test_dual_stack_serving_certificate_names_both_addresses(dual):
    cert = x509.load_pem_x509_certificate(
        (dual / "nodes/cp2/etc/kubernetes/pki/apiserver.crt").read_bytes())
    ips = {str(ip) for ip in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)}
    assert {"10.96.0.1", "10.78.0.12", "fd00:78::12", "10.78.0.100"} <= ips


# ------------------------------------------------------------------------------ checks


DUAL = (EXAMPLES / "dual-stack.kf").read_text()
V6 = (EXAMPLES / "ipv6-only.kf").read_text()


@pytest.mark.parametrize("source, message", [
    (DUAL.replace("pods 10.244.0.0/16 fd00:10:244::/56", "pods 10.244.0.0/16 10.245.0.0/16"),
     "two IPv4 networks"),
    (DUAL.replace("pods 10.244.0.0/16 fd00:10:244::/56",
                  "pods 10.244.0.0/16 fd00:10:244::/56 fd00:11::/56"), "at most two networks"),
    (DUAL.replace("pods 10.244.0.0/16 fd00:10:244::/56", "pods 10.244.0.0/16"),
     "pod networks are IPv4 but the service networks are IPv4 + IPv6"),
    (DUAL.replace("address 10.78.0.12 fd00:78::12", "address 10.78.0.12"),
     "node `cp2` has no IPv6 address"),
    (V6.replace("services fd00:10:96::/112", "services fd00:10:96::/64"),
     "service network fd00:10:96::/64 is too large for kubeadm"),
    (V6.replace("pods fd00:10:244::/56", "pods fd00:10::/40"),
     "pod network fd00:10::/40 is too large for kubeadm"),
    (V6.replace("pods fd00:10:244::/56", "pods fd00:10:244::/72"),
     "smaller than one node's range (/64)"),
    (V6.replace("address fd00:77::12", "address 10.0.0.12"),
     "node `cp2` has an IPv4 address but the cluster's networks are IPv6 only"),
    (V6.replace("address fd00:77::12", "address fd00:78::12"),
     "address fd00:78::12 is outside the nodes' subnet fd00:77::/64"),
    (V6.replace("services fd00:10:96::/112", "services fd00:10:244::/112"),
     "overlaps the service network"),
    (V6.replace("network {", "network {\n    domain \"x\"").replace("vip fd00:77::100", "vip 10.0.0.100")
     .replace('endpoint "[fd00:77::100]:8443"', 'endpoint "10.0.0.100:8443"'),
     "VIP 10.0.0.100 is IPv4 but the cluster is IPv6"),
])
def test_network_checks(tmp_path, source, message):
    with pytest.raises(DiagnosticError) as info:
        build(tmp_path, source)
    messages = [d.message for d in info.value.diagnostics]
    assert any(message in m for m in messages), messages
