"""The container images of a bundle: which image holds what, built from cached binaries.

Names and tags are exactly what the release's kubeadm prints (``kubeadm config images
list``); flannel's image is named as upstream's kube-flannel.yml names it, and kubeforge's
echo test application as ``kubeforge.local/echo``. Three bases, like upstream's:

- ``scratch`` (pause): the binary alone;
- ``static`` (control plane, etcd, CoreDNS, echo; distroless-static in upstream's images):
  /etc/passwd, /etc/group, /etc/nsswitch.conf, CA certificates, /tmp;
- ``debian`` (kube-proxy, flannel): the Debian root file system with iptables, nftables,
  conntrack and iproute2 (:mod:`kubeforge.bundle.rootfs`);
- further Debian root file systems the builder is given by name (``redis-base``, for the
  guestbook's redis images: :mod:`kubeforge.bundle.guestbook`).

The CoreDNS image runs as root (upstream's runs as nonroot with a file capability): kubeadm's
CoreDNS Deployment adds NET_BIND_SERVICE, which a root process keeps for port 53.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kubeforge.bundle.archive import (Entry, ImageConfig, Layer, data_entry, dir_entry,
                                      file_entry, tar_entries, write_image_archive, write_layer)
from kubeforge.bundle.cache import Cache, input_key
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.layout import CONTROL_PLANE, KUBELET_ROLES
from kubeforge.bundle.tools import Progress
from kubeforge.bundle.versions import ARCH

ECHO_IMAGE = "kubeforge.local/echo"
FLANNEL_IMAGE = "ghcr.io/flannel-io/flannel"
BIN = "/usr/local/bin"


@dataclass(frozen=True)
class ImageSpec:
    name: str  # "registry.k8s.io/kube-apiserver:v1.37.2"
    component: str
    roles: tuple[str, ...]
    base: str  # "scratch" | "static" | "debian" | a root file system given to ImageBuilder
    files: tuple[tuple[str, str, int], ...]  # (path in the image, source name, mode)
    config: ImageConfig
    stem: str = ""  # the archive's file stem when a second tag of one repository needs its own

    @property
    def short(self) -> str:
        """The archive's file stem: the repository's last element (``kube-apiserver``)."""
        return self.stem or self.name.rpartition(":")[0].rpartition("/")[2]


def _binary(name: str) -> tuple[str, str, int]:
    return (f"{BIN}/{name}", name, 0o755)


def kubeadm_image_specs(names: list[str]) -> list[ImageSpec]:
    """One spec per image kubeadm names; an image kubeforge cannot build is an error."""
    specs = []
    for name in names:
        short = name.rpartition(":")[0].rpartition("/")[2]
        if short in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            specs.append(ImageSpec(name, "kubernetes", (CONTROL_PLANE,), "static",
                                   (_binary(short),), ImageConfig()))
        elif short == "kube-proxy":
            specs.append(ImageSpec(name, "kubernetes", KUBELET_ROLES, "debian",
                                   (_binary(short),), ImageConfig()))
        elif short == "etcd":
            specs.append(ImageSpec(name, "etcd", (CONTROL_PLANE,), "static",
                                   tuple(_binary(b) for b in ("etcd", "etcdctl", "etcdutl")),
                                   ImageConfig(cmd=(f"{BIN}/etcd",))))
        elif short == "coredns":
            specs.append(ImageSpec(name, "coredns", KUBELET_ROLES, "static",
                                   (("/coredns", "coredns", 0o755),),
                                   ImageConfig(entrypoint=("/coredns",),
                                               ports=("53/tcp", "53/udp"))))
        elif short == "pause":
            specs.append(ImageSpec(name, "pause", KUBELET_ROLES, "scratch",
                                   (("/pause", "pause", 0o755),),
                                   ImageConfig(entrypoint=("/pause",), user="65535:65535",
                                               env=())))
        else:
            raise BundleError(f"bundle: kubeadm needs image {name}, which kubeforge does not "
                              "know how to build")
    return specs


def extra_image_specs(flannel_version: str, echo_version: str) -> list[ImageSpec]:
    return [
        ImageSpec(f"{FLANNEL_IMAGE}:{flannel_version}", "flannel", KUBELET_ROLES, "debian",
                  (("/opt/bin/flanneld", "flanneld", 0o755),
                   ("/opt/bin/install-conf", "install-conf", 0o755),
                   ("/opt/bin/mk-docker-opts.sh", "mk-docker-opts.sh", 0o755)),
                  ImageConfig(entrypoint=("/opt/bin/flanneld",))),
        ImageSpec(f"{ECHO_IMAGE}:{echo_version}", "echo", KUBELET_ROLES, "static",
                  (("/echo", "echo", 0o755),),
                  ImageConfig(entrypoint=("/echo",), user="65532:65532", ports=("8080/tcp",))),
    ]


PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
NSSWITCH = "hosts: files dns\nnetworks: files\n"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def _ca_bundle(rootfs: Path) -> bytes:
    with tarfile.open(rootfs) as tar:
        for name in (f"./{CA_BUNDLE}", CA_BUNDLE):
            try:
                return tar.extractfile(name).read()
            except KeyError:
                continue
    raise BundleError(f"bundle: {rootfs} has no {CA_BUNDLE}")


class ImageBuilder:
    """Builds layers and image archives into the cache from named source files."""

    def __init__(self, cache: Cache, rootfs: Path, rootfs_sha256: str, epoch: int,
                 progress: Progress, roots: dict[str, tuple[Path, str]] | None = None) -> None:
        """``rootfs``: the Debian base (also the static base's CA certificates); ``roots``:
        further bases by name, each a root file system tarball and its sha256."""
        self.cache, self.rootfs, self.rootfs_sha256 = cache, rootfs, rootfs_sha256
        self.roots = dict(roots or {})
        self.epoch, self.progress = epoch, progress
        self.created = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._bases: dict[str, Layer] = {}

    def _layer(self, kind: str, identity, comment: str, entries) -> Layer:
        key = input_key("layer", kind, identity, self.epoch)

        def make(tmp: Path) -> dict:
            with entries() as listed:
                diff_id, size = write_layer(listed, tmp / "layer.tar", self.epoch)
            return {"diff_id": diff_id, "size": size}

        entry, data, _ = self.cache.get_or_make("layers", key, make)
        return Layer(entry / "layer.tar", data["diff_id"], data["size"], comment)

    def base(self, base: str) -> list[Layer]:
        if base == "scratch":
            return []
        if base not in self._bases:
            if base == "debian":
                self._bases[base] = self._layer("debian", self.rootfs_sha256,
                                                "Debian base (iptables, nftables, conntrack)",
                                                lambda: tar_entries(self.rootfs))
            elif base in self.roots:
                path, sha256 = self.roots[base]
                self._bases[base] = self._layer(base, sha256, f"Debian base ({base})",
                                                lambda: tar_entries(path))
            elif base == "static":
                ca = _ca_bundle(self.rootfs)
                listed = [data_entry("etc/passwd", PASSWD.encode()),
                          data_entry("etc/group", GROUP.encode()),
                          data_entry("etc/nsswitch.conf", NSSWITCH.encode()),
                          data_entry(CA_BUNDLE, ca), dir_entry("tmp", 0o1777),
                          dir_entry("root", 0o700),
                          dir_entry("home/nonroot", 0o700, 65532, 65532)]
                identity = [PASSWD, GROUP, NSSWITCH, hashlib.sha256(ca).hexdigest()]
                self._bases[base] = self._layer("static", identity, "static base",
                                                lambda: _listed(listed))
            else:
                raise BundleError(f"bundle: no image base {base} (a root file system "
                                  "the builder was not given)")
        return [self._bases[base]]

    def image(self, spec: ImageSpec, sources: dict[str, Path],
              digests: dict[str, str] | None = None) -> tuple[Path, dict, bool]:
        """(the image archive, its digests, True when built now). ``digests``: the sha256 of
        sources already known (cached binaries), so they are not read again."""
        missing = [source for _, source, _ in spec.files if source not in sources]
        if missing:
            raise BundleError(f"bundle: image {spec.name} needs {', '.join(missing)}, "
                              "which was not built")
        files = [(path, sources[source], mode) for path, source, mode in spec.files]
        known = digests or {}
        identity = [(path, mode, known.get(source) or sha256_file(sources[source]))
                    for path, source, mode in spec.files]
        app = self._layer("files", identity, " ".join(path for path, _, _ in files),
                          lambda: _listed([file_entry(p, s, m) for p, s, m in files]))
        layers = self.base(spec.base) + [app]
        key = input_key("image", spec.name, spec.config.as_docker(),
                        [layer.diff_id for layer in layers], self.created, ARCH)

        def make(tmp: Path) -> dict:
            digests = write_image_archive(tmp / "image.tar", spec.name, layers, spec.config,
                                          self.created, self.epoch, ARCH)
            return {"manifest_digest": digests.manifest, "config_digest": digests.config,
                    "sha256": sha256_file(tmp / "image.tar"),
                    "size": (tmp / "image.tar").stat().st_size}

        entry, data, fresh = self.cache.get_or_make("images", key, make)
        self.progress(f"bundle: image {spec.name}: {'built' if fresh else 'cached'}")
        return entry / "image.tar", data, fresh


class _listed:
    """A context manager over an already complete entry list (tar_entries' counterpart)."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def __enter__(self) -> list[Entry]:
        return self.entries

    def __exit__(self, *exc) -> None:
        return None
