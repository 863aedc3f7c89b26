"""Day-2 benchmark on sandbox hosts (not a test): how long adding one worker takes next to a
full install of the same cluster (Kubespray's scale.yml runs as long as a full install;
kubeforge should need about one node's worth), on the 3+2 HA lab (examples/ha-guestbook.kf)
and on a larger one (the same with more workers, as many as this machine holds), then
removing that worker again, an etcd backup and restore of the 3+2 cluster, and last the
upgrade of each cluster from the previous minor (where it was installed) to the newest.

    python bench/day2.py [--workers 6] [--only small|large] [--no-etcd] [--no-upgrade]

Builds (or finds cached) the test bundles. Each size gets its own sandbox (removed at the end).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers, run from a checkout

from tests.k8s.bundle_fixture import KUBERNETES, PREVIOUS, build_bundle  # noqa: E402
from tests.k8s.ha_cluster import HaCluster, example_source, upgraded_source  # noqa: E402

PREFIX = {"small": "10.86.0.", "large": "10.87.0."}
FIRST_EXTRA = 31  # extra workers at .31, .32, ...
UPGRADE = f"upgrade {PREVIOUS} -> {KUBERNETES}"


def _with_workers(source: str, prefix: str, names: list[str]) -> str:
    anchor = re.search(r"^  node worker2 \{[^\n]*\}\n", source, re.M)
    assert anchor, "examples/ha-guestbook.kf's last node line moved"
    lines = "".join(f"  node {n} {{ address {prefix}{FIRST_EXTRA + i}  role worker }}\n"
                    for i, n in enumerate(names))
    return source[:anchor.end()] + lines + source[anchor.end():]


def _timed_apply(cluster: HaCluster, *args: str) -> float:
    started = time.monotonic()
    proc = cluster.on_hosts("apply", *args)
    if proc.returncode:
        raise SystemExit(f"apply {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return time.monotonic() - started


def run(size: str, extra: int, bundle: Path, etcd: bool, newer: Path | None) -> dict:
    """``newer``: the newest release's bundle, to upgrade to at the end (the cluster is
    installed from ``bundle``, of the previous minor, then)."""
    prefix = PREFIX[size]
    base = example_source("ha-guestbook.kf", prefix, bundle,
                          version=PREVIOUS if newer else "")
    workers = [f"worker{3 + i}" for i in range(extra)]
    with tempfile.TemporaryDirectory(prefix=f"kf-bench-day2-{size}-") as tmp:
        cluster = HaCluster(Path(tmp), "ha-lab", _with_workers(base, prefix, workers),
                            f"kfday2{size[0]}", bundle)
        out: dict = {"nodes": 5 + extra}
        try:
            cluster.up()
            out["full install"] = _timed_apply(cluster)
            grown = [*workers, "workerx"]
            cluster.kf.write_text(_with_workers(base, prefix, grown))
            started = time.monotonic()
            cluster.up()
            out["sandbox up (one host)"] = time.monotonic() - started
            out["add one worker"] = _timed_apply(cluster)
            cluster.kf.write_text(_with_workers(base, prefix, workers))
            out["remove one worker"] = _timed_apply(cluster, "--allow-removal")
            if etcd:
                out.update(_etcd(cluster))
            if newer:
                cluster.kf.write_text(upgraded_source(
                    cluster.kf.read_text(), (PREVIOUS, KUBERNETES), (bundle, newer)))
                out[UPGRADE] = _timed_apply(cluster)
        finally:
            cluster.down()
        return out


def _etcd(cluster: HaCluster) -> dict:
    """`kubeforge etcd backup` and `etcd restore` of the running cluster (the restore puts
    back the state the backup saw, so nothing is lost here)."""
    started = time.monotonic()
    proc = cluster.kubeforge("etcd", "backup", str(cluster.kf), "-o",
                             str(cluster.root / "snapshots"), "-i",
                             str(cluster.sandbox_dir / "inventory.yaml"), "--known-hosts",
                             str(cluster.sandbox_dir / "known_hosts"))
    if proc.returncode:
        raise SystemExit(f"etcd backup failed:\n{proc.stderr[-4000:]}")
    backup = time.monotonic() - started
    snapshot = sorted((cluster.root / "snapshots").iterdir())[-1]
    started = time.monotonic()
    proc = cluster.kubeforge("etcd", "restore", str(cluster.kf), str(snapshot), "--yes", "-i",
                             str(cluster.sandbox_dir / "inventory.yaml"), "--known-hosts",
                             str(cluster.sandbox_dir / "known_hosts"))
    if proc.returncode:
        raise SystemExit(f"etcd restore failed:\n{proc.stderr[-4000:]}")
    return {"etcd backup": backup, "etcd restore": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=6,
                        help="Extra workers of the large cluster (3 control planes + 2 + N).")
    parser.add_argument("--only", choices=("small", "large"))
    parser.add_argument("--no-etcd", action="store_true", help="Skip backup and restore.")
    parser.add_argument("--no-upgrade", action="store_true",
                        help=f"Install {KUBERNETES} and skip the upgrade from {PREVIOUS}.")
    args = parser.parse_args()
    console = Console(stderr=True)
    newer = None if args.no_upgrade else build_bundle()
    bundle = build_bundle() if args.no_upgrade else build_bundle(PREVIOUS)
    sizes = [args.only] if args.only else ["small", "large"]
    results = {}
    for size in sizes:
        console.print(f"[bold]{size}[/]: bringing up, installing, adding a worker ...")
        results[size] = run(size, 0 if size == "small" else args.workers, bundle,
                            etcd=not args.no_etcd and size == "small", newer=newer)
    rows = ["nodes", "full install", "sandbox up (one host)", "add one worker",
            "remove one worker", "etcd backup", "etcd restore", UPGRADE]
    table = Table(title="kubeforge day 2 (seconds)")
    table.add_column("")
    for size in sizes:
        table.add_column(f"{size} ({results[size]['nodes']} nodes)", justify="right")
    for row in rows:
        table.add_row(row, *(f"{results[s][row]:.1f}" if isinstance(results[s].get(row), float)
                             else str(results[s].get(row, "-")) for s in sizes))
    table.add_row("add one / full install", *(
        f"{results[s]['add one worker'] / results[s]['full install']:.2f}" for s in sizes))
    Console().print(table)


if __name__ == "__main__":
    main()
