"""Wrapper modules from the real go.mod files of Kubernetes v1.37.2 and etcd v3.7.0."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.gomod import parse_gomod, sibling_versions, wrapper_gomod

DATA = Path(__file__).parent / "data"


def test_kubernetes_wrapper_replaces_every_required_staging_module():
    mod = parse_gomod((DATA / "kubernetes-v1.37.2.mod").read_text())
    assert mod.module == "k8s.io/kubernetes" and mod.go == "1.26.0"
    versions = sibling_versions(mod, lambda _path: "v0.37.2")
    # 33 local replaces in the release's go.mod; sample-cli-plugin and sample-controller
    # are replaced but not required (and the proxy does not serve them).
    local = [r.old for r in mod.replaces if r.local]
    assert len(local) == 33
    assert sorted(set(local) - set(versions)) == ["k8s.io/sample-cli-plugin",
                                                  "k8s.io/sample-controller"]
    assert len(versions) == 31 and set(versions.values()) == {"v0.37.2"}
    text = wrapper_gomod("k8s-bundle", {"k8s.io/kubernetes": "v1.37.2"}, versions)
    lines = text.splitlines()
    assert lines[:5] == ["module kubeforge.local/k8s-bundle", "", "go 1.26.0", "",
                         "require k8s.io/kubernetes v1.37.2"]
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in lines
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2" in lines
    assert not any("sample-controller" in line for line in lines)
    replaced = [line for line in lines if "=>" in line]
    assert replaced == sorted(replaced)  # same input, same text


def test_etcd_siblings_keep_their_published_versions():
    mod = parse_gomod((DATA / "etcd-server-v3.7.0.mod").read_text())
    assert sibling_versions(mod) == {
        "go.etcd.io/etcd/api/v3": "v3.7.0", "go.etcd.io/etcd/client/pkg/v3": "v3.7.0",
        "go.etcd.io/etcd/client/v3": "v3.7.0", "go.etcd.io/etcd/pkg/v3": "v3.7.0"}


def test_multiple_requirements_form_a_block():
    text = wrapper_gomod("etcd-bundle", {"b.io/x": "v1.0.0", "a.io/y": "v2.0.0"}, {})
    assert "require (\n\ta.io/y v2.0.0\n\tb.io/x v1.0.0\n)\n" in text
    assert "replace" not in text


def test_parser_handles_single_line_forms_and_comments():
    mod = parse_gomod('module example.com/m // the module\n\ngo 1.22\n'
                      'require "example.com/q" v1.2.3\n'
                      'replace example.com/q => ../q // local\n'
                      'replace example.com/r v1.0.0 => example.com/s v1.1.0\n')
    assert mod.requires == {"example.com/q": "v1.2.3"}
    assert [(r.old, r.new, r.new_version, r.local) for r in mod.replaces] == [
        ("example.com/q", "../q", None, True),
        ("example.com/r", "example.com/s", "v1.1.0", False)]


def test_placeholder_without_a_published_version_is_an_error():
    mod = parse_gomod("module m\nrequire x.io/y v0.0.0\nreplace x.io/y => ./y\n")
    with pytest.raises(BundleError, match="placeholder"):
        sibling_versions(mod)


def test_go_mod_without_module_is_refused():
    with pytest.raises(BundleError, match="no module directive"):
        parse_gomod("go 1.22\n", "broken/go.mod")
