"""``kubeforge bundle build``: from a Kubernetes version to a complete bundle directory.

1. fetch ``k8s.io/kubernetes`` and build kubeadm;
2. ask that kubeadm which images the release needs, which fixes etcd, CoreDNS and pause;
3. build pause and bootstrap the Debian base (quick, and they fail early if gcc or the
   Debian mirror is missing);
4. build etcd, CoreDNS, crictl, containerd, runc (containerd's pinned version), the CNI
   plugins, flannel, the echo test application, the addons (local-path-provisioner), the
   guestbook example's frontend and its redis base;
5. build the other Kubernetes commands (the long part);
6. write the image archives, assemble the directory and write the manifest last.

Every part comes from the cache when its inputs are unchanged, so a second build of the same
version does no building and, when the directory already holds it, writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kubeforge.bundle import recipes
from kubeforge.bundle.addons import addon_image_specs, addon_recipes
from kubeforge.bundle.assemble import assemble
from kubeforge.bundle.cache import Cache, default_cache_dir
from kubeforge.bundle.components import Built, build_go, build_pause, gcc_version
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.gomod import parse_gomod
from kubeforge.bundle.gotool import ModuleInfo, download, go_version
from kubeforge.bundle.guestbook import REDIS_BASE, REDIS_USER, data_sources, guestbook_image_specs
from kubeforge.bundle.images import ImageBuilder, extra_image_specs, kubeadm_image_specs
from kubeforge.bundle.layout import BIN, CNI_BIN, CNI_PLUGINS, HOST_BINARIES, UNITS, placement
from kubeforge.bundle.manifest import BundleFile, BundleImage, Component, Manifest, sealed
from kubeforge.bundle.rootfs import EPOCH, SUITE, ensure_rootfs, user_ids
from kubeforge.bundle.tools import Progress, output
from kubeforge.bundle.versions import (ARCH, companions, etcd_module_version,
                                       parse_kubernetes)


@dataclass(frozen=True)
class BuildResult:
    directory: Path
    manifest: Manifest
    built: tuple[str, ...]  # parts built by this run (the rest came from the cache)
    changed: tuple[str, ...]  # bundle files written
    removed: tuple[str, ...]  # files of an older bundle removed
    up_to_date: bool  # the directory already held exactly this bundle
    seconds: float


def kubeadm_images(kubeadm: Path, tag: str) -> list[str]:
    """``kubeadm config images list --kubernetes-version TAG``: offline, in kubeadm's order."""
    text = output([str(kubeadm), "config", "images", "list", "--kubernetes-version", tag],
                  what="`kubeadm config images list`", timeout=120)
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names or any(":" not in name or " " in name for name in names):
        raise BundleError(f"bundle: `kubeadm config images list` printed no image list: {text!r}")
    return names


def _tag(names: list[str], short: str) -> str:
    for name in names:
        repository, _, tag = name.rpartition(":")
        if repository.rpartition("/")[2] == short:
            return tag
    raise BundleError(f"bundle: kubeadm names no {short} image")


class _Run:
    """One build: the cache, the toolchain and what has been produced so far."""

    def __init__(self, cache: Cache, progress: Progress) -> None:
        self.cache, self.progress = cache, progress
        self.toolchain = {"go": go_version(), "gcc": gcc_version()}
        self.scratch = cache.workdir("download")
        self.binaries: dict[str, Built] = {}
        self.components: dict[str, dict] = {}

    def fetch(self, path: str, version: str) -> ModuleInfo:
        return download(path, version, self.scratch)

    def go(self, recipe: recipes.GoRecipe, only: tuple[str, ...] | None = None,
           source: ModuleInfo | None = None) -> None:
        self.binaries.update(build_go(self.cache, recipe, self.toolchain, self.progress, only,
                                      source.dir if source else None))
        self.components.setdefault(recipe.component, {
            "version": recipe.version, "source": recipe.source,
            "source_version": recipe.source_version})


def build_bundle(kubernetes: str, out: Path, *, cache_dir: Path | None = None,
                 progress: Progress = lambda _line: None) -> BuildResult:
    started = time.monotonic()
    version = parse_kubernetes(kubernetes)
    companions(version)  # an unknown minor is refused before anything is built
    cache = Cache(cache_dir or default_cache_dir())
    with cache.locked():
        run = _Run(cache, progress)
        k8s = run.fetch("k8s.io/kubernetes", version.tag)
        k8s_recipe = recipes.kubernetes(version, parse_gomod(k8s.gomod, "k8s.io/kubernetes"),
                                        k8s.time)
        run.go(k8s_recipe, only=("kubeadm",))
        names = kubeadm_images(run.binaries["kubeadm"].path, version.tag)
        progress(f"bundle: kubeadm {version.tag} needs {len(names)} images: {' '.join(names)}")
        pause_tag = _tag(names, "pause")
        run.binaries["pause"] = build_pause(cache, k8s.dir, pause_tag, version.tag,
                                            run.toolchain, progress)
        run.components["pause"] = {"version": pause_tag, "source": "k8s.io/kubernetes "
                                   "build/pause/linux/pause.c", "source_version": version.tag}
        rootfs, rootfs_data = ensure_rootfs(cache, progress)
        run.components["debian-base"] = {
            "version": rootfs_data["sha256"][:16], "source": f"Debian {SUITE} (mmdebstrap)",
            "source_version": SUITE, "packages": rootfs_data["packages"]}
        modules = _build_companions(run, version, names)
        redis_root = _build_guestbook(run)
        run.go(k8s_recipe)  # the long part last: a failure elsewhere shows up early

        # Image times are kubeforge's, not the release's: an image whose files are the same in
        # two bundles (flannel, the apps, a base layer) is then the same image, so an upgrade
        # finds it imported instead of moving and importing it again on every node.
        images = ImageBuilder(cache, rootfs, rootfs_data["sha256"], EPOCH, progress,
                              roots={REDIS_BASE.name: redis_root})
        sources = {name: built.path for name, built in run.binaries.items()}
        sources["mk-docker-opts.sh"] = modules["flannel"].dir / "dist/mk-docker-opts.sh"
        sources.update(data_sources())
        specs = (kubeadm_image_specs(names)
                 + extra_image_specs(modules["flannel"].version, recipes.ECHO_VERSION)
                 + guestbook_image_specs(user_ids(redis_root[0], REDIS_USER))
                 + addon_image_specs())
        digests = {name: built.sha256 for name, built in run.binaries.items()}
        image_entries, files, fresh = [], {}, []
        for spec in specs:
            archive, data, built_now = images.image(spec, sources, digests)
            path = f"images/{spec.short}.tar"
            files[path] = (archive, data["sha256"], data["size"], 0o644, spec.component,
                           spec.roles)
            image_entries.append(BundleImage(spec.name, path, spec.component, spec.roles,
                                             data["manifest_digest"], data["config_digest"]))
            fresh += [spec.name] if built_now else []
        files.update(_host_files(run, modules["containerd"]))
        manifest = _manifest(version.tag, images.epoch, run, files, image_entries, names)
        fresh += [name for name, built in run.binaries.items() if built.fresh]
        written = assemble(out, {path: spec[0] for path, spec in files.items()}, manifest,
                           progress)
    return BuildResult(out, manifest, tuple(fresh), written.changed, written.removed,
                       written.up_to_date, time.monotonic() - started)


def _build_companions(run: _Run, version, names: list[str]) -> dict[str, ModuleInfo]:
    """etcd and CoreDNS as kubeadm names them, the runtime, the CNI and the echo app; returns
    the modules whose files the bundle also takes (containerd's unit, flannel's script)."""
    pins = companions(version)
    etcd_version = etcd_module_version(_tag(names, "etcd"))
    etcd_mods = {path: parse_gomod(run.fetch(path, etcd_version).gomod, path)
                 for path in recipes.ETCD_MODULES}
    run.go(recipes.etcd(etcd_version, etcd_mods))
    run.go(recipes.coredns(_tag(names, "coredns")))
    run.go(recipes.crictl(pins.crictl))
    containerd = run.fetch(recipes.CONTAINERD, pins.containerd)
    run.go(recipes.containerd(pins.containerd))
    run.go(recipes.runc(_runc_version(containerd)))
    run.go(recipes.cni_plugins(pins.cni_plugins, recipes.BASE_PLUGINS))
    run.go(recipes.flannel_cni(pins.flannel_cni))
    flannel = run.fetch(recipes.FLANNEL, pins.flannel)
    run.go(recipes.flannel(pins.flannel), source=flannel)
    run.go(recipes.echo())
    for recipe in addon_recipes():
        run.go(recipe)
    return {"containerd": containerd, "flannel": flannel}


def _build_guestbook(run: _Run) -> tuple[Path, str]:
    """The guestbook example's frontend and the redis images' Debian base; returns that
    base (tarball, sha256)."""
    run.go(recipes.guestbook())
    root, data = ensure_rootfs(run.cache, run.progress, REDIS_BASE)
    run.components["redis"] = {
        "version": data["packages"]["redis-server"], "source": f"Debian {SUITE} redis-server "
        "(mmdebstrap)", "source_version": SUITE, "packages": data["packages"]}
    return root, data["sha256"]


def _runc_version(containerd: ModuleInfo) -> str:
    """The runc containerd's CI runs with (script/setup/runc-version in its module)."""
    pin = containerd.dir / "script/setup/runc-version"
    try:
        return pin.read_text().strip()
    except FileNotFoundError:
        raise BundleError(f"bundle: {containerd.path}@{containerd.version} pins no runc "
                          "version (script/setup/runc-version)") from None


def _host_files(run: _Run, containerd: ModuleInfo) -> dict[str, tuple]:
    """Bundle path -> (source, sha256, size, mode, component, roles) for bin/, cni/bin/ and
    units/ (the kubelet units ship with kubeforge, containerd's with its module)."""
    files = {}
    for name in [*HOST_BINARIES, *CNI_PLUGINS]:
        built = run.binaries[name]
        path = f"{BIN if name in HOST_BINARIES else CNI_BIN}/{name}"
        files[path] = (built.path, built.sha256, built.size, 0o755, built.component,
                       placement(path)[1])
    units = resources.files("kubeforge.bundle") / "units"
    for name, source, component in (
            ("containerd.service", containerd.dir / "containerd.service", "containerd"),
            ("kubelet.service", Path(str(units / "kubelet.service")), "kubernetes"),
            ("10-kubeadm.conf", Path(str(units / "10-kubeadm.conf")), "kubernetes")):
        path = f"{UNITS}/{name}"
        files[path] = (source, sha256_file(source), source.stat().st_size, 0o644, component,
                       placement(path)[1])
    return files


def _manifest(tag: str, epoch: int, run: _Run, files: dict[str, tuple],
              images: list[BundleImage], names: list[str]) -> Manifest:
    entries = tuple(BundleFile(path, sha, size, mode, component, placement(path)[0], roles)
                    for path, (_, sha, size, mode, component, roles) in sorted(files.items()))
    components = tuple(Component(
        name=name, version=info["version"], source=info["source"],
        source_version=info["source_version"],
        files=tuple(f.path for f in entries if f.component == name),
        packages=tuple(sorted(info.get("packages", {}).items())))
        for name, info in sorted(run.components.items()))
    return sealed(Manifest(kubernetes=tag, arch=ARCH, build_key="", source_date_epoch=epoch,
                           toolchain=tuple(sorted(run.toolchain.items())),
                           components=components, files=entries, images=tuple(images),
                           kubeadm_images=tuple(names)))
