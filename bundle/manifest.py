"""``DIR/manifest.json``: what a bundle holds, pinned by sha256, and where each part goes.

The manifest is the bundle's table of contents and its completeness mark: the builder writes
it last, atomically, after every file it names is in place, so a directory without one is an
unfinished (or foreign) directory, never a bundle. Consumers (``install bundle`` in a plan,
``bundle check``) read it through :func:`load_manifest`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.layout import ROLES

FORMAT = "kubeforge-bundle/v1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the bundle directory: "bin/kubelet"
    sha256: str
    size: int
    mode: int  # 0o755
    component: str
    install: str | None = None  # the host path, for files installed as they are
    roles: tuple[str, ...] = ()  # the roles whose hosts need the file


@dataclass(frozen=True)
class BundleImage:
    name: str  # exactly what kubeadm names: "registry.k8s.io/kube-apiserver:v1.37.2"
    archive: str  # the bundle file holding it: "images/kube-apiserver.tar"
    component: str
    roles: tuple[str, ...]
    manifest_digest: str  # "sha256:...": the image's OCI manifest
    config_digest: str  # "sha256:...": the image id containerd and crictl show

    @property
    def repository(self) -> str:
        return self.name.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.name.rpartition(":")[2]


@dataclass(frozen=True)
class Component:
    name: str  # "kubernetes", "etcd", "containerd", ...
    version: str  # the version the binaries report: "v1.37.2"
    source: str  # the module (or other source) it is built from: "k8s.io/kubernetes"
    source_version: str  # that source's version: "v1.37.2"
    files: tuple[str, ...] = ()
    packages: tuple[tuple[str, str], ...] = ()  # Debian packages (name, version), if any


@dataclass(frozen=True)
class Manifest:
    kubernetes: str  # "v1.37.2"
    arch: str
    build_key: str  # sha256 of every input: equal keys, equal bundles
    source_date_epoch: int  # image times (layer mtimes, creation); binaries date their release
    toolchain: tuple[tuple[str, str], ...]  # ("go", "go1.26.8"), ("gcc", ...)
    components: tuple[Component, ...]
    files: tuple[BundleFile, ...]
    images: tuple[BundleImage, ...]
    kubeadm_images: tuple[str, ...]  # `kubeadm config images list` of this release, in order
    format: str = FORMAT
    _by_path: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_path", {f.path: f for f in self.files})

    # -- lookups the plan uses ---------------------------------------------------------
    def file(self, path: str) -> BundleFile:
        try:
            return self._by_path[path]
        except KeyError:
            raise BundleError(f"bundle: manifest names no file {path}") from None

    def files_for(self, role: str) -> tuple[BundleFile, ...]:
        """Host files (binaries, CNI plugins, units) a host of ``role`` installs, by path."""
        _known_role(role)
        return tuple(f for f in self.files if f.install and role in f.roles)

    def images_for(self, role: str) -> tuple[BundleImage, ...]:
        """Images a host of ``role`` imports into containerd's ``k8s.io`` namespace."""
        _known_role(role)
        return tuple(i for i in self.images if role in i.roles)

    def image(self, name: str) -> BundleImage:
        """The image called ``name`` (full reference), or by repository alone (``pause``,
        ``registry.k8s.io/pause``) when the tag is not given."""
        for image in self.images:
            if name in (image.name, image.repository) or image.repository.endswith("/" + name):
                return image
        raise BundleError(f"bundle: no image {name} in this bundle")

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise BundleError(f"bundle: no component {name} in this bundle")

    @property
    def pause_image(self) -> str:
        """The runtime's sandbox image (containerd ``sandbox``), as kubeadm names it."""
        return self.image("pause").name

    @property
    def image_repository(self) -> str:
        """kubeadm's ``imageRepository`` under which every control-plane image is named."""
        return self.image("kube-apiserver").repository.rpartition("/")[0]

    # -- (de)serialisation ---------------------------------------------------------------
    def as_dict(self) -> dict:
        return {
            "format": self.format, "kubernetes": self.kubernetes, "arch": self.arch,
            "build_key": self.build_key, "source_date_epoch": self.source_date_epoch,
            "toolchain": dict(self.toolchain),
            "components": [{**_plain(c), "files": list(c.files),
                            "packages": dict(c.packages)} for c in self.components],
            "files": [{**_plain(f), "mode": f"{f.mode:04o}", "roles": list(f.roles)}
                      for f in self.files],
            "images": [{**_plain(i), "roles": list(i.roles)} for i in self.images],
            "kubeadm_images": list(self.kubeadm_images),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"


def sealed(manifest: Manifest) -> Manifest:
    """``manifest`` with its build key: the sha256 of everything else it says, so two
    bundles with equal keys hold the same files (by sha256) for the same purposes."""
    body = {**manifest.as_dict(), "build_key": ""}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return replace(manifest, build_key=hashlib.sha256(text.encode()).hexdigest())


def _plain(obj) -> dict:
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _known_role(role: str) -> None:
    if role not in ROLES:
        raise BundleError(f"bundle: unknown role `{role}` (roles: {', '.join(ROLES)})")


def manifest_from_dict(data: dict, origin: str = MANIFEST) -> Manifest:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BundleError(f"bundle: {origin}: format `{found}` is not {FORMAT} "
                          "(rebuild the bundle with this kubeforge)")
    try:
        return Manifest(
            kubernetes=data["kubernetes"], arch=data["arch"], build_key=data["build_key"],
            source_date_epoch=int(data["source_date_epoch"]),
            toolchain=tuple(sorted(data["toolchain"].items())),
            components=tuple(Component(
                name=c["name"], version=c["version"], source=c["source"],
                source_version=c["source_version"], files=tuple(c["files"]),
                packages=tuple(sorted(c["packages"].items()))) for c in data["components"]),
            files=tuple(BundleFile(
                path=f["path"], sha256=f["sha256"], size=int(f["size"]), mode=int(f["mode"], 8),
                component=f["component"], install=f["install"], roles=tuple(f["roles"]))
                for f in data["files"]),
            images=tuple(BundleImage(
                name=i["name"], archive=i["archive"], component=i["component"],
                roles=tuple(i["roles"]), manifest_digest=i["manifest_digest"],
                config_digest=i["config_digest"]) for i in data["images"]),
            kubeadm_images=tuple(data["kubeadm_images"]))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BundleError(f"bundle: {origin} is malformed ({type(err).__name__}: {err}); "
                          "rebuild the bundle") from None


def load_manifest(directory: Path | str) -> Manifest:
    """The manifest of the bundle in ``directory``; a missing or unreadable one is refused
    (the bundle is incomplete: its build did not finish)."""
    path = Path(directory) / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BundleError(f"bundle: {path} is missing: {directory} is not a complete bundle "
                          "(an unfinished build leaves none); run `kubeforge bundle build`") from None
    except OSError as err:
        raise BundleError(f"bundle: cannot read {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BundleError(f"bundle: {path}:{err.lineno}:{err.colno}: not valid JSON "
                          f"({err.msg})") from None
    return manifest_from_dict(data, str(path))
