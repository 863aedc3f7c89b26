"""Goldens of the kubeadm configs compiled from examples/ha-cluster.kf itself."""

from __future__ import annotations

from pathlib import Path

import yaml
from cluster_helpers import check_golden, fixed_state

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.kubeadm_schema import validate_documents

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ha-cluster.kf"


def test_ha_cluster_example_kubeadm_goldens(tmp_path):
    state = fixed_state(tmp_path)
    result = compile_file(EXAMPLE, tmp_path / "build", state_dir=state)
    configs = sorted((a for a in result.artifacts if "/etc/kubernetes/kubeadm/" in a.path),
                     key=lambda a: a.path)
    assert [a.path.split("/")[1] for a in configs] == ["cp1", "cp2", "cp3", "worker1", "worker2"]
    for art in configs:
        text = art.content.decode()
        assert validate_documents(text) == []
        assert art.secret and art.mode == 0o600
        check_golden(f"example-ha-cluster/{art.node}/{Path(art.path).name}", text)
    init = list(yaml.safe_load_all(next(a for a in configs if a.node == "cp1").content))
    cluster_cfg = next(d for d in init if d["kind"] == "ClusterConfiguration")
    assert cluster_cfg["controlPlaneEndpoint"] == "10.77.0.100:8443"
    assert "10.77.0.100" in cluster_cfg["apiServer"]["certSANs"]
