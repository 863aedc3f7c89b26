"""How each Go component is built: module, packages, build tags and the version stamps its
own release process sets (from each project's Makefile or release script).

A recipe is data: the builder turns it into a wrapper module and ``go build`` calls, and its
JSON form is part of every cache key. Commit stamps (gitCommit, Revision, GitSHA) stay unset:
the module proxy serves sources without their VCS origin, so no commit is known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from kubeforge.bundle.gomod import GoMod, sibling_versions
from kubeforge.bundle.versions import KubernetesVersion

KUBERNETES_COMMANDS = ("kubeadm", "kubelet", "kubectl", "kube-apiserver",
                       "kube-controller-manager", "kube-scheduler", "kube-proxy")


@dataclass(frozen=True)
class GoRecipe:
    component: str  # "kubernetes": one module (set) built the same way
    version: str  # the version the binaries report: "v1.37.2"
    source: str  # the module the component comes from
    source_version: str
    requires: tuple[tuple[str, str], ...]  # the wrapper module's requirements
    replaces: tuple[tuple[str, str], ...]  # sibling modules -> their published version
    binaries: tuple[tuple[str, str], ...]  # (output name, main package)
    ldflags: str
    tags: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # further `go build` flags
    cgo: bool = False
    extra_tags: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (binary, tags only it gets)
    # (binary, main package file of the source module, import lines left out): the binary
    # is built from a copy of that file in the wrapper module, at cmd/<binary>/main.go.
    derived: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    local: str = ""  # a module shipped with kubeforge (package data dir) instead of a wrapper

    @property
    def wrapper(self) -> str:
        return f"{self.component}-bundle" if self.component != "kubernetes" else "k8s-bundle"

    def key_data(self) -> dict:
        return asdict(self)

    def tags_for(self, binary: str) -> tuple[str, ...]:
        return self.tags + dict(self.extra_tags).get(binary, ())


def _x(package: str, **values: str) -> list[str]:
    return [f"-X {package}.{key}={value}" for key, value in values.items()]


def kubernetes(version: KubernetesVersion, mod: GoMod, published: datetime) -> GoRecipe:
    """hack/lib/version.sh's stamps, under component-base and client-go alike; the build
    date is the release's publication time, so rebuilding gives the same bytes."""
    stamp = dict(gitVersion=version.tag, gitMajor=str(version.major),
                 gitMinor=str(version.minor), gitTreeState="clean",
                 buildDate=published.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ldflags = " ".join(["-s -w", *_x("k8s.io/component-base/version", **stamp),
                        *_x("k8s.io/client-go/pkg/version", **stamp)])
    replaces = sibling_versions(mod, lambda _path: version.staging)
    return GoRecipe(
        component="kubernetes", version=version.tag, source="k8s.io/kubernetes",
        source_version=version.tag, requires=(("k8s.io/kubernetes", version.tag),),
        replaces=tuple(sorted(replaces.items())),
        binaries=tuple((name, f"k8s.io/kubernetes/cmd/{name}") for name in KUBERNETES_COMMANDS),
        ldflags=ldflags)


def etcd(version: str, mods: dict[str, GoMod]) -> GoRecipe:
    """etcd's scripts/build-binary.sh: CGO off, stamps only GitSHA (unknown here); the
    version comes from the api module's source."""
    replaces: dict[str, str] = {}
    for mod in mods.values():
        replaces.update(sibling_versions(mod))
    return GoRecipe(
        component="etcd", version=version, source="go.etcd.io/etcd/server/v3",
        source_version=version, requires=tuple((path, version) for path in sorted(mods)),
        replaces=tuple(sorted(replaces.items())),
        binaries=(("etcd", "go.etcd.io/etcd/server/v3"),
                  ("etcdctl", "go.etcd.io/etcd/etcdctl/v3"),
                  ("etcdutl", "go.etcd.io/etcd/etcdutl/v3")),
        ldflags="-s -w")


ETCD_MODULES = ("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3",
                "go.etcd.io/etcd/etcdutl/v3")


def coredns(version: str) -> GoRecipe:
    """CoreDNS Makefile: CGO off, ``-s -w`` (plus GitCommit, unknown here)."""
    return GoRecipe(component="coredns", version=version, source="github.com/coredns/coredns",
                    source_version=version, requires=(("github.com/coredns/coredns", version),),
                    replaces=(), binaries=(("coredns", "github.com/coredns/coredns"),),
                    ldflags="-s -w")


def crictl(version: str) -> GoRecipe:
    """cri-tools Makefile: CGO off, ``pkg/version.Version`` without the leading v."""
    return GoRecipe(component="crictl", version=version, source="sigs.k8s.io/cri-tools",
                    source_version=version, requires=(("sigs.k8s.io/cri-tools", version),),
                    replaces=(), binaries=(("crictl", "sigs.k8s.io/cri-tools/cmd/crictl"),),
                    ldflags=" ".join(_x("sigs.k8s.io/cri-tools/pkg/version",
                                        Version=version.removeprefix("v"))))


CONTAINERD = "github.com/containerd/containerd/v2"


def containerd(version: str) -> GoRecipe:
    """containerd Makefile with STATIC=1 (the static release): tags urfave_cli_no_docs
    osusergo netgo static_build, CGO off; the shim also gets no_grpc."""
    stamp = " ".join(_x(f"{CONTAINERD}/version", Version=version, Package=CONTAINERD))
    return GoRecipe(component="containerd", version=version, source=CONTAINERD,
                    source_version=version, requires=((CONTAINERD, version),), replaces=(),
                    binaries=(("containerd", f"{CONTAINERD}/cmd/containerd"),
                              ("containerd-shim-runc-v2", f"{CONTAINERD}/cmd/containerd-shim-runc-v2"),
                              ("ctr", f"{CONTAINERD}/cmd/ctr")),
                    ldflags=f"{stamp} -s -w",
                    tags=("urfave_cli_no_docs", "osusergo", "netgo", "static_build"),
                    extra_tags=(("containerd-shim-runc-v2", ("no_grpc",)),))


def runc(version: str) -> GoRecipe:
    """runc Makefile ``static`` target: cgo (libcontainer/nsenter), libseccomp linked
    statically, a static PIE. The ``libpathrs`` tag is dropped (its Rust library is not in
    Debian); runc then uses its pure-Go path resolution."""
    return GoRecipe(component="runc", version=version, source="github.com/opencontainers/runc",
                    source_version=version, requires=(("github.com/opencontainers/runc", version),),
                    replaces=(), binaries=(("runc", "github.com/opencontainers/runc"),),
                    ldflags="-s -w -linkmode external -extldflags -static-pie",
                    tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
                    flags=("-buildmode=pie",), cgo=True)


CNI = "github.com/containernetworking/plugins"
BASE_PLUGINS = {"bridge": "plugins/main/bridge", "host-local": "plugins/ipam/host-local",
                "loopback": "plugins/main/loopback", "portmap": "plugins/meta/portmap"}


def cni_plugins(version: str, plugins: dict[str, str], component: str = "cni-plugins"
                ) -> GoRecipe:
    """containernetworking/plugins' release workflow: static, BuildVersion stamped."""
    return GoRecipe(component=component, version=version, source=CNI, source_version=version,
                    requires=((CNI, version),), replaces=(),
                    binaries=tuple((name, f"{CNI}/{path}") for name, path in sorted(plugins.items())),
                    ldflags=f"-extldflags -static -X {CNI}/pkg/utils/buildversion.BuildVersion={version}")


def flannel_cni(version: str) -> GoRecipe:
    return cni_plugins(version, {"flannel": "plugins/meta/flannel"}, component="flannel-cni")


FLANNEL = "github.com/flannel-io/flannel"


#: flanneld's main.go imports every backend; the Tencent Cloud VPC one needs
#: github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc, whose zip the module proxy
#: refuses (403), so flanneld is built from its own main.go without that one import.
FLANNEL_DROPPED = ('_ "github.com/flannel-io/flannel/pkg/backend/tencentvpc"',)


def flannel(version: str) -> GoRecipe:
    """flannel Makefile ``dist/flanneld`` (``pkg/version.Version``): cgo on amd64 (the UDP
    backend's packet proxy is C), linked statically; with the pure-Go resolver and user
    lookup (netgo, osusergo), since upstream links against musl and this build against
    glibc, whose static resolver would need shared libraries at run time. The Tencent Cloud
    VPC backend is left out (:data:`FLANNEL_DROPPED`)."""
    return GoRecipe(component="flannel", version=version, source=FLANNEL, source_version=version,
                    requires=((FLANNEL, version),), replaces=(),
                    binaries=(("flanneld", "kubeforge.local/flannel-bundle/cmd/flanneld"),
                              ("install-conf", f"{FLANNEL}/cmd/install_conf")),
                    ldflags=f"-s -w -X {FLANNEL}/pkg/version.Version={version} -extldflags -static",
                    tags=("netgo", "osusergo"), cgo=True,
                    derived=(("flanneld", "main.go", FLANNEL_DROPPED),))


ECHO_VERSION = "v1.1.0"  # v1.1.0: GET /lookup?host=NAME


def _local(component: str, version: str, module: str, binary: str, directory: str
           ) -> GoRecipe:
    """A program shipped with kubeforge (its source under ``bundle/``): static, stamped with
    its own version (``-X main.version``)."""
    return GoRecipe(component=component, version=version, source=module,
                    source_version=version, requires=(), replaces=(),
                    binaries=((binary, module),),
                    ldflags=f"-s -w -X main.version={version}", local=directory)


def echo() -> GoRecipe:
    """kubeforge's own test application (``bundle/echo``): an HTTP echo server."""
    return _local("echo", ECHO_VERSION, "kubeforge.local/echo", "echo", "echo")


GUESTBOOK_VERSION = "v1.1.0"


def guestbook() -> GoRecipe:
    """The guestbook example's frontend (``bundle/apps/guestbook``): upstream's PHP page
    (gb-frontend) as a Go program."""
    return _local("guestbook", GUESTBOOK_VERSION, "kubeforge.local/guestbook",
                  "guestbook-frontend", "apps/guestbook")


LOCAL_PATH = "github.com/rancher/local-path-provisioner"
LOCAL_PATH_VERSION = "v0.0.30"  # the storage addon's (compiler/addons.py names it too)


def local_path_provisioner(version: str) -> GoRecipe:
    """local-path-provisioner's scripts/build: CGO off, ``-X main.VERSION=$VERSION`` (the
    release tag, scripts/version on a clean tagged tree), ``-extldflags -static -s -w``."""
    return GoRecipe(component="local-path-provisioner", version=version, source=LOCAL_PATH,
                    source_version=version, requires=((LOCAL_PATH, version),), replaces=(),
                    binaries=(("local-path-provisioner", LOCAL_PATH),),
                    ldflags=f"-X main.VERSION={version} -extldflags -static -s -w")
