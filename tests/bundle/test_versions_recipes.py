"""Version table, version parsing and the exact build flags of the recipes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from kubeforge.bundle import recipes
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.gomod import parse_gomod
from kubeforge.bundle.versions import (DEFAULT_KUBERNETES, companions, etcd_module_version,
                                       parse_kubernetes)

DATA = Path(__file__).parent / "data"


def test_versions_parse_with_or_without_v():
    assert parse_kubernetes("v1.37.2").tag == "v1.37.2"
    assert parse_kubernetes("1.37.2").staging == "v0.37.2"
    assert str(parse_kubernetes(DEFAULT_KUBERNETES)) == DEFAULT_KUBERNETES
    for bad in ("1.37", "v1.37.2-rc.0", "2.0.0", "latest"):
        with pytest.raises(BundleError, match="not a Kubernetes release version"):
            parse_kubernetes(bad)


def test_unknown_minor_names_the_known_ones():
    with pytest.raises(BundleError, match=r"Kubernetes 1\.29 .*1\.37"):
        companions(parse_kubernetes("1.29.0"))


def test_etcd_image_tag_maps_to_its_module_version():
    assert etcd_module_version("3.7.0-0") == "v3.7.0"
    assert etcd_module_version("3.5.21") == "v3.5.21"
    with pytest.raises(BundleError):
        etcd_module_version("latest")


def test_kubernetes_stamps_are_the_release_ones():
    version = parse_kubernetes("1.37.2")
    published = datetime(2026, 10, 27, 12, 1, 4, tzinfo=timezone.utc)
    recipe = recipes.kubernetes(version, parse_gomod((DATA / "kubernetes-v1.37.2.mod").read_text()),
                                published)
    keys = "gitVersion=v1.37.2 gitMajor=1 gitMinor=37 gitTreeState=clean buildDate=2026-10-27T12:01:04Z"
    expected = ["-s -w"] + [f"-X {pkg}.{kv}" for pkg in ("k8s.io/component-base/version",
                                                         "k8s.io/client-go/pkg/version")
                            for kv in keys.split()]
    assert recipe.ldflags == " ".join(expected)
    assert not recipe.cgo and recipe.tags == ()
    assert [name for name, _ in recipe.binaries] == list(recipes.KUBERNETES_COMMANDS)
    assert dict(recipe.replaces)["k8s.io/kubelet"] == "v0.37.2"


def test_component_stamps_follow_each_project():
    assert recipes.crictl("v1.37.0").ldflags == "-X sigs.k8s.io/cri-tools/pkg/version.Version=1.37.0"
    daemon = recipes.containerd("v2.4.2")
    assert "-X github.com/containerd/containerd/v2/version.Version=v2.4.2" in daemon.ldflags
    assert daemon.tags_for("containerd") == ("urfave_cli_no_docs", "osusergo", "netgo", "static_build")
    assert daemon.tags_for("containerd-shim-runc-v2")[-1] == "no_grpc"
    runc = recipes.runc("v1.5.2")
    assert runc.cgo and "seccomp" in runc.tags and "libpathrs" not in runc.tags
    assert "buildversion.BuildVersion=v0.9.1" in recipes.flannel_cni("v0.9.1").ldflags
    assert "pkg/version.Version=v0.28.10" in recipes.flannel("v0.28.10").ldflags
