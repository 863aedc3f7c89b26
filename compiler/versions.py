"""What changes per Kubernetes minor: the one table every part of kubeforge reads.

Each row holds the facts of one minor as its newest patch (``newest_patch``) has them; every
field names its source in :data:`SOURCES`. The best source is the version's own kubeadm
(``kubeadm config images list``, ``kubeadm init --help``, ``kubeadm config validate``):
``tests/compiler/test_versions_kubeadm.py`` builds that kubeadm for every row upstream still
supports (every row with ``KUBEFORGE_KUBEADM_ALL=1``), reads the same facts from every row's
source, and fails when a row disagrees with either. The rest was read from the
``k8s.io/kubernetes`` module source of the same patch
(``https://proxy.golang.org/k8s.io/kubernetes/@v/v1.N.P.zip``), paths below.

Dropped: 1.30, 1.31 and 1.32, all past upstream end of life (1.30 on 2025-07-15 per
kubernetes.io/releases/1.30; it was also the last minor that needed the kubeadm v1beta3 API).
Adding a minor: add a row, fill every field from the sources named in SOURCES, and run
``KUBEFORGE_KUBEADM_ALL=1 pytest tests/compiler/test_versions_kubeadm.py`` (it builds that
minor's kubeadm).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: The day the rows were checked; whether a minor is out of upstream support is decided
#: against it (a fixed date keeps `kubeforge check` deterministic).
AS_OF = dt.date(2026, 11, 27)

#: Where kubeadm pulls every image from (ClusterConfiguration.imageRepository).
IMAGE_REPOSITORY = "registry.k8s.io"

#: The kubeadm config API kubeforge writes. Readable by every supported minor.
KUBEADM_API = "kubeadm.k8s.io/v1beta4"


@dataclass(frozen=True)
class BundlePins:
    """What ``kubeforge bundle build`` builds for a minor besides the images its kubeadm names
    (etcd, CoreDNS and pause come from ``kubeadm config images list``): module versions."""

    containerd: str
    crictl: str
    cni_plugins: str
    flannel: str
    #: The flannel CNI plugin (``plugins/meta/flannel``) left containernetworking/plugins
    #: after v0.9.1 for github.com/flannel-io/cni-plugin, which the module proxy does not serve.
    flannel_cni: str = "v0.9.1"


@dataclass(frozen=True)
class Release:
    minor: int
    newest_patch: int
    end_of_life: dt.date
    #: Every kubeadm config API version this kubeadm reads (v1beta3: deprecated, with a warning).
    kubeadm_apis: tuple[str, ...]
    #: etcd image tag kubeadm maps this minor to, and the oldest external etcd it accepts.
    etcd: str
    min_external_etcd: str
    pause: str
    coredns: str
    #: ClusterConfiguration.encryptionAlgorithm values kubeadm accepts.
    encryption_algorithms: tuple[str, ...]
    #: kubeadm's own feature gates (``kubeadm init --feature-gates``).
    kubeadm_feature_gates: tuple[str, ...]
    #: kubeadm feature gates that existed in the previous minor and are gone in this one.
    kubeadm_feature_gates_removed: tuple[str, ...]
    #: kubelet command-line flags that the previous minor had and this one removed.
    kubelet_flags_removed: tuple[str, ...]
    #: KubeletConfiguration.failCgroupV1 default: true = the kubelet refuses cgroup v1 hosts.
    fail_cgroup_v1: bool
    #: First patch whose kubeadm issues apiserver-kubelet-client without O=kubeadm:cluster-admins
    #: and instead binds that user to system:kubelet-api-admin.
    kubelet_api_admin_since_patch: int
    #: Lowest recommended containerd patch per containerd line, newest line first.
    containerd: tuple[str, ...]
    #: Config APIs it reads only with --allow-experimental-api (placeholders of the next API).
    kubeadm_experimental_apis: tuple[str, ...] = ()
    #: The offline bundle's pins; None: no bundle of this minor has been built and checked
    #: end to end, so `bundle build` refuses it.
    bundle: BundlePins | None = None

    @property
    def newest(self) -> str:
        return f"1.{self.minor}.{self.newest_patch}"


_RSA = ("RSA-2048", "RSA-3072", "RSA-4096")
_GATES_33 = ("ControlPlaneKubeletLocalMode", "NodeLocalCRISocket", "PublicKeysECDSA",
             "RootlessControlPlane", "WaitForAllControlPlaneComponents")

RELEASES: dict[int, Release] = {r.minor: r for r in (
    Release(33, 13, dt.date(2026, 6, 28), ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"),
            etcd="3.5.24-0", min_external_etcd="3.5.24-0", pause="3.10", coredns="v1.12.0",
            encryption_algorithms=("ECDSA-P256", *_RSA),
            kubeadm_feature_gates=_GATES_33, kubeadm_feature_gates_removed=("EtcdLearnerMode",),
            kubelet_flags_removed=(), fail_cgroup_v1=False, kubelet_api_admin_since_patch=12,
            containerd=("2.1.0", "2.0.4", "1.7.24", "1.6.36")),
    Release(34, 4, dt.date(2026, 10, 27), ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"),
            etcd="3.6.5-0", min_external_etcd="3.5.24-0", pause="3.10.1", coredns="v1.12.1",
            encryption_algorithms=("ECDSA-P256", "ECDSA-P384", *_RSA),
            kubeadm_feature_gates=_GATES_33, kubeadm_feature_gates_removed=(),
            kubelet_flags_removed=("cloud-config", "register-schedulable"),
            fail_cgroup_v1=False, kubelet_api_admin_since_patch=8,
            containerd=("2.1.3", "2.0.6", "1.7.28", "1.6.39")),
    Release(35, 4, dt.date(2027, 2, 28), ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"),
            etcd="3.6.6-0", min_external_etcd="3.5.24-0", pause="3.10.1", coredns="v1.13.1",
            encryption_algorithms=("ECDSA-P256", "ECDSA-P384", *_RSA),
            kubeadm_feature_gates=("ControlPlaneKubeletLocalMode", "NodeLocalCRISocket",
                                   "PublicKeysECDSA", "RootlessControlPlane"),
            kubeadm_feature_gates_removed=("WaitForAllControlPlaneComponents",),
            kubelet_flags_removed=("pod-infra-container-image",), fail_cgroup_v1=True,
            kubelet_api_admin_since_patch=5, containerd=("2.2.0", "2.1.5", "1.7.28")),
    Release(36, 3, dt.date(2027, 6, 28), ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"),
            etcd="3.6.8-0", min_external_etcd="3.5.24-0", pause="3.10.2", coredns="v1.14.2",
            encryption_algorithms=("ECDSA-P256", "ECDSA-P384", *_RSA),
            kubeadm_feature_gates=("NodeLocalCRISocket", "PublicKeysECDSA",
                                   "RootlessControlPlane"),
            kubeadm_feature_gates_removed=("ControlPlaneKubeletLocalMode",),
            kubelet_flags_removed=(), fail_cgroup_v1=True, kubelet_api_admin_since_patch=1,
            containerd=("2.3.0", "2.2.0"),
            bundle=BundlePins(containerd="v2.3.7", crictl="v1.36.0", cni_plugins="v1.10.0",
                              flannel="v0.28.10")),
    Release(37, 2, dt.date(2027, 10, 28), ("kubeadm.k8s.io/v1beta4",),
            etcd="3.7.0-0", min_external_etcd="3.5.24-0", pause="3.10.2", coredns="v1.14.6",
            encryption_algorithms=("ECDSA-P256", "ECDSA-P384", *_RSA),
            kubeadm_feature_gates=("RootlessControlPlane",),
            kubeadm_feature_gates_removed=("NodeLocalCRISocket", "PublicKeysECDSA"),
            kubelet_flags_removed=(), fail_cgroup_v1=True, kubelet_api_admin_since_patch=0,
            containerd=("2.4.0", "2.3.0"), kubeadm_experimental_apis=("kubeadm.k8s.io/v1",),
            bundle=BundlePins(containerd="v2.4.2", crictl="v1.37.0", cni_plugins="v1.10.0",
                              flannel="v0.28.10")),
)}

#: ClusterRoleBindings `kubeadm init` creates that grant an identity outside the system
#: components something: (name, ClusterRole, subject kind, subject). The second exists only
#: where :func:`kubelet_api_admin_binding` says so. Sources: cmd/kubeadm/app/phases/kubeconfig/
#: kubeconfig.go (EnsureAdminClusterRoleBinding, kubeadm 1.29+) and
#: phases/bootstraptoken/node/tlsbootstrap.go (AllowAPIServerToAccessKubeletAPI).
KUBEADM_CLUSTER_ADMINS = ("kubeadm:cluster-admins", "cluster-admin", "Group",
                          "kubeadm:cluster-admins")
KUBEADM_KUBELET_API_ADMIN = ("kubeadm:apiserver-kubelet-client", "system:kubelet-api-admin",
                             "User", "kube-apiserver-kubelet-client")

SUPPORTED_MINORS: tuple[int, ...] = tuple(sorted(RELEASES))
OLDEST, NEWEST = RELEASES[SUPPORTED_MINORS[0]], RELEASES[SUPPORTED_MINORS[-1]]
#: The version shown wherever a default is shown (examples, docs, `bundle build`).
DEFAULT_VERSION = NEWEST.newest
SUPPORTED_RANGE = f"1.{OLDEST.minor} to 1.{NEWEST.minor}"

_MODULE = "k8s.io/kubernetes module source of the row's newest patch"
#: The containerd release whose RELEASES.md the containerd column was read from.
CONTAINERD_RELEASES = "github.com/containerd/containerd/v2@v2.4.2"
SOURCES: dict[str, str] = {
    "newest_patch": "https://proxy.golang.org/k8s.io/kubernetes/@v/list on AS_OF",
    "end_of_life": "https://kubernetes.io/releases/1.N/ (End Of Life Date)",
    "kubeadm_apis": "`kubeadm config validate` of kubeadm v1.N.P (1.37: v1beta3 is an 'old "
                    "API spec'); " f"{_MODULE}: cmd/kubeadm/app/util/config/common.go",
    "kubeadm_experimental_apis": "`kubeadm config validate` (v1 'experimental API spec ... "
                                 "not allowed' without --allow-experimental-api); "
                                 f"{_MODULE}: cmd/kubeadm/app/apis/kubeadm/v1/doc.go",
    "etcd": f"`kubeadm config images list --kubernetes-version v1.N.P` of kubeadm v1.N.P; "
            f"{_MODULE}: cmd/kubeadm/app/constants/constants.go SupportedEtcdVersion",
    "min_external_etcd": f"{_MODULE}: cmd/kubeadm/app/constants/constants.go "
                         "MinExternalEtcdVersion",
    "pause": "`kubeadm config images list` of kubeadm v1.N.P (constants.PauseVersion)",
    "coredns": "`kubeadm config images list` of kubeadm v1.N.P (constants.CoreDNSVersion)",
    "encryption_algorithms": f"{_MODULE}: cmd/kubeadm/app/apis/kubeadm/validation/"
                             "validation.go ValidateEncryptionAlgorithm; checked by "
                             "`kubeadm config validate`",
    "kubeadm_feature_gates": "`kubeadm init --help` of kubeadm v1.N.P (--feature-gates); "
                             f"{_MODULE}: cmd/kubeadm/app/features/features.go",
    "kubeadm_feature_gates_removed": "difference to the previous row (1.33: to v1.32.13)",
    "kubelet_flags_removed": f"{_MODULE}: flags registered in cmd/kubelet/app/options/*.go "
                             "and pkg/kubelet/config/flags.go, compared with the previous "
                             "minor's newest patch (1.33: to v1.32.13)",
    "fail_cgroup_v1": f"{_MODULE}: pkg/kubelet/apis/config/v1beta1/defaults.go "
                      "(obj.FailCgroupV1 default)",
    "kubelet_api_admin_since_patch": "k8s.io/kubernetes module source of every patch around "
                                     "the change: cmd/kubeadm/app/phases/certs/certlist.go "
                                     "KubeadmCertKubeletClient (no Organization) and "
                                     "phases/bootstraptoken/node/tlsbootstrap.go "
                                     "AllowAPIServerToAccessKubeletAPI (kubernetes PR #138957; "
                                     "v1.33.11/1.33.12, 1.34.7/1.34.8, 1.35.4/1.35.5, "
                                     "1.36.0/1.36.1 compared)",
    "containerd": f"RELEASES.md of the containerd module {CONTAINERD_RELEASES}, table "
                  "'Kubernetes Support' (the recommended containerd lines per minor)",
    "bundle": "containerd: the newest release of the newest line the row's containerd "
              "column recommends (1.37: v2.4.2; 1.36: v2.3.7); crictl: the cri-tools release "
              "of the same minor; cni_plugins, flannel: the newest releases on the module "
              "proxy when the 1.37 bundle was built (the same for 1.36, so an upgrade keeps "
              "the pod network); runc is containerd's own pin (script/setup/runc-version)",
    "default RBAC roles": "compiler/data/rbac-bootstrap.yaml, per rule `x-oracle-since`/"
                          "`x-oracle-until` (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/"
                          "testdata/cluster-roles.yaml of each row)",
}


class UnsupportedVersion(ValueError):
    pass


def parse(version: str) -> tuple[int, int]:
    """(minor, patch) of "1.N.P" or "v1.N.P"."""
    parts = version.lstrip("v").split(".")
    if len(parts) != 3 or parts[0] != "1" or not all(p.isdigit() for p in parts):
        raise UnsupportedVersion(f"{version!r} is not a Kubernetes 1.N.P version")
    return int(parts[1]), int(parts[2])


def release(version: str | int) -> Release:
    minor = version if isinstance(version, int) else parse(version)[0]
    try:
        return RELEASES[minor]
    except KeyError:
        raise UnsupportedVersion(f"Kubernetes 1.{minor} is not supported "
                                 f"(kubeforge supports {SUPPORTED_RANGE})") from None


def end_of_support(version: str, today: dt.date = AS_OF) -> dt.date | None:
    """The day upstream support of ``version``'s minor ended, None while it is supported."""
    eol = release(version).end_of_life
    return eol if eol <= today else None


def pause_image(version: str) -> str:
    return f"{IMAGE_REPOSITORY}/pause:{release(version).pause}"


def kubeadm_images(version: str, *, stacked_etcd: bool = True) -> tuple[str, ...]:
    """The images ``kubeadm config images list`` names for ``version``, in its order."""
    row, tag = release(version), f"v{version.lstrip('v')}"
    images = [f"{IMAGE_REPOSITORY}/{name}:{tag}" for name in
              ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]
    images += [f"{IMAGE_REPOSITORY}/coredns/coredns:{row.coredns}", pause_image(version)]
    if stacked_etcd:
        images.append(f"{IMAGE_REPOSITORY}/etcd:{row.etcd}")
    return tuple(images)


def kubelet_api_admin_binding(version: str) -> bool:
    """Whether this kubeadm binds apiserver-kubelet-client to system:kubelet-api-admin (and
    so drops O=kubeadm:cluster-admins from that certificate)."""
    minor, patch = parse(version)
    return patch >= release(minor).kubelet_api_admin_since_patch


def kubeadm_bindings(version: str | None) -> tuple[tuple[str, str, str, str], ...]:
    """The user-relevant ClusterRoleBindings kubeadm creates for ``version`` (None: those
    of every supported version)."""
    if version is not None and kubelet_api_admin_binding(version):
        return KUBEADM_CLUSTER_ADMINS, KUBEADM_KUBELET_API_ADMIN
    return (KUBEADM_CLUSTER_ADMINS,)


def kubelet_flag_removed(flag: str, version: str) -> int | None:
    """The minor that removed kubelet flag ``--flag`` if ``version`` no longer has it."""
    minor = release(version).minor
    return next((m for m in SUPPORTED_MINORS if m <= minor
                 and flag.lstrip("-") in RELEASES[m].kubelet_flags_removed), None)


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("-")[0].split("."))


def containerd_recommended(version: str, containerd: str) -> bool:
    """Whether containerd ``containerd`` (e.g. "1.7.28") is recommended for ``version``."""
    have = _numbers(containerd.lstrip("v"))
    for floor in release(version).containerd:
        low = _numbers(floor)
        if have[:2] == low[:2]:
            return have >= low
    return False


def etcd_accepted(version: str, etcd: str) -> bool:
    """Whether kubeadm ``version`` accepts an external etcd of version ``etcd``."""
    return _numbers(etcd.lstrip("v")) >= _numbers(release(version).min_external_etcd)
