"""Compile at fleet scale: whole-process `kubeforge compile` of many nodes, many workloads, or
both, for this tree and (with --against DIR) another checkout side by side in one run.

Run: python bench/compile_fleet.py [--against /path/to/old/checkout] [--nodes 100 200 400]
     [--workloads 1000 2000] [--both 400:2000] [--repeat 3]

Each size is compiled once to warm its state directory (the PKI is reused, as on a re-run),
then timed --repeat times as a fresh process (median, with the peak RSS of the slowest run).
The growth line divides the largest size's time by the smallest's: linear growth gives the
ratio of the sizes. A checkout is imported straight from its folders (pyproject's
package-dir), so nothing is installed for it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
from bench.compile import WORKLOAD  # noqa: E402

#: Imports kubeforge from the checkout in argv[1] by its package-dir mapping, then runs the
#: CLI with the rest of argv.
BOOT = """
import importlib.util, sys, tomllib
root = sys.argv.pop(1)
dirs = tomllib.load(open(root + "/pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"]
for name in sorted(dirs, key=lambda n: n.count(".")):
    where = root + "/" + dirs[name]
    spec = importlib.util.spec_from_file_location(name, where + "/__init__.py",
                                                  submodule_search_locations=[where])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
from kubeforge.cli import main
sys.argv[0] = "kubeforge"
main()
"""


def source(nodes: int, workloads: int) -> str:
    # Control planes and workers in 172.16.0.0/12, away from the default pod and service CIDRs.
    workers = "".join(f"  node w{i} {{ address 172.{17 + i // 60000}.{(i // 250) % 240}."
                      f"{i % 250 + 1}  role worker }}\n" for i in range(nodes))
    text = f"""cluster fleet {{
  kubernetes "1.37.2"
  endpoint "172.16.0.100:8443"
  network {{ nodes 172.16.0.0/12 }}
  loadbalancer keepalived-haproxy {{ vip 172.16.0.100  interface "eth0" }}
  node cp1 {{ address 172.16.0.11  role control-plane }}
  node cp2 {{ address 172.16.0.12  role control-plane }}
  node cp3 {{ address 172.16.0.13  role control-plane }}
{workers}}}
"""
    if workloads:
        text += "\nnamespace fleet {\n" + "".join(WORKLOAD.format(i=i)
                                                 for i in range(workloads)) + "}\n"
    return text


def run(tree: Path, kf: Path, out: Path, state: Path) -> tuple[float, int]:
    """Seconds and peak RSS (MiB) of one `kubeforge compile` process of ``tree``."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BOOT, str(tree), "compile", str(kf),
                             "-o", str(out), "--state-dir", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: compile of {kf.name} failed:\n{proc.stderr.read().decode()}")
    proc.stderr.close()
    return seconds, usage.ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, help="another kubeforge checkout to compare with")
    ap.add_argument("--nodes", type=int, nargs="*", default=[100, 200, 400])
    ap.add_argument("--workloads", type=int, nargs="*", default=[1000, 2000])
    ap.add_argument("--both", nargs="*", default=[], metavar="NODES:WORKLOADS")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    trees = {"this": HERE, **({"against": args.against.resolve()} if args.against else {})}
    sizes = ([(n, 0) for n in args.nodes] + [(0, w) for w in args.workloads]
             + [tuple(map(int, b.split(":"))) for b in args.both])
    head = f"{'nodes':>6} {'workloads':>9}" + "".join(f" {t + ' s':>12} {'MiB':>6}" for t in trees)
    print(head + ("  against/this" if len(trees) > 1 else ""), flush=True)
    results: dict[tuple[int, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for nodes, workloads in sizes:
            kf = root / f"fleet-{nodes}-{workloads}.kf"
            kf.write_text(source(nodes, workloads))
            row, times = f"{nodes:>6} {workloads:>9}", {}
            for name, tree in trees.items():
                out, state = root / f"out-{name}", root / f"state-{name}-{nodes}-{workloads}"
                run(tree, kf, out, state)  # warm: the PKI is made once
                runs = [run(tree, kf, out, state) for _ in range(args.repeat)]
                times[name] = statistics.median(s for s, _ in runs)
                row += f" {times[name]:>12.2f} {max(m for _, m in runs):>6}"
            if len(trees) > 1:
                row += f"  {times['against'] / times['this']:>11.1f}x"
            results[(nodes, workloads)] = times
            print(row, flush=True)
    for label, group in (("nodes", [s for s in sizes if s[1] == 0]),
                         ("workloads", [s for s in sizes if s[0] == 0])):
        if len(group) > 1:
            small, large = group[0], group[-1]
            factor = max(large) / max(small)
            print(f"growth over {label} {max(small)} -> {max(large)} ({factor:.1f}x the input):"
                  + "".join(f" {t} {results[large][t] / results[small][t]:.1f}x" for t in trees))


if __name__ == "__main__":
    main()
