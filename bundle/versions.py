"""Which version of every component a bundle for a Kubernetes release carries.

Three sources, in this order of authority:

1. the release itself: the kubeadm built from it names the etcd, CoreDNS and pause images
   (``kubeadm config images list``), so those versions are never written down here;
2. a component's own pin: runc is the version containerd's CI tests with
   (``script/setup/runc-version`` in the containerd module);
3. the ``bundle`` column of kubeforge's versions table (:mod:`kubeforge.compiler.versions`),
   per Kubernetes minor, for what neither names: containerd (a release of a line
   containerd's RELEASES.md recommends for the minor), crictl (cri-tools tracks the
   Kubernetes minor), the CNI plugins and flannel. Only minors whose bundle has been built
   and checked end to end have one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeforge.bundle.errors import BundleError
from kubeforge.compiler import versions as compiler_versions
from kubeforge.compiler.versions import BundlePins

#: The newest Kubernetes release the Go module proxy serves (the compiler's versions table).
DEFAULT_KUBERNETES = compiler_versions.DEFAULT_VERSION
ARCH = "amd64"


@dataclass(frozen=True)
class KubernetesVersion:
    major: int
    minor: int
    patch: int

    @property
    def tag(self) -> str:
        """``v1.37.2``: the module version and the version stamp."""
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def staging(self) -> str:
        """``v0.37.2``: the version of the staging modules (k8s.io/api, ...) of this release."""
        return f"v0.{self.minor}.{self.patch}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_kubernetes(text: str) -> KubernetesVersion:
    """``1.37.2`` or ``v1.37.2``; pre-releases and other majors are refused."""
    match = re.fullmatch(r"v?(1)\.(\d+)\.(\d+)", text.strip())
    if not match:
        raise BundleError(f"bundle: `{text}` is not a Kubernetes release version; "
                          f"write it like {DEFAULT_KUBERNETES}")
    return KubernetesVersion(*(int(part) for part in match.groups()))


def companions(version: KubernetesVersion) -> BundlePins:
    """The pins of ``version``'s minor (the versions table's ``bundle`` column)."""
    row = compiler_versions.RELEASES.get(version.minor)
    if row is None or row.bundle is None:
        known = ", ".join(f"1.{minor}" for minor, row in sorted(compiler_versions.RELEASES.items())
                          if row.bundle is not None)
        raise BundleError(f"bundle: no runtime/CNI versions are known for Kubernetes "
                          f"1.{version.minor} (bundles are built for {known}); "
                          f"try --kubernetes {DEFAULT_KUBERNETES}")
    return row.bundle


def etcd_module_version(image_tag: str) -> str:
    """kubeadm's etcd image tag ``3.7.0-0`` -> the etcd module version ``v3.7.0``."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(?:-\d+)?", image_tag)
    if not match:
        raise BundleError(f"bundle: kubeadm names etcd image tag `{image_tag}`, which is not "
                          "an etcd release")
    return f"v{match[1]}"
