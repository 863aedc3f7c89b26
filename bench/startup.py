"""Startup time: whole-process `kubeforge --help` and `kubeforge check FILE` of a small file,
for this tree and (with --against DIR) another checkout side by side in one run.

Run: python bench/startup.py [--against /path/to/old/checkout] [--repeat 10]
     [--file examples/guestbook.kf]

Each command runs once to warm the bytecode and parser caches, then --repeat times as a fresh
process; the median wall time is printed, and beside it the median CPU time (user + system),
which other load on the machine disturbs less. The `python` row is the interpreter alone (`-c pass`, with
site and the installed .pth hooks): no command can start faster than that on this machine.
Trees are imported straight from their folders as bench/compile.py does. Bytecode is
cached as an installed kubeforge's is, in a temporary PYTHONPYCACHEPREFIX (so nothing is
written into the trees), even where PYTHONDONTWRITEBYTECODE would have every run compile
every module again.
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
from bench.compile import BOOT  # noqa: E402


def seconds(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[3:])} failed:\n{proc.stderr.read().decode()}")
    proc.stderr.close()
    return took, usage.ru_utime + usage.ru_stime


def median(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    seconds(argv, env)  # warm: bytecode, the parser cache
    runs = [seconds(argv, env) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, help="another kubeforge checkout to compare with")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--file", type=Path, default=HERE / "examples" / "guestbook.kf")
    args = ap.parse_args()
    trees = {"this": HERE, **({"against": args.against.resolve()} if args.against else {})}
    commands = {"--help": ["--help"], "check": ["check", str(args.file.resolve())]}
    print(f"{'command':>8}" + "".join(f" {t + ' s':>10} {'cpu s':>6}" for t in trees)
          + ("  against/this" if len(trees) > 1 else ""), flush=True)
    with tempfile.TemporaryDirectory() as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        wall, cpu = median([sys.executable, "-c", "pass"], args.repeat, env)
        print(f"{'python':>8}" + f" {wall:>10.3f} {cpu:>6.3f}" * len(trees), flush=True)
        for label, argv in commands.items():
            times = {name: median([sys.executable, "-c", BOOT, str(tree), *argv], args.repeat, env)
                     for name, tree in trees.items()}
            print(f"{label:>8}" + "".join(f" {w:>10.3f} {c:>6.3f}" for w, c in times.values())
                  + (f"  {times['against'][0] / times['this'][0]:>11.1f}x" if len(trees) > 1
                     else ""), flush=True)


if __name__ == "__main__":
    main()
