"""Build one component's binaries into the cache: Go recipes through a wrapper module, and
the pause binary from the Kubernetes module's C source.

Each binary is its own cache entry, keyed by its recipe, the Go version (and gcc's, when C is
compiled) and the builder revision: an interrupted build resumes at the next binary, and a
changed component rebuilds only its own binaries.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kubeforge.bundle.cache import Cache, input_key
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.gomod import wrapper_gomod
from kubeforge.bundle.gotool import build
from kubeforge.bundle.recipes import GoRecipe
from kubeforge.bundle.tools import Progress, output, require, run_logged


@dataclass(frozen=True)
class Built:
    """A binary in the cache."""

    name: str
    path: Path
    sha256: str
    size: int
    component: str
    fresh: bool  # built by this run (False: the cache had it)


def gcc_version() -> str:
    require("gcc", "apt-get install gcc libc6-dev (the pause binary and runc are C/cgo)")
    return output(["gcc", "-dumpfullversion", "-dumpversion"], what="`gcc -dumpversion`").strip()


def derived_main(source_dir: Path, file: str, dropped: tuple[str, ...]) -> str:
    """The text of ``file`` of the source module without the ``dropped`` lines, each of which
    must be there (an upstream change must not go unnoticed)."""
    text = (source_dir / file).read_text()
    lines = text.splitlines(keepends=True)
    for line in dropped:
        matches = [i for i, have in enumerate(lines) if have.strip() == line]
        if len(matches) != 1:
            raise BundleError(f"bundle: {source_dir.name}/{file} does not have the line "
                              f"`{line}` exactly once; the recipe needs updating")
        del lines[matches[0]]
    return "".join(lines)


def _wrapper_dir(cache: Cache, recipe: GoRecipe, source_dir: Path | None = None) -> Path:
    """The wrapper module's directory: one per distinct go.mod, kept so go.sum is reused."""
    if recipe.local:
        files = local_sources(recipe)
        workdir = cache.workdir(f"{recipe.local.replace('/', '-')}-"
                                f"{input_key([[n, d.hex()] for n, d in files])[:12]}")
        for name, data in files:
            (workdir / name).write_bytes(data)
        return workdir
    seed = wrapper_gomod(recipe.wrapper, dict(recipe.requires), dict(recipe.replaces))
    workdir = cache.workdir(f"{recipe.wrapper}-{input_key(seed)[:12]}")
    seed_file = workdir / "go.mod.seed"
    if not seed_file.exists() or seed_file.read_text() != seed:
        # `go build -mod=mod` adds the requirements it resolves to go.mod; start from the seed.
        (workdir / "go.mod").write_text(seed)
        seed_file.write_text(seed)
    for binary, file, dropped in recipe.derived:
        if source_dir is None:
            raise BundleError(f"bundle: {binary} is derived from {recipe.source}, which was "
                              "not fetched")
        main = workdir / "cmd" / binary / "main.go"
        main.parent.mkdir(parents=True, exist_ok=True)
        main.write_text(derived_main(source_dir, file, dropped))
    return workdir


def local_sources(recipe: GoRecipe) -> list[tuple[str, bytes]]:
    """(name, content) of a module shipped with kubeforge (``bundle/echo``,
    ``bundle/apps/guestbook``): its go.mod, Go files and embedded files, by name."""
    if not recipe.local:
        return []
    source = resources.files("kubeforge.bundle").joinpath(*recipe.local.split("/"))
    files = sorted((entry.name, entry.read_bytes()) for entry in source.iterdir()
                   if entry.is_file() and not entry.name.endswith("_test.go")
                   and not entry.name.startswith("."))
    if not any(name == "go.mod" for name, _ in files):
        raise BundleError(f"bundle: kubeforge's module {recipe.local} has no go.mod "
                          "(a broken installation?)")
    return files


def local_source_key(recipe: GoRecipe) -> list:
    return [[name, data.decode()] for name, data in local_sources(recipe)]


def go_binary_key(recipe: GoRecipe, name: str, toolchain: dict[str, str]) -> str:
    """The cache key of binary ``name`` of ``recipe`` ("bin" entries): every input of it."""
    tools = {"go": toolchain["go"], **({"gcc": toolchain["gcc"]} if recipe.cgo else {})}
    return input_key("go-binary", recipe.key_data(), local_source_key(recipe), name, tools)


def build_go(cache: Cache, recipe: GoRecipe, toolchain: dict[str, str], progress: Progress,
             only: tuple[str, ...] | None = None, source_dir: Path | None = None
             ) -> dict[str, Built]:
    """Every binary of ``recipe`` (or those named in ``only``), from the cache or built now;
    ``source_dir``: the source module's directory, for binaries derived from its files."""
    built = {}
    for name, package in recipe.binaries:
        if only is not None and name not in only:
            continue
        key = go_binary_key(recipe, name, toolchain)

        def make(tmp: Path, name=name, package=package) -> dict:
            progress(f"bundle: building {name} ({package} {recipe.source_version}) ...")
            workdir = _wrapper_dir(cache, recipe, source_dir)
            build(workdir, package, tmp / name, ldflags=recipe.ldflags,
                  tags=recipe.tags_for(name), flags=recipe.flags, cgo=recipe.cgo,
                  log=cache.log(recipe.component), progress=progress, what=f"building {name}")
            return _record(tmp / name, recipe.component, recipe.version)

        started = time.monotonic()
        entry, data, fresh = cache.get_or_make("bin", key, make)
        built[name] = Built(name, entry / name, data["sha256"], data["size"], recipe.component,
                            fresh)
        done = f"built in {time.monotonic() - started:.0f} s" if fresh else "cached"
        progress(f"bundle: {name} {recipe.version}: {done}")
    return built


def _record(path: Path, component: str, version: str) -> dict:
    path.chmod(0o755)
    return {"sha256": sha256_file(path), "size": path.stat().st_size, "component": component,
            "version": version}


PAUSE_SOURCE = "build/pause/linux/pause.c"
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static")


def build_pause(cache: Cache, kubernetes_dir: Path, pause_tag: str, kubernetes_tag: str,
                toolchain: dict[str, str], progress: Progress) -> Built:
    """build/pause/Makefile: ``gcc -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV)``, with
    the Kubernetes release as REV (upstream's ``git describe --contains``)."""
    source = kubernetes_dir / PAUSE_SOURCE
    if not source.is_file():
        raise BundleError(f"bundle: k8s.io/kubernetes@{kubernetes_tag} has no {PAUSE_SOURCE} "
                          "in its module zip; the pause image cannot be built")
    makefile_tag = _makefile_tag(kubernetes_dir / "build/pause/Makefile")
    if makefile_tag != pause_tag:
        raise BundleError(f"bundle: kubeadm {kubernetes_tag} names pause:{pause_tag} but the "
                          f"module's build/pause/Makefile builds {makefile_tag}; refusing to "
                          "label one as the other")
    define = f"-DVERSION=v{pause_tag}-{kubernetes_tag}"
    key = input_key("pause", sha256_file(source), PAUSE_CFLAGS, define, toolchain["gcc"])

    def make(tmp: Path) -> dict:
        progress(f"bundle: building pause {pause_tag} (gcc -static {PAUSE_SOURCE}) ...")
        shutil.copyfile(source, tmp / "pause.c")
        run_logged(["gcc", *PAUSE_CFLAGS, define, "-o", "pause", "pause.c"], cwd=tmp,
                   log=cache.log("pause"), progress=progress, what="building pause")
        (tmp / "pause.c").unlink()
        return _record(tmp / "pause", "pause", pause_tag)

    entry, data, fresh = cache.get_or_make("bin", key, make)
    progress(f"bundle: pause {pause_tag}: {'built' if fresh else 'cached'}")
    return Built("pause", entry / "pause", data["sha256"], data["size"], "pause", fresh)


def _makefile_tag(makefile: Path) -> str:
    for line in makefile.read_text().splitlines():
        if line.replace(" ", "").startswith("TAG?="):
            return line.split("=", 1)[1].strip()
    raise BundleError(f"bundle: {makefile} sets no TAG")
