"""The versions table against each supported version's own kubeadm (built from source).

For every minor upstream supports (every supported minor with KUBEFORGE_KUBEADM_ALL=1):
kubeadm validates kubeforge's init and join configs of every example, `kubeadm config images
list` names exactly the images kubeforge plans for the cluster, and the config APIs, key
algorithms and feature gates kubeadm accepts are the table's. For every supported minor the
same facts are read from the release's source (tests/support/kubeadm_source.py), a reader
that the binary tests prove on the minors that have both; facts kubeadm cannot print (kubelet
defaults and flags) come from the source too. A wrong table entry fails here. The first run
builds each kubeadm (minutes each; cached with the bundle builds, README "Tests").
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml

from kubeforge.compiler import versions
from kubeforge.compiler.emit.kubeadm import INIT_PATH, JOIN_PATH
from kubeforge.compiler.lower_version import KUBEADM_ALGORITHMS
from tests.support import kubeadm_source
from tests.support.example_builds import EXAMPLE_FILES, compile_example
from tests.support.kubeadm_build import binary_releases, kubeadm, kubernetes_source, module_source

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RELEASES = [versions.RELEASES[m] for m in versions.SUPPORTED_MINORS]
BUILT = binary_releases()


def run(binary: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)


@pytest.fixture(scope="module", params=RELEASES, ids=[f"1.{r.minor}" for r in RELEASES])
def release(request):
    """Every supported minor (the source tests)."""
    return request.param


@pytest.fixture(scope="module", params=BUILT, ids=[f"kubeadm-1.{r.minor}" for r in BUILT])
def built(request):
    """The minors whose kubeadm is built (the binary tests)."""
    return request.param


@pytest.fixture(scope="module")
def binary(built):
    return kubeadm(built.newest)


@pytest.fixture(scope="module")
def compiled(built, tmp_path_factory):
    """Every example compiled for the release: {example name: BuildResult}."""
    out = tmp_path_factory.mktemp(f"examples-{built.minor}")
    return {e.stem: compile_example(e, out / e.stem, built.newest) for e in EXAMPLE_FILES}


def kubeadm_configs(result) -> list:
    return [a for a in result.artifacts if a.host_path in (INIT_PATH, JOIN_PATH)]


def test_kubeadm_validates_every_init_and_join_config(binary, compiled):
    checked = 0
    for name, result in compiled.items():
        for art in kubeadm_configs(result):
            done = run(binary, "config", "validate", "--config", str(result.root / art.path))
            assert done.returncode == 0, f"{name} {art.path}: {done.stderr}"
            assert "deprecated" not in done.stderr.lower(), done.stderr
            checked += 1
    assert checked >= len(compiled) * 2


def planned_images(result) -> set[str]:
    """The images kubeforge's artifacts name: the pause image of the runtime config, and
    every image of the version table for this cluster (what a bundle imports)."""
    cluster = result.program.cluster
    runtime = next(a for a in result.artifacts if a.host_path == "/etc/containerd/config.toml")
    sandbox = tomllib.loads(runtime.content.decode())[
        "plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"]
    images = set(versions.kubeadm_images(cluster.version, stacked_etcd=cluster.etcd == "stacked"))
    assert sandbox in images
    return images


def test_images_list_is_what_kubeforge_plans(built, binary, compiled):
    default = run(binary, "config", "images", "list", "--kubernetes-version", f"v{built.newest}")
    assert default.returncode == 0, default.stderr
    assert tuple(default.stdout.split()) == versions.kubeadm_images(built.newest)
    for name, result in compiled.items():
        init = next(a for a in kubeadm_configs(result) if a.host_path == INIT_PATH)
        listed = run(binary, "config", "images", "list", "--config", str(result.root / init.path))
        assert listed.returncode == 0, listed.stderr
        assert set(listed.stdout.split()) == planned_images(result), name


def minimal_config(row, api: str, tmp_path: Path, **fields) -> Path:
    doc = {"apiVersion": api, "kind": "ClusterConfiguration",
           "kubernetesVersion": f"v{row.newest}", **fields}
    path = tmp_path / f"{api.rsplit('/', 1)[1]}-{len(fields)}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("api", ["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4",
                                 "kubeadm.k8s.io/v1"])
def test_config_apis(built, binary, api, tmp_path):
    path = minimal_config(built, api, tmp_path)
    done = run(binary, "config", "validate", "--config", str(path))
    assert (done.returncode == 0) == (api in built.kubeadm_apis), done.stderr
    if api in built.kubeadm_experimental_apis:
        assert "experimental" in done.stderr
        allowed = run(binary, "config", "validate", "--allow-experimental-api", "--config",
                      str(path))
        assert allowed.returncode == 0, allowed.stderr
    assert versions.KUBEADM_API in built.kubeadm_apis


@pytest.mark.parametrize("algorithm", sorted(KUBEADM_ALGORITHMS.values()))
def test_encryption_algorithms(built, binary, algorithm, tmp_path):
    path = minimal_config(built, versions.KUBEADM_API, tmp_path, encryptionAlgorithm=algorithm)
    done = run(binary, "config", "validate", "--config", str(path))
    assert (done.returncode == 0) == (algorithm in built.encryption_algorithms), done.stderr


def test_feature_gates(built, binary):
    text = run(binary, "init", "--help").stdout
    block = text.split("--feature-gates", 1)[1].split("\n  -", 1)[0]
    assert tuple(sorted(re.findall(r"([A-Z][A-Za-z0-9]+)=true\|false", block))) == \
        tuple(sorted(built.kubeadm_feature_gates))


# ---------------------------------------------------------------- facts from the source


def test_kubeadm_facts_from_the_source(release):
    """What the binary tests ask kubeadm, read from the release's source: every minor, so
    the out-of-support ones are checked without building their kubeadm."""
    root = kubernetes_source(release.newest)
    assert kubeadm_source.image_tags(root, release.minor) == {
        "etcd": release.etcd, "pause": release.pause, "coredns": release.coredns}
    assert kubeadm_source.feature_gates(root) == tuple(sorted(release.kubeadm_feature_gates))
    assert kubeadm_source.encryption_algorithms(root) == \
        tuple(sorted(release.encryption_algorithms))
    assert kubeadm_source.config_apis(root) == \
        (release.kubeadm_apis, release.kubeadm_experimental_apis)
    previous = versions.RELEASES.get(release.minor - 1)
    before = kubeadm_source.feature_gates(kubernetes_source(
        previous.newest if previous else "1.32.13"))
    assert set(before) - set(release.kubeadm_feature_gates) == \
        set(release.kubeadm_feature_gates_removed)


def kubelet_flags(version: str) -> set[str]:
    root = kubernetes_source(version)
    files = [*(root / "cmd/kubelet/app").rglob("*.go"), root / "pkg/kubelet/config/flags.go"]
    pattern = re.compile(r'fs\.\w*Var\w*\([^"]*"([a-z0-9-]+)"')
    return {m for f in files if f.exists() and not f.name.endswith("_test.go")
            for m in pattern.findall(f.read_text())}


def test_kubelet_flags_removed(release):
    have = kubelet_flags(release.newest)
    assert not set(release.kubelet_flags_removed) & have
    previous = versions.RELEASES.get(release.minor - 1)
    before = kubelet_flags(previous.newest if previous else "1.32.13")
    assert before - have == set(release.kubelet_flags_removed)
    for flag in ("node-ip", "node-labels"):  # what kubeforge passes (kubeletExtraArgs)
        assert flag in have


def test_fail_cgroup_v1_default(release):
    text = (kubernetes_source(release.newest)
            / "pkg/kubelet/apis/config/v1beta1/defaults.go").read_text()
    default = re.search(r"obj\.FailCgroupV1 = ptr\.To\((true|false)\)", text)
    assert default and (default.group(1) == "true") is release.fail_cgroup_v1


def kubelet_client_without_org(version: str) -> bool:
    text = (kubernetes_source(version) / "cmd/kubeadm/app/phases/certs/certlist.go").read_text()
    body = text.split("func KubeadmCertKubeletClient()", 1)[1].split("\n}\n", 1)[0]
    return "Organization" not in body


def test_kubelet_api_admin_patch(release):
    """The first patch without O=kubeadm:cluster-admins is the table's, and its kubeadm binds
    the user to system:kubelet-api-admin instead."""
    since = release.kubelet_api_admin_since_patch
    assert kubelet_client_without_org(f"1.{release.minor}.{since}")
    if since > 0:
        assert not kubelet_client_without_org(f"1.{release.minor}.{since - 1}")
    newest = kubernetes_source(release.newest)
    tls = (newest / "cmd/kubeadm/app/phases/bootstraptoken/node/tlsbootstrap.go").read_text()
    assert ("func AllowAPIServerToAccessKubeletAPI" in tls) is \
        versions.kubelet_api_admin_binding(release.newest)


def test_min_external_etcd(release):
    text = (kubernetes_source(release.newest) / "cmd/kubeadm/app/constants/constants.go"
            ).read_text()
    assert f'MinExternalEtcdVersion = "{release.min_external_etcd}"' in text


def test_containerd_versions():
    """The containerd column is containerd's own 'Kubernetes Support' table."""
    module, version = versions.CONTAINERD_RELEASES.split("@")
    text = (module_source(module, version) / "RELEASES.md").read_text()
    rows = dict(re.findall(r"^\| (1\.\d+)\s+\| ([0-9.+, ]+?)\s+\| v1", text, re.M))
    for release in RELEASES:
        listed = tuple(v.strip().rstrip("+") for v in rows[f"1.{release.minor}"].split(","))
        assert listed == release.containerd, release.minor
