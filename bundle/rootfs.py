"""Debian root file systems under the images that need Debian's userland.

kube-proxy runs ``iptables-restore``/``nft`` and ``conntrack``; flanneld runs iptables and
``ip``; the guestbook example's redis images run Debian's ``redis-server``. Without a
registry, each base is bootstrapped from Debian packages with mmdebstrap (the essential set
plus those packages), reproducibly (``SOURCE_DATE_EPOCH``), and cached by a hash of its
recipe and the mirrors it comes from. iptables uses its nft backend, Debian's default and
what the hosts' own tools use, so rules land in one place.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kubeforge.bundle.cache import Cache, input_key
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.tools import Progress, require, run_logged

SUITE = "bookworm"
VARIANT = "essential"
PACKAGES = ("ca-certificates", "conntrack", "iproute2", "iptables", "nftables")
#: mmdebstrap's merged-/usr hooks: the /usr symlinks plus usr-is-merged, so that
#: init-system-helpers' "usrmerge | usr-is-merged" does not pull in usrmerge and all of perl.
HOOK_DIR = "/usr/share/mmdebstrap/hooks/merged-usr"
#: 2026-01-01T00:00:00Z: file times and dates inside generated files (the layer's tar times
#: are normalised again to the bundle's own epoch).
EPOCH = 1767225600
#: Only what the packages depend on: recommendations pull in all of perl.
APT_OPTIONS = ('APT::Install-Recommends "false"',)
DPKG_OPTIONS = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-exclude=/usr/share/info/*")
#: Logs, caches, package lists and backup files would only make the layer differ per build.
CLEANUP = """\
rm -rf "$root"/var/log/* "$root"/var/cache/* "$root"/var/lib/apt/lists/*
rm -f "$root"/var/lib/dpkg/*-old "$root"/etc/*-
"""
CUSTOMIZE = """\
set -eu
root="$1"
chroot "$root" update-alternatives --set iptables /usr/sbin/iptables-nft
chroot "$root" update-alternatives --set ip6tables /usr/sbin/ip6tables-nft
""" + CLEANUP


@dataclass(frozen=True)
class RootfsRecipe:
    """One Debian root file system: the packages on top of the essential set and the
    mmdebstrap customize hook (its first argument is the root directory)."""

    name: str  # "debian-base": the cache log's name and the progress lines'
    packages: tuple[str, ...]
    customize: str


BASE = RootfsRecipe("debian-base", PACKAGES, CUSTOMIZE)


def mirrors() -> list[str]:
    """This machine's Debian mirror lines (the sandbox image reads them the same way)."""
    from kubeforge.targets.sandbox_image import debian_mirrors
    from kubeforge.targets.sandbox_run import SandboxError

    try:
        return debian_mirrors()
    except SandboxError as err:
        raise BundleError(str(err).replace("sandbox:", "bundle:", 1)) from None


def recipe(base: RootfsRecipe = BASE) -> dict:
    """Everything the root file system is made from (its cache key)."""
    return {"suite": SUITE, "variant": VARIANT, "packages": base.packages, "epoch": EPOCH,
            "hooks": HOOK_DIR,
            "apt": APT_OPTIONS, "dpkg": DPKG_OPTIONS, "customize": base.customize,
            "mirrors": mirrors()}


def ensure_rootfs(cache: Cache, progress: Progress, base: RootfsRecipe = BASE
                  ) -> tuple[Path, dict]:
    """(the root file system tarball, its entry data: sha256 and installed packages)."""
    spec = recipe(base)

    def make(tmp: Path) -> dict:
        require("mmdebstrap", "apt-get install mmdebstrap (it builds the images' Debian base)")
        progress(f"bundle: bootstrapping {base.name} ({', '.join(base.packages)}) ...")
        hook = tmp / "customize.sh"
        hook.write_text(base.customize)
        out = tmp / "rootfs.tar"
        run_logged(["mmdebstrap", f"--variant={VARIANT}", f"--include={','.join(base.packages)}",
                    f"--hook-dir={HOOK_DIR}",
                    *[f"--aptopt={opt}" for opt in APT_OPTIONS],
                    *[f"--dpkgopt={opt}" for opt in DPKG_OPTIONS],
                    f'--customize-hook=sh {hook} "$1"', SUITE, str(out), *spec["mirrors"]],
                   env={"SOURCE_DATE_EPOCH": str(EPOCH)}, log=cache.log(base.name),
                   progress=progress, what=f"mmdebstrap ({base.name})", timeout=1800)
        hook.unlink()
        return {"sha256": sha256_file(out), "packages": installed_packages(out)}

    entry, data, fresh = cache.get_or_make("rootfs", input_key("rootfs", spec), make)
    progress(f"bundle: {base.name}: {'built' if fresh else 'cached'}")
    return entry / "rootfs.tar", data


def _read(rootfs: Path, path: str) -> str:
    with tarfile.open(rootfs) as tar:
        for name in (f"./{path}", path):
            try:
                return tar.extractfile(name).read().decode()
            except KeyError:
                continue
    raise BundleError(f"bundle: {rootfs} has no /{path}")


def user_ids(rootfs: Path, user: str) -> str:
    """``uid:gid`` of ``user`` in the root file system's /etc/passwd (a system user a
    package created): an image config names it by number, which needs no lookup."""
    for line in _read(rootfs, "etc/passwd").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user:
            return f"{fields[2]}:{fields[3]}"
    raise BundleError(f"bundle: {rootfs} has no user {user} in /etc/passwd")


def installed_packages(rootfs: Path) -> dict[str, str]:
    """Package -> version, from the root file system's dpkg status database."""
    text = _read(rootfs, "var/lib/dpkg/status")
    packages = {}
    for stanza in text.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.MULTILINE))
        if "Package" in fields and "install ok installed" in fields.get("Status", ""):
            packages[fields["Package"]] = fields["Version"]
    return dict(sorted(packages.items()))
