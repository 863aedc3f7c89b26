"""`kubeforge bundle build|check`: offline bundles of every binary and image a cluster needs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.versions import DEFAULT_KUBERNETES

json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")


def _fail(err: BundleError, as_json: bool) -> None:
    click.echo(str(err), err=True)  # with --json too: the log tail of a failed build
    if as_json:
        click.echo(json.dumps({"ok": False, "error": str(err), "problems": list(err.problems)},
                              indent=2, sort_keys=True))
    sys.exit(err.exit_code)


def _summary(manifest) -> dict:
    return {"kubernetes": manifest.kubernetes, "build_key": manifest.build_key,
            "files": len(manifest.files), "bytes": sum(f.size for f in manifest.files),
            "images": [image.name for image in manifest.images],
            "components": {c.name: c.version for c in manifest.components}}


@click.group()
def bundle() -> None:
    """Offline bundles: binaries and image archives built from the Go module proxy."""


@bundle.command()
@click.option("--kubernetes", "version", default=DEFAULT_KUBERNETES, show_default=True,
              help="Kubernetes release to bundle.")
@click.option("-o", "--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Bundle directory (created; an older bundle there is updated in place).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Build cache (default $KUBEFORGE_BUNDLE_CACHE or ~/.cache/kubeforge/bundles).")
@json_option
def build(version: str, out_dir: Path, cache_dir: Path | None, as_json: bool) -> None:
    """Build (or bring up to date) the bundle for a Kubernetes VERSION in OUT.

    Needs Go 1.26+, gcc with static libc and libseccomp (libseccomp-dev), and mmdebstrap;
    modules come from GOPROXY. Progress goes to stderr; the first build takes a long time,
    later ones reuse the cache.
    """
    from kubeforge.bundle.build import build_bundle

    try:
        result = build_bundle(version, out_dir, cache_dir=cache_dir,
                              progress=lambda line: click.echo(line, err=True))
    except BundleError as err:
        _fail(err, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "dir": str(result.directory),
                               **_summary(result.manifest), "built": list(result.built),
                               "changed": list(result.changed), "removed": list(result.removed),
                               "up_to_date": result.up_to_date,
                               "seconds": round(result.seconds, 1)}, indent=2, sort_keys=True))
        return
    state = "already up to date" if result.up_to_date else (
        f"{len(result.changed)} files written, {len(result.removed)} removed")
    click.echo(f"bundle {result.manifest.kubernetes} in {result.directory}: {state}; "
               f"{len(result.built)} parts built, the rest cached ({result.seconds:.1f} s)",
               err=True)


@bundle.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def check(directory: Path, as_json: bool) -> None:
    """Verify that DIRECTORY is a complete, intact bundle (sizes, sha256, kubeadm's images)."""
    from kubeforge.bundle.check import check_bundle

    try:
        manifest = check_bundle(directory)
    except BundleError as err:
        _fail(err, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "dir": str(directory), **_summary(manifest)},
                              indent=2, sort_keys=True))
        return
    click.echo(f"{directory}: ok: Kubernetes {manifest.kubernetes}, {len(manifest.files)} files, "
               f"{len(manifest.images)} images", err=True)
