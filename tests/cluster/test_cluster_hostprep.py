"""Host preparation files: modules, sysctls, runtime configuration, package sources."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from cluster_helpers import (
    CONTROL_PLANES,
    ETCD_NODES,
    LB_NODES,
    WORKERS,
    compile_cluster,
    make_cluster,
)
from kubeforge.compiler.emit.hostprep import APT_PIN, APT_SOURCE, KEYRING
from kubeforge.compiler.ir import Install

CONTAINERD = "/etc/containerd/config.toml"


def settings(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_every_kubelet_node_and_only_those(tmp_path):
    nodes = CONTROL_PLANES + WORKERS + ETCD_NODES + LB_NODES
    built = compile_cluster(make_cluster(etcd="external", nodes=nodes, lb_port=6443), tmp_path)
    for n in CONTROL_PLANES + WORKERS:
        assert {"/etc/modules-load.d/k8s.conf", "/etc/sysctl.d/99-kubernetes.conf", CONTAINERD,
                "/etc/crictl.yaml", APT_SOURCE, APT_PIN} <= built.node_paths(n.name)
    for n in ETCD_NODES + LB_NODES:
        assert CONTAINERD not in built.node_paths(n.name)


def test_modules_and_sysctls(tmp_path):
    built = compile_cluster(make_cluster(), tmp_path)
    modules = [line for line in built.text("w1", "/etc/modules-load.d/k8s.conf").splitlines()
               if line and not line.startswith("#")]
    assert modules == ["overlay", "br_netfilter"]
    assert settings(built.text("cp1", "/etc/sysctl.d/99-kubernetes.conf")) == {
        "net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
        "net.bridge.bridge-nf-call-ip6tables": "1"}


@pytest.mark.parametrize("version, pause", [("1.33.5", "3.10"), ("1.34.4", "3.10.1"),
                                            ("1.35.0", "3.10.1"), ("1.37.2", "3.10.2")])
def test_containerd_config(tmp_path, version, pause):
    built = compile_cluster(make_cluster(version), tmp_path)
    config = tomllib.loads(built.text("cp2", CONTAINERD))
    assert config["version"] == 2 and config["disabled_plugins"] == []
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == f"registry.k8s.io/pause:{pause}"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert cri["cni"]["bin_dir"] == "/opt/cni/bin"
    crictl = yaml.safe_load(built.text("cp2", "/etc/crictl.yaml"))
    assert crictl["runtime-endpoint"] == "unix:///run/containerd/containerd.sock"


def test_cri_o_gets_a_drop_in(tmp_path):
    built = compile_cluster(make_cluster(runtime="cri-o"), tmp_path)
    drop_in = tomllib.loads(built.text("w1", "/etc/crio/crio.conf.d/10-kubeforge.conf"))
    assert drop_in["crio"]["runtime"]["cgroup_manager"] == "systemd"
    assert drop_in["crio"]["image"]["pause_image"] == "registry.k8s.io/pause:3.10.2"
    assert CONTAINERD not in built.node_paths("w1")
    crictl = yaml.safe_load(built.text("w1", "/etc/crictl.yaml"))
    assert crictl["runtime-endpoint"] == "unix:///run/crio/crio.sock"


@pytest.mark.parametrize("version, minor", [("1.33.13", "1.33"), ("1.37.2", "1.37")])
def test_package_repository_of_the_declared_minor(tmp_path, version, minor):
    built = compile_cluster(make_cluster(version), tmp_path)
    source = [line for line in built.text("w2", APT_SOURCE).splitlines()
              if line.startswith("deb ")]
    assert source == [f"deb [signed-by={KEYRING}] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /"]
    pin = built.text("w2", APT_PIN)
    assert "Package: kubeadm kubelet kubectl\n" in pin and f"Pin: version {version}-*\n" in pin
    plan = built.ctx.shared["install"]
    assert plan.method == "packages" and plan.keyring == KEYRING
    assert plan.keyring_url == f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/Release.key"
    assert {"kubeadm", "kubelet", "kubectl", "containerd"} <= set(plan.packages)


def test_preinstalled(tmp_path):
    pre = compile_cluster(make_cluster(install=Install("preinstalled")), tmp_path / "pre")
    assert APT_SOURCE not in pre.node_paths("cp1")
    assert pre.ctx.shared["install"].packages == ()
