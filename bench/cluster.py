"""HA cluster benchmark on sandbox hosts (not a test): wall time from bare hosts to every node
Ready and to the guestbook served, per phase, for stacked etcd (examples/ha-guestbook.kf) and
external etcd (examples/ha-external-etcd.kf) side by side, then the VIP failover time (the
holder stopped, and killed, until `kubectl get nodes` through the VIP answers again).

    python bench/cluster.py [--only stacked|external] [--no-failover]

Builds (or finds cached) the same offline bundle the tests use. Each variant gets its own
sandbox, brought up from the file with `kubeforge sandbox up FILE` and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers, run from a checkout

from tests.k8s.bundle_fixture import build_bundle  # noqa: E402
from tests.k8s.ha_cluster import HaCluster, example_source, http_get  # noqa: E402

VARIANTS = {  # name -> (example, cluster name, sandbox name, subnet prefix)
    "stacked": ("ha-guestbook.kf", "ha-lab", "kfbench", "10.82.0."),
    "external": ("ha-external-etcd.kf", "ha-ext", "kfbenchx", "10.83.0."),
}


def _served(cluster: HaCluster, host: str) -> bool:
    base = f"http://{cluster.address(host)}:30080/guestbook.php"
    if http_get(f"{base}?cmd=set&key=bench&value=served", timeout=3)[0] != 200:
        return False
    return http_get(f"{base}?cmd=get&key=bench", timeout=3)[2] == '{"data": "served"}'


def _failover(cluster: HaCluster, how: str) -> float:
    vip = cluster.address("cp1").rsplit(".", 1)[0] + ".100"
    holder = cluster.vip_holder(vip, ("cp1", "cp2", "cp3"))
    started = time.monotonic()
    subprocess.run(["docker", how, cluster.container(holder)], check=True, capture_output=True)
    cluster.shell.forget(holder)
    try:
        cluster.wait("the API through the VIP", lambda: cluster.kubectl(
            "get", "nodes", "--request-timeout=3s", timeout=10, check=False).returncode == 0,
            timeout=300, every=0.25)
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "start", cluster.container(holder)], check=True,
                       capture_output=True)
        cluster.wait("all nodes Ready again", lambda: all(cluster.nodes_ready().values()), 600)


def run(variant: str, bundle: Path, failover: bool) -> dict:
    example, name, sandbox, prefix = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="kf-bench-cluster-") as tmp:
        cluster = HaCluster(Path(tmp), name, example_source(example, prefix, bundle), sandbox,
                            bundle)
        out: dict = {}
        try:
            started = time.monotonic()
            cluster.up()
            out["sandbox up"] = time.monotonic() - started
            started = time.monotonic()
            proc = cluster.on_hosts("apply")
            out["apply"] = time.monotonic() - started
            if proc.returncode:
                raise SystemExit(f"{variant}: apply failed:\n{proc.stderr[-4000:]}")
            timings = json.loads((Path(tmp) / ".kubeforge" / name / "timings.json").read_text())
            ready = [s for s in timings["steps"] if s["id"].endswith("/verify/nodes-ready")]
            out["nodes Ready"] = ready[0]["at"] + ready[0]["seconds"]
            cluster.wait("the guestbook served", lambda: _served(cluster, "worker1"), 600, 0.5)
            out["guestbook served"] = time.monotonic() - started
            out["phases"] = timings["phases"]
            if failover:
                for how in ("stop", "kill"):
                    out[f"VIP failover ({how})"] = _failover(cluster, how)
        finally:
            cluster.down()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(VARIANTS))
    parser.add_argument("--no-failover", action="store_true")
    args = parser.parse_args()
    bundle = build_bundle()
    variants = [args.only] if args.only else list(VARIANTS)
    results = {v: run(v, bundle, not args.no_failover) for v in variants}
    table = Table(title="HA cluster from bare sandbox hosts (seconds)")
    table.add_column("measure")
    for v in variants:
        table.add_column(v, justify="right")
    rows = [k for k in results[variants[0]] if k != "phases"]
    phases = list(dict.fromkeys(p for r in results.values() for p in r["phases"]))
    for key in rows:
        table.add_row(key, *(f"{results[v][key]:.1f}" if key in results[v] else "-"
                             for v in variants))
    for phase in phases:
        table.add_row(f"  phase {phase}", *(f"{results[v]['phases'][phase]:.1f}"
                                            if phase in results[v]["phases"] else "-"
                                            for v in variants))
    Console().print(table)


if __name__ == "__main__":
    main()
