"""Container images as files, without a registry or a container engine.

A layer is a tar written from a list of :class:`Entry` (sorted by path, parents included,
one fixed mtime, numeric owners only, hard links stored as files), so equal inputs give equal
bytes and so equal digests. An image archive is an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/...``) that also carries Docker's ``manifest.json``, like
``docker save`` since Docker 25: ``ctr -n k8s.io images import`` reads the OCI index (the
image name is the ``io.containerd.image.name`` annotation) and older ``docker load`` reads
``manifest.json``. Layers are uncompressed: their digest is their diff id.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterable, Iterator

from kubeforge.bundle.digest import CHUNK, HashingWriter
from kubeforge.bundle.errors import BundleError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Entry:
    """One file system object of a layer."""

    path: str  # relative, no leading slash: "usr/local/bin/kube-proxy"
    kind: str  # "file" | "dir" | "symlink"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    opener: Callable[[], BinaryIO] | None = None  # file content
    target: str = ""  # symlink target
    xattrs: tuple[tuple[str, str], ...] = ()


def data_entry(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path.lstrip("/"), "file", mode, uid, gid, len(data), lambda: io.BytesIO(data))


def file_entry(path: str, source: Path, mode: int = 0o755) -> Entry:
    return Entry(path.lstrip("/"), "file", mode, size=source.stat().st_size,
                 opener=lambda: open(source, "rb"))


def dir_entry(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path.strip("/"), "dir", mode, uid, gid)


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    by_path = {}
    for entry in entries:
        if entry.path in by_path:
            raise BundleError(f"bundle: layer lists {entry.path} twice")
        by_path[entry.path] = entry
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            if str(parent) != "." and str(parent) not in by_path:
                by_path[str(parent)] = dir_entry(str(parent))
    return [by_path[path] for path in sorted(by_path)]


def _tarinfo(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, mtime
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
    else:
        info.type, info.size = tarfile.REGTYPE, entry.size
    if entry.xattrs:
        info.pax_headers = {f"SCHILY.xattr.{key}": value for key, value in entry.xattrs}
    return info


def write_layer(entries: Iterable[Entry], out: Path, mtime: int) -> tuple[str, int]:
    """Write a layer tar to ``out``; returns its sha256 (the diff id, hex) and size."""
    with open(out, "wb") as raw:
        sink = HashingWriter(raw)
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in _with_parents(entries):
                info = _tarinfo(entry, mtime)
                if entry.kind == "file":
                    with entry.opener() as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    return sink.hexdigest(), sink.size


@contextmanager
def tar_entries(path: Path) -> Iterator[list[Entry]]:
    """The entries of a root file system tarball (mmdebstrap's output), ready to be written
    again as a normalised layer while the context is open: device nodes and FIFOs are dropped
    (the runtime provides /dev), hard links become regular files, extended attributes are
    kept."""
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        by_name = {m.name.removeprefix("./"): m for m in members}
        entries = []
        for member in members:
            name = member.name.removeprefix("./").rstrip("/")
            if not name or name == ".":
                continue
            xattrs = tuple(sorted((k.removeprefix("SCHILY.xattr."), v)
                                  for k, v in member.pax_headers.items()
                                  if k.startswith("SCHILY.xattr.")))
            common = dict(mode=member.mode, uid=member.uid, gid=member.gid, xattrs=xattrs)
            if member.isdir():
                entries.append(Entry(name, "dir", **common))
            elif member.issym():
                entries.append(Entry(name, "symlink", target=member.linkname, **common))
            elif member.isreg() or member.islnk():
                data = member if member.isreg() else by_name.get(member.linkname.removeprefix("./"))
                if data is None or not data.isreg():
                    raise BundleError(f"bundle: {path}: hard link {member.name} to a missing file")
                entries.append(Entry(name, "file", size=data.size,
                                     opener=lambda m=data: tar.extractfile(m), **common))
        yield entries


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Layer:
    path: Path  # the layer tar on disk
    diff_id: str  # sha256 hex
    size: int
    comment: str  # what the layer holds, recorded in the image history


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (DEFAULT_PATH,)
    user: str = ""
    workdir: str = ""
    ports: tuple[str, ...] = ()  # "8080/tcp"

    def as_docker(self) -> dict:
        config = {"Env": list(self.env)}
        if self.entrypoint:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.user:
            config["User"] = self.user
        if self.workdir:
            config["WorkingDir"] = self.workdir
        if self.ports:
            config["ExposedPorts"] = {port: {} for port in self.ports}
        return config


@dataclass(frozen=True)
class ImageDigests:
    manifest: str  # "sha256:..."
    config: str  # "sha256:...": the image id


def image_blobs(name: str, layers: list[Layer], config: ImageConfig, created: str,
                arch: str) -> tuple[bytes, bytes, bytes, bytes]:
    """(config, manifest, index, docker manifest.json) documents of an image."""
    config_doc = _canonical({
        "architecture": arch, "os": "linux", "created": created, "config": config.as_docker(),
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer.diff_id}" for layer in layers]},
        "history": [{"created": created, "created_by": f"kubeforge bundle: {layer.comment}"}
                    for layer in layers]})
    config_digest = _sha(config_doc)
    manifest_doc = _canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_doc)},
        "layers": [{"mediaType": OCI_LAYER, "digest": f"sha256:{layer.diff_id}",
                    "size": layer.size} for layer in layers]})
    index_doc = _canonical({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": _sha(manifest_doc),
                       "size": len(manifest_doc),
                       "annotations": {IMAGE_NAME: name, REF_NAME: name.rpartition(":")[2]}}]})
    docker_doc = _canonical([{
        "Config": f"blobs/sha256/{config_digest.removeprefix('sha256:')}", "RepoTags": [name],
        "Layers": [f"blobs/sha256/{layer.diff_id}" for layer in layers]}])
    return config_doc, manifest_doc, index_doc, docker_doc


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_image_archive(out: Path, name: str, layers: list[Layer], config: ImageConfig,
                        created: str, mtime: int, arch: str = "amd64") -> ImageDigests:
    """Write the image archive of ``name`` (``registry.k8s.io/pause:3.10.2``) to ``out``."""
    config_doc, manifest_doc, index_doc, docker_doc = image_blobs(name, layers, config,
                                                                  created, arch)
    files: dict[str, tuple[int, Callable[[], BinaryIO]]] = {
        "oci-layout": _inline(_canonical({"imageLayoutVersion": "1.0.0"})),
        "index.json": _inline(index_doc),
        "manifest.json": _inline(docker_doc),
        f"blobs/sha256/{_sha(config_doc)[7:]}": _inline(config_doc),
        f"blobs/sha256/{_sha(manifest_doc)[7:]}": _inline(manifest_doc),
    }
    for layer in layers:  # two images may share a layer; one blob serves both
        files[f"blobs/sha256/{layer.diff_id}"] = (layer.size, lambda p=layer.path: open(p, "rb"))
    entries = [Entry(path, "file", 0o644, size=size, opener=opener)
               for path, (size, opener) in files.items()]
    write_layer(entries, out, mtime)
    return ImageDigests(manifest=_sha(manifest_doc), config=_sha(config_doc))


def _inline(data: bytes) -> tuple[int, Callable[[], BinaryIO]]:
    return len(data), lambda: io.BytesIO(data)


def read_image_names(archive: Path) -> dict[str, str]:
    """Image name -> manifest digest, as ``ctr images import`` will name them; the Docker
    ``manifest.json`` must name the same images."""
    documents: dict[str, bytes] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name in ("index.json", "manifest.json") and member.isreg():
                    documents[member.name] = tar.extractfile(member).read(CHUNK)
    except (tarfile.TarError, OSError) as err:
        raise BundleError(f"not a readable image archive ({err})") from None
    try:
        index = json.loads(documents["index.json"])
        docker = json.loads(documents["manifest.json"])
        names = {m["annotations"][IMAGE_NAME]: m["digest"] for m in index["manifests"]}
        tags = {tag for image in docker for tag in image["RepoTags"]}
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"not an image archive kubeforge wrote (bad or missing {err})") from None
    if tags != set(names):
        raise BundleError(f"index.json names {sorted(names)} but manifest.json {sorted(tags)}")
    return names
