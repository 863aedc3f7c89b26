"""A small but complete bundle for the checker and assembler tests, written by the same code
that writes real bundles (layers, image archives, the assembler, a sealed manifest); only the
binaries are stand-ins (a few bytes each), since building real ones takes Go and minutes."""

from __future__ import annotations

import json
import tarfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from kubeforge.bundle.archive import ImageConfig, Layer, data_entry, write_image_archive, write_layer
from kubeforge.bundle.assemble import assemble
from kubeforge.bundle.check import APP_IMAGES
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.layout import BIN, CNI_BIN, CNI_PLUGINS, HOST_BINARIES, placement
from kubeforge.bundle.manifest import BundleFile, BundleImage, Component, Manifest, sealed

EPOCH = 1793102464
KUBEADM_IMAGES = (
    "registry.k8s.io/kube-apiserver:v1.37.2",
    "registry.k8s.io/kube-controller-manager:v1.37.2",
    "registry.k8s.io/kube-scheduler:v1.37.2",
    "registry.k8s.io/kube-proxy:v1.37.2",
    "registry.k8s.io/coredns/coredns:v1.14.6",
    "registry.k8s.io/pause:3.10.2",
    "registry.k8s.io/etcd:3.7.0-0",
)
#: What a complete bundle holds: kubeadm's images and the applications' (echo, guestbook).
BUNDLE_IMAGES = KUBEADM_IMAGES + tuple(APP_IMAGES)


def image_archive(out: Path, name: str, payload: bytes = b"#!/bin/true\n") -> tuple[str, str]:
    """A real one-layer image archive of ``name``; returns (manifest, config) digests."""
    layer_path = out.with_suffix(".layer")
    diff_id, size = write_layer([data_entry("usr/local/bin/tool", payload, 0o755)], layer_path,
                                EPOCH)
    digests = write_image_archive(out, name, [Layer(layer_path, diff_id, size, "tool")],
                                  ImageConfig(entrypoint=("/usr/local/bin/tool",)),
                                  "2026-10-27T12:01:04Z", EPOCH)
    layer_path.unlink()
    return digests.manifest, digests.config


@contextmanager
def open_image(archive: Path) -> Iterator[tuple[dict, list[tarfile.TarFile]]]:
    """An image archive's config document and its layers, as open tar files in order, read
    through the OCI index and manifest (as ``ctr images import`` reads them)."""
    with tarfile.open(archive) as outer, ExitStack() as stack:
        def blob(digest: str):
            return outer.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        layers = [stack.enter_context(tarfile.open(fileobj=blob(layer["digest"])))
                  for layer in manifest["layers"]]
        yield json.load(blob(manifest["config"]["digest"])), layers


def make_sources(src: Path, images: tuple[str, ...] = BUNDLE_IMAGES, version: str = "v1",
                 changed: dict[str, bytes] | None = None) -> tuple[Manifest, dict[str, Path]]:
    """Source files and the sealed manifest of a bundle holding them (``changed``: host
    binaries whose content differs from the others' version)."""
    src.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name in HOST_BINARIES:
        files[f"{BIN}/{name}"] = src / name
        (src / name).write_bytes((changed or {}).get(name, f"{name} {version}\n".encode()))
    for name in CNI_PLUGINS:
        files[f"{CNI_BIN}/{name}"] = src / f"cni-{name}"
        (src / f"cni-{name}").write_bytes(f"cni {name}\n".encode())
    entries, image_entries = [], []
    for name in images:
        repository, _, tag = name.rpartition(":")
        short = repository.rpartition("/")[2]
        if f"images/{short}.tar" in files:  # a second tag of one repository (gb-frontend:v5)
            short = f"{short}-{tag}"
        archive = src / f"{short}.tar"
        manifest_digest, config_digest = image_archive(archive, name)
        files[f"images/{short}.tar"] = archive
        image_entries.append(BundleImage(name, f"images/{short}.tar", "kubernetes",
                                         ("control-plane",), manifest_digest, config_digest))
    for path, source in sorted(files.items()):
        install, roles = placement(path)
        if path.startswith("images/"):
            roles = ("control-plane",)
        entries.append(BundleFile(path, sha256_file(source), source.stat().st_size,
                                  0o755 if install else 0o644, "kubernetes", install, roles))
    manifest = sealed(Manifest(
        kubernetes="v1.37.2", arch="amd64", build_key="", source_date_epoch=EPOCH,
        toolchain=(("go", "go1.26.8"),),
        components=(Component("kubernetes", "v1.37.2", "k8s.io/kubernetes", "v1.37.2",
                              tuple(e.path for e in entries)),),
        files=tuple(entries), images=tuple(image_entries), kubeadm_images=KUBEADM_IMAGES))
    return manifest, files


def make_bundle(directory: Path, src: Path, **kwargs) -> Manifest:
    manifest, files = make_sources(src, **kwargs)
    assemble(directory, files, manifest, lambda _line: None)
    return manifest
