"""The images of the cluster addons (``addon storage local-path``), built into every bundle
so a cluster that declares an addon runs it with nothing pulled:

- ``kubeforge.local/local-path-provisioner:v0.0.30``: rancher's local-path-provisioner, built
  from its module with its release's version stamp (:func:`recipes.local_path_provisioner`),
  at ``/usr/bin/local-path-provisioner`` as in upstream's image, on the Debian base (the one
  kube-proxy and flannel use, so a node stores its layer once). The same image is the helper
  pod the provisioner starts on a node to make and remove a volume's directory, which needs
  ``sh``, ``mkdir`` and ``rm`` (upstream's helper is busybox).

The compiler names the image (``compiler/addon_storage.py``); the name carries the version,
so a bundle of another version is refused at compile time rather than failing on a node.
"""

from __future__ import annotations

from kubeforge.bundle import recipes
from kubeforge.bundle.archive import ImageConfig
from kubeforge.bundle.images import ImageSpec
from kubeforge.bundle.layout import KUBELET_ROLES

LOCAL_PATH_IMAGE = "kubeforge.local/local-path-provisioner"
LOCAL_PATH_BINARY = "local-path-provisioner"


def addon_recipes() -> list[recipes.GoRecipe]:
    return [recipes.local_path_provisioner(recipes.LOCAL_PATH_VERSION)]


def addon_image_specs() -> list[ImageSpec]:
    return [ImageSpec(f"{LOCAL_PATH_IMAGE}:{recipes.LOCAL_PATH_VERSION}",
                      "local-path-provisioner", KUBELET_ROLES, "debian",
                      ((f"/usr/bin/{LOCAL_PATH_BINARY}", LOCAL_PATH_BINARY, 0o755),),
                      ImageConfig(cmd=(LOCAL_PATH_BINARY,)))]
