"""Which version of every component a bundle for a Kubernetes release carries.

Three sources, in this order of authority:

1. the release itself: the kubeadm built from it names the etcd, CoreDNS and pause images
   (``kubeadm config images list``), so those versions are never written down here;
2. a component's own pin: runc is the version containerd's CI tests with
   (``script/setup/runc-version`` in the containerd module);
3. this table, per Kubernetes minor, for what neither names: containerd (the newest 2.x that
   containerd's RELEASES.md recommends for the minor), crictl (cri-tools tracks the
   Kubernetes minor), the CNI plugins and flannel.

Only minors whose bundle has been built and checked end to end are listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeforge.bundle.errors import BundleError
from kubeforge.compiler import versions as compiler_versions

#: The newest Kubernetes release the Go module proxy serves (the compiler's versions table).
DEFAULT_KUBERNETES = compiler_versions.DEFAULT_VERSION
ARCH = "amd64"

#: The flannel CNI plugin (``plugins/meta/flannel``) left containernetworking/plugins after
#: v0.9.1 for github.com/flannel-io/cni-plugin, which the module proxy does not serve.
FLANNEL_CNI_PLUGINS = "v0.9.1"


@dataclass(frozen=True)
class Companions:
    """Versions of the components a Kubernetes minor is bundled with (module versions)."""

    containerd: str
    crictl: str
    cni_plugins: str
    flannel: str
    flannel_cni: str = FLANNEL_CNI_PLUGINS


COMPANIONS: dict[int, Companions] = {
    # containerd RELEASES.md: Kubernetes 1.37 -> containerd 2.4.0+ (or 2.3.0+).
    37: Companions(containerd="v2.4.2", crictl="v1.37.0", cni_plugins="v1.10.0",
                   flannel="v0.28.10"),
}


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


def companions(version: KubernetesVersion) -> Companions:
    try:
        return COMPANIONS[version.minor]
    except KeyError:
        known = ", ".join(f"1.{minor}" for minor in sorted(COMPANIONS))
        raise BundleError(f"bundle: no runtime/CNI versions are known for Kubernetes "
                          f"1.{version.minor} (bundles are built for {known}); "
                          f"try --kubernetes {DEFAULT_KUBERNETES}") from None


def etcd_module_version(image_tag: str) -> str:
    """kubeadm's etcd image tag ``3.7.0-0`` -> the etcd module version ``v3.7.0``."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(?:-\d+)?", image_tag)
    if not match:
        raise BundleError(f"bundle: kubeadm names etcd image tag `{image_tag}`, which is not "
                          "an etcd release")
    return f"v{match[1]}"
