"""The addons' part of the bundle: local-path-provisioner's recipe (its release's build flags
and version stamp) and its image (the name the compiler pins, the Debian base for the helper
pods' shell, imported on every kubelet node). The binary is built and its stamp read by the
real bundle build (tests/k8s/ha/test_addon_storage.py runs `--version` in the pod)."""

from __future__ import annotations

from kubeforge.bundle import recipes
from kubeforge.bundle.addons import addon_image_specs, addon_recipes
from kubeforge.bundle.layout import KUBELET_ROLES
from kubeforge.compiler import addon_storage
from kubeforge.compiler.lower_addons import PROVIDERS


def test_the_recipe_is_upstreams_scripts_build():
    [recipe] = addon_recipes()
    assert (recipe.source, recipe.version) == ("github.com/rancher/local-path-provisioner",
                                               "v0.0.30")
    assert recipe.requires == ((recipe.source, "v0.0.30"),) and not recipe.cgo
    assert recipe.binaries == (("local-path-provisioner", recipe.source),)
    assert recipe.ldflags == "-X main.VERSION=v0.0.30 -extldflags -static -s -w"


def test_the_image_is_the_one_the_compiler_pins_on_every_kubelet_node():
    [spec] = addon_image_specs()
    assert spec.name == f"{addon_storage.BUNDLE_IMAGE}:{PROVIDERS['storage']['local-path'][0]}"
    assert recipes.LOCAL_PATH_VERSION == PROVIDERS["storage"]["local-path"][0]
    assert spec.roles == KUBELET_ROLES and spec.base == "debian"  # sh, mkdir, rm for helpers
    assert spec.files == (("/usr/bin/local-path-provisioner", "local-path-provisioner", 0o755),)
    assert spec.config.cmd == ("local-path-provisioner",) and spec.short == "local-path-provisioner"
