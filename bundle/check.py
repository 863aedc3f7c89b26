"""``kubeforge bundle check``: is a bundle directory complete and intact?

Everything is checked before anything is used, and every problem is reported at once, each
naming its file: the manifest itself (its build key covers its content), each file's presence, type, size and sha256, the host
binaries and CNI plugins a node needs, every image kubeadm names for the release, the
applications' images (the echo test server, the guestbook example's three), and that each
image archive really holds the image it is listed as.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from kubeforge.bundle.archive import read_image_names
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.guestbook import IMAGES as GUESTBOOK_IMAGES
from kubeforge.bundle.images import ECHO_IMAGE
from kubeforge.bundle.layout import BIN, CNI_BIN, CNI_PLUGINS, HOST_BINARIES
from kubeforge.bundle.manifest import Manifest, load_manifest, sealed
from kubeforge.bundle.recipes import ECHO_VERSION

#: Images a bundle holds besides kubeadm's and the CNI's -> what they are.
APP_IMAGES = {f"{ECHO_IMAGE}:{ECHO_VERSION}": "the echo test application", **GUESTBOOK_IMAGES}


def safe_path(relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return bool(parts) and not PurePosixPath(relative).is_absolute() and ".." not in parts


def file_problems(directory: Path, manifest: Manifest) -> list[str]:
    problems = []
    for entry in manifest.files:
        if not safe_path(entry.path):
            problems.append(f"{entry.path}: path leaves the bundle directory")
            continue
        path = directory / entry.path
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            problems.append(f"{entry.path}: missing")
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{entry.path}: not a regular file")
        elif info.st_size != entry.size:
            problems.append(f"{entry.path}: size {info.st_size} bytes, manifest says {entry.size}"
                            " (truncated or replaced)")
        elif (found := sha256_file(path)) != entry.sha256:
            problems.append(f"{entry.path}: sha256 {found[:16]}..., manifest says "
                            f"{entry.sha256[:16]}... (corrupt or replaced)")
    return problems


def content_problems(manifest: Manifest) -> list[str]:
    """What a bundle must hold whatever its manifest says: a node's binaries and plugins,
    each image kubeadm names and the applications' images, in archives the manifest lists."""
    paths = {f.path for f in manifest.files}
    required = [f"{BIN}/{name}" for name in HOST_BINARIES] + [f"{CNI_BIN}/{n}" for n in CNI_PLUGINS]
    problems = [f"{path}: missing from the manifest" for path in required if path not in paths]
    if not manifest.kubeadm_images:
        problems.append("manifest.json: no kubeadm image list")
    names = {image.name: image for image in manifest.images}
    problems += [f"image {name}: needed by kubeadm, not in the bundle"
                 for name in manifest.kubeadm_images if name not in names]
    problems += [f"image {name}: {what}, not in the bundle"
                 for name, what in APP_IMAGES.items() if name not in names]
    problems += [f"image {image.name}: archive {image.archive} is not a manifest file"
                 for image in manifest.images if image.archive not in paths]
    return problems


def archive_problems(directory: Path, manifest: Manifest, skip: set[str]) -> list[str]:
    problems = []
    for image in manifest.images:
        if image.archive in skip:
            continue
        try:
            found = read_image_names(directory / image.archive)
        except BundleError as err:
            problems.append(f"{image.archive}: {err}")
            continue
        if found.get(image.name) != image.manifest_digest:
            problems.append(f"{image.archive}: does not hold {image.name} at "
                            f"{image.manifest_digest} (holds {', '.join(sorted(found)) or 'nothing'})")
    return problems


def bundle_problems(directory: Path) -> tuple[Manifest, list[str]]:
    manifest = load_manifest(directory)
    problems = []
    if sealed(manifest).build_key != manifest.build_key:
        problems.append("manifest.json: its build_key does not match its content "
                        "(edited after the build?)")
    problems += file_problems(directory, manifest)
    problems += content_problems(manifest)
    bad = {p.split(":", 1)[0] for p in problems}
    problems += archive_problems(directory, manifest, skip=bad)
    return manifest, problems


def check_bundle(directory: Path | str) -> Manifest:
    """The manifest of a complete, intact bundle; otherwise a :class:`BundleError` listing
    every problem (``err.problems``), each naming its file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"bundle: {directory} is not a directory")
    manifest, problems = bundle_problems(directory)
    if problems:
        shown = "\n".join(f"  {p}" for p in problems)
        raise BundleError(f"bundle: {directory} is not a complete, intact bundle "
                          f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{shown}\n"
                          "hint: rebuild it with `kubeforge bundle build`", tuple(problems))
    return manifest
