"""Image specs from kubeadm's list, and the image builder end to end on stand-in inputs."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from kubeforge.bundle.cache import Cache
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.images import ImageBuilder, extra_image_specs, kubeadm_image_specs
from tests.bundle.bundle_helpers import EPOCH, KUBEADM_IMAGES


def _rootfs(path):
    with tarfile.open(path, "w") as tar:
        for name, data in (("./etc/ssl/certs/ca-certificates.crt", b"-----CERTS-----\n"),
                           ("./usr/sbin/iptables-nft", b"\x7fELF iptables")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def _members(archive):
    """path -> (mode, uid, content) of every file across the image's layers."""
    found = {}
    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        digest = index["manifests"][0]["digest"][7:]
        manifest = json.load(outer.extractfile(f"blobs/sha256/{digest}"))
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=outer.extractfile(f"blobs/sha256/{layer['digest'][7:]}")) as inner:
                for m in inner.getmembers():
                    content = inner.extractfile(m).read() if m.isreg() else None
                    found[m.name] = (m.mode, m.uid, content)
        return found, manifest


def test_specs_follow_kubeadm_names():
    specs = {s.short: s for s in kubeadm_image_specs(list(KUBEADM_IMAGES))}
    assert specs["kube-proxy"].base == "debian" and specs["pause"].base == "scratch"
    assert specs["etcd"].files == (("/usr/local/bin/etcd", "etcd", 0o755),
                                   ("/usr/local/bin/etcdctl", "etcdctl", 0o755),
                                   ("/usr/local/bin/etcdutl", "etcdutl", 0o755))
    assert specs["coredns"].config.entrypoint == ("/coredns",)
    assert specs["kube-apiserver"].roles == ("control-plane",)
    with pytest.raises(BundleError, match="kube-dns:1.0, which kubeforge does not know"):
        kubeadm_image_specs(["registry.k8s.io/kube-dns:1.0"])


def test_builder_writes_reproducible_images(tmp_path):
    rootfs = _rootfs(tmp_path / "rootfs.tar")
    sources = {}
    for name in ("pause", "kube-proxy", "kube-apiserver", "flanneld", "install-conf",
                 "mk-docker-opts.sh", "echo"):
        sources[name] = tmp_path / name
        sources[name].write_bytes(f"binary {name}".encode())
    specs = {s.short: s for s in kubeadm_image_specs(list(KUBEADM_IMAGES))
             + extra_image_specs("v0.28.10", "v1.0.0")}

    def build(cache_dir):
        builder = ImageBuilder(Cache(cache_dir), rootfs, sha256_file(rootfs), EPOCH, lambda _l: None)
        return {short: builder.image(specs[short], sources)
                for short in ("pause", "kube-proxy", "kube-apiserver", "flannel", "echo")}

    first, second = build(tmp_path / "c1"), build(tmp_path / "c2")
    for short in first:
        assert first[short][0].read_bytes() == second[short][0].read_bytes(), short
        assert first[short][1] == second[short][1]

    pause, _ = _members(first["pause"][0])
    assert pause == {"pause": (0o755, 0, b"binary pause")}
    apiserver, _ = _members(first["kube-apiserver"][0])
    assert apiserver["etc/ssl/certs/ca-certificates.crt"][2] == b"-----CERTS-----\n"
    assert apiserver["usr/local/bin/kube-apiserver"] == (0o755, 0, b"binary kube-apiserver")
    assert apiserver["tmp"][0] == 0o1777 and apiserver["home/nonroot"][1] == 65532
    assert b"nonroot:x:65532" in apiserver["etc/passwd"][2]
    proxy, proxy_manifest = _members(first["kube-proxy"][0])
    assert proxy["usr/sbin/iptables-nft"][2] == b"\x7fELF iptables"
    _, flannel_manifest = _members(first["flannel"][0])
    # kube-proxy and flannel share the Debian base layer: same digest, one blob on a node.
    assert proxy_manifest["layers"][0] == flannel_manifest["layers"][0]
    echo, _ = _members(first["echo"][0])
    assert "usr/sbin/iptables-nft" not in echo and echo["echo"][2] == b"binary echo"

    missing = dict(sources)
    del missing["flanneld"]
    builder = ImageBuilder(Cache(tmp_path / "c3"), rootfs, sha256_file(rootfs), EPOCH, lambda _l: None)
    with pytest.raises(BundleError, match="needs flanneld, which was not built"):
        builder.image(specs["flannel"], missing)
