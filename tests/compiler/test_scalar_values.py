"""Every literal type in every position that takes a value reaches the compiled files as written.

A `true` once became the string `True` on its way to the files (so `feature_gates { X = true }`
compiled to `X=false`); these tests go from source text to the files on disk for each value
type (string, integer, decimal, quantity, boolean, IP, CIDR, percentage, name) in each
position that accepts it, and check that a type a position cannot hold is an error.
"""

from __future__ import annotations

import pytest
import yaml

from kubeforge.compiler.build import compile_file
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.conftest import FIXED_NOW

#: Literal as written in source -> what a string-valued position must hold.
LABEL_SAFE = {"s": ('"hello"', "hello"), "i": ("007", "007"), "d": ("1.50", "1.50"),
              "u": ("10Gi", "10Gi"), "b": ("true", "true"), "f": ("false", "false"),
              "ip": ("10.1.2.3", "10.1.2.3"), "n": ("blue", "blue")}
ANY_TEXT = {**LABEL_SAFE, "c": ("10.0.0.0/8", "10.0.0.0/8"), "p": ("80%", "80%"),
            "v6": ("fd00::1", "fd00::1"), "c6": ("fd00:10::/56", "fd00:10::/56")}


def body(values: dict) -> str:
    return "{ " + "  ".join(f"{k} = {src}" for k, (src, _) in values.items()) + " }"


def expected(values: dict) -> dict:
    return {k: text for k, (_, text) in values.items()}


def env_lines(values: dict) -> str:
    return "\n".join(f"    env E_{k.upper()} = {src}" for k, (src, _) in values.items())


SOURCE = f"""
cluster lab {{
  kubernetes "1.37.2"
  pki {{ algorithm ecdsa-p256 }}
  feature_gates {{ On = true  Off = false  Quoted = "true"  QuotedOff = "False"  One = 1 }}
  node cp1 {{ address 192.168.56.11  role control-plane worker  labels {body(LABEL_SAFE)} }}
}}

storageclass fast provisioner "example.com/fast" {{ parameters {body(ANY_TEXT)} }}

clusterrole agg {{ aggregate_from {body(LABEL_SAFE)} }}
clusterrole member {{ labels {body(LABEL_SAFE)}  allow get on pods }}

namespace shop {{
  labels {body(LABEL_SAFE)}
  annotations {body(ANY_TEXT)}
  config cfg {body(ANY_TEXT)}
  deployment web {{
    image "nginx:1"
{env_lines(ANY_TEXT)}
    labels {body(LABEL_SAFE)}
    annotations {body(ANY_TEXT)}
    node_selector {body(LABEL_SAFE)}
    port http 80
  }}
  service web -> web port http 80 {{ labels {body(LABEL_SAFE)}  annotations {body(ANY_TEXT)} }}
}}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("values")
    source = base / "values.kf"
    source.write_text(SOURCE)
    result = compile_file(source, base / "build", state_dir=base / "state", now=FIXED_NOW)
    return result.root


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(root, rel, kind, name):
    return next(d for d in docs(root / rel) if d["kind"] == kind and d["metadata"]["name"] == name)


def test_feature_gates_keep_their_boolean_in_every_component(built):
    init = docs(built / "nodes/cp1/etc/kubernetes/kubeadm/init.yaml")
    cluster = next(d for d in init if d["kind"] == "ClusterConfiguration")
    flag = "Off=false,On=true,One=true,Quoted=true,QuotedOff=false"
    for component in ("apiServer", "controllerManager", "scheduler"):
        args = {a["name"]: a["value"] for a in cluster[component]["extraArgs"]}
        assert args["feature-gates"] == flag, component
    gates = {"On": True, "Off": False, "Quoted": True, "QuotedOff": False, "One": True}
    for kind in ("KubeletConfiguration", "KubeProxyConfiguration"):
        doc = next(d for d in init if d["kind"] == kind)
        assert doc["featureGates"] == gates, kind


def test_node_labels_as_written(built):
    init = docs(built / "nodes/cp1/etc/kubernetes/kubeadm/init.yaml")
    reg = next(d for d in init if d["kind"] == "InitConfiguration")["nodeRegistration"]
    args = {a["name"]: a["value"] for a in reg["kubeletExtraArgs"]}
    labels = dict(pair.split("=", 1) for pair in args["node-labels"].split(","))
    assert labels == expected(LABEL_SAFE)


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_namespace_metadata(built, where):
    ns = find(built, "manifests/00-cluster.yaml", "Namespace", "shop")
    values = LABEL_SAFE if where == "labels" else ANY_TEXT
    assert {k: v for k, v in ns["metadata"][where].items() if k in values} == expected(values)


def test_config_data(built):
    assert find(built, "manifests/10-shop.yaml", "ConfigMap", "cfg")["data"] == expected(ANY_TEXT)


def test_env_values(built):
    web = find(built, "manifests/10-shop.yaml", "Deployment", "web")
    env = {e["name"]: e["value"] for e in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {f"E_{k.upper()}": v for k, v in expected(ANY_TEXT).items()}


def test_workload_metadata_and_node_selector(built):
    web = find(built, "manifests/10-shop.yaml", "Deployment", "web")
    pod = web["spec"]["template"]
    labels = {k: v for k, v in web["metadata"]["labels"].items() if k in LABEL_SAFE}
    assert labels == expected(LABEL_SAFE)
    assert {k: v for k, v in pod["metadata"]["labels"].items() if k in LABEL_SAFE} \
        == expected(LABEL_SAFE)
    assert web["metadata"]["annotations"] == expected(ANY_TEXT)
    assert pod["spec"]["nodeSelector"] == expected(LABEL_SAFE)


def test_service_metadata(built):
    svc = find(built, "manifests/10-shop.yaml", "Service", "web")
    assert {k: v for k, v in svc["metadata"]["labels"].items() if k in LABEL_SAFE} \
        == expected(LABEL_SAFE)
    assert svc["metadata"]["annotations"] == expected(ANY_TEXT)


def test_storage_class_parameters(built):
    sc = find(built, "manifests/00-cluster.yaml", "StorageClass", "fast")
    assert sc["parameters"] == expected(ANY_TEXT)


def test_cluster_role_labels_and_aggregation(built):
    member = find(built, "manifests/01-rbac.yaml", "ClusterRole", "member")
    labels = member["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k in LABEL_SAFE} == expected(LABEL_SAFE)
    agg = find(built, "manifests/01-rbac.yaml", "ClusterRole", "agg")
    assert agg["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"] \
        == expected(LABEL_SAFE)


@pytest.mark.parametrize("literal", ["10.0.0.0/8", "80%", "fd00::1", '"a b"'])
def test_label_positions_refuse_what_no_label_value_can_hold(tmp_path, literal):
    source = tmp_path / "bad.kf"
    source.write_text(SOURCE.replace('labels { s = "hello"', f"labels {{ s = {literal}", 1))
    with pytest.raises(DiagnosticError) as info:
        compile_file(source, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW)
    assert any("not a valid label value" in d.message for d in info.value.diagnostics)


@pytest.mark.parametrize("literal", ["yes", "2", '"on"', "10Gi", "10.1.2.3"])
def test_a_feature_gate_that_is_not_a_boolean_is_an_error(tmp_path, literal):
    source = tmp_path / "bad.kf"
    source.write_text(SOURCE.replace("On = true", f"On = {literal}"))
    with pytest.raises(DiagnosticError) as info:
        compile_file(source, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW)
    [diag] = info.value.diagnostics
    assert diag.code == "E105" and "must be true or false" in diag.message
    assert diag.span.line == 5
