"""Compile time at fleet scale: nodes, workloads, and both, per phase, for this tree and
(with --against DIR) another checkout side by side in one run.

Run: python bench/compile.py [--against OLD_CHECKOUT] [--sizes NODES:WORKLOADS ...]
     [--repeat N] [--no-phases]

For every size (default: 100 and 1,000 nodes; 500 and 5,000 workloads; both together) and
tree, one `kubeforge compile` warms the state directory (the PKI and the compile memo are
then reused, as on a re-run) and the tree's own cache directory (stored parser, schema
checks; other kubeforge processes on the machine cannot evict it). Then:

* phases: one process times parse, check (lowering and every semantic check, parse
  included), each emitter (an artifact family: pki, kubeconfig, ..., plan, ansible) and the
  write, in-process, in CPU seconds;
* `check` and `compile`: whole `kubeforge` processes (median of --repeat), wall and CPU
  (user + system) time, and peak RSS.

The growth lines divide the largest size's time by the smallest's in each group: linear
growth gives the ratio of the inputs (10x for the defaults). A checkout is imported straight
from its folders (pyproject's package-dir), so nothing is installed for it; its bytecode is
cached as an installed kubeforge's is (in the run's temporary directory), even where
PYTHONDONTWRITEBYTECODE would have every process compile every module again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
#: Where the processes keep their bytecode (set by main: a temporary directory).
PYCACHE = Path(tempfile.gettempdir())

#: Imports kubeforge from the checkout in argv[1] by its package-dir mapping, then runs the
#: rest of the script (``RUN``) with the rest of argv.
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
"""

CLI = BOOT + """
from kubeforge.cli import main
sys.argv[0] = "kubeforge"
main()
"""

#: Times each phase of one compile in-process and prints them as JSON (CPU seconds by name:
#: user + system time of the process, which a loaded machine moves less than the wall time).
PHASES = BOOT + """
import datetime as dt, importlib, json, time
from pathlib import Path
from kubeforge.compiler import build
from kubeforge.compiler.artifacts import BuildContext, write_artifacts
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.state import StateDir
from kubeforge.dsl.parser import load

kf, out, state = map(Path, sys.argv[1:4])
times = {}
started = time.process_time()
load(kf)
times["parse"] = time.process_time() - started
started = time.process_time()
program, _ = load_program(kf)
times["check"] = time.process_time() - started
ctx = BuildContext(program=program, state_dir=state, now=dt.datetime.now(dt.timezone.utc),
                   base_dir=Path(program.base_dir))
try:  # the memo a compile reads from the state directory, in trees that have one
    from kubeforge.compiler.text_memo import kept_in as memo
except ImportError:
    import contextlib
    memo = lambda state: contextlib.nullcontext()
from kubeforge.compiler.gc_batch import fewer_collections  # as compile runs its emitters
with fewer_collections(), memo(StateDir(state)):
    for name in build.EMITTERS:
        module = importlib.import_module(name)
        started = time.process_time()
        ctx.artifacts.extend(module.emit(ctx))
        times["emit " + name.rsplit(".", 1)[-1]] = time.process_time() - started
started = time.process_time()
write_artifacts(out / program.cluster.name, ctx.artifacts, StateDir(state).digest_key())
times["write"] = time.process_time() - started
times["files"] = len(ctx.artifacts)
print(json.dumps(times))
"""

CLUSTER = """cluster fleet {{
  kubernetes "1.37.2"
  endpoint "172.16.0.100:8443"
  network {{ nodes 172.16.0.0/12 }}
  loadbalancer keepalived-haproxy {{ vip 172.16.0.100  interface "eth0" }}
  node cp1 {{ address 172.16.0.11  role control-plane }}
  node cp2 {{ address 172.16.0.12  role control-plane }}
  node cp3 {{ address 172.16.0.13  role control-plane }}
{workers}}}
"""

WORKLOAD = """  config app{i} {{ MODE = "prod"  INDEX = "{i}" }}
  deployment app{i} {{
    image "registry.example.com/app:{i}"
    replicas 3
    env from config app{i}
    port http 8080
    probe http "/healthz" port http {{ period 10s }}
    resources {{ cpu 100m  memory 128Mi  limits {{ memory 256Mi }} }}
    rollout {{ max_surge 1  max_unavailable 0  history 5 }}
    autoscale 3..10 cpu 80%
    spread soft
  }}
  service app{i} -> app{i} port http 80 to http
"""

DEFAULT_SIZES = ["100:0", "1000:0", "0:500", "0:5000", "100:500", "1000:5000"]


def source(nodes: int, workloads: int) -> str:
    """Three control planes and ``nodes`` workers (in 172.16.0.0/12, away from the default pod
    and service CIDRs), and ``workloads`` deployments with a config and a service each."""
    workers = "".join(f"  node w{i} {{ address 172.{17 + i // 60000}.{(i // 250) % 240}."
                      f"{i % 250 + 1}  role worker }}\n" for i in range(nodes))
    text = CLUSTER.format(workers=workers)
    if workloads:
        text += "\nnamespace fleet {\n" + "".join(WORKLOAD.format(i=i)
                                                 for i in range(workloads)) + "}\n"
    return text


def run(tree: Path, *argv: str, script: str = CLI,
        cache: Path | None = None) -> tuple[float, int, str, float]:
    """Seconds, peak RSS (MiB), standard output and CPU seconds (user + system) of one
    process of ``tree``: on a shared machine the CPU time moves less than the wall time.
    ``cache``: the tree's own cache directory (stored parser, schema checks), which other
    kubeforge processes on the machine then cannot evict."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)  # bytecode as an installed kubeforge has it
    if cache:
        env["KUBEFORGE_CACHE_DIR"] = str(cache)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", script, str(tree), *argv],
                                stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{tree}: {' '.join(argv[:2])} failed:\n{err.read().decode()}")
        return (seconds, usage.ru_maxrss // 1024, out.read().decode(),
                usage.ru_utime + usage.ru_stime)


def measure(tree: Path, kf: Path, root: Path, label: str, repeat: int,
            phases: bool) -> dict[str, float]:
    out, state = root / f"out-{label}", root / f"state-{label}-{kf.stem}"
    cache = root / f"cache-{label}"
    compile_argv = ("compile", str(kf), "-o", str(out), "--state-dir", str(state))
    run(tree, *compile_argv, cache=cache)  # warm: the PKI is made once, the caches filled
    result: dict[str, float] = {}
    if phases:
        result.update(json.loads(run(tree, str(kf), str(out), str(state), script=PHASES,
                                     cache=cache)[2]))
    checks = [run(tree, "check", str(kf), cache=cache) for _ in range(repeat)]
    result["process check"] = statistics.median(r[0] for r in checks)
    result["check CPU"] = statistics.median(r[3] for r in checks)
    result["check MiB"] = max(r[1] for r in checks)
    runs = [run(tree, *compile_argv, cache=cache) for _ in range(repeat)]
    result["process compile"] = statistics.median(r[0] for r in runs)
    result["compile CPU"] = statistics.median(r[3] for r in runs)
    result["compile MiB"] = max(r[1] for r in runs)
    return result


def _row(name: str, values: list[float], ratio: bool, unit: str = "s") -> str:
    fmt = (lambda v: f"{v:>10.0f}") if unit != "s" else (lambda v: f"{v:>10.2f}")
    line = f"  {name:<22}" + "".join(fmt(v) for v in values)
    if ratio and len(values) == 2 and values[0] > 0 and unit == "s":
        line += f"  {values[1] / values[0]:>8.1f}x"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, help="another kubeforge checkout to compare with")
    ap.add_argument("--sizes", nargs="*", default=DEFAULT_SIZES, metavar="NODES:WORKLOADS")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-phases", dest="phases", action="store_false",
                    help="only the whole-process times")
    args = ap.parse_args()
    trees = {"this": HERE, **({"against": args.against.resolve()} if args.against else {})}
    sizes = [tuple(map(int, s.split(":"))) for s in args.sizes]
    results: dict[tuple[int, int], dict[str, dict[str, float]]] = {}
    global PYCACHE
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        PYCACHE = root / "pycache"
        for nodes, workloads in sizes:
            kf = root / f"fleet-{nodes}-{workloads}.kf"
            text = source(nodes, workloads)
            kf.write_text(text)
            got = {label: measure(tree, kf, root, label, args.repeat, args.phases)
                   for label, tree in trees.items()}
            results[(nodes, workloads)] = got
            files = f", {int(got['this']['files'])} files" if "files" in got["this"] else ""
            print(f"{nodes} nodes, {workloads} workloads ({len(text) // 1024} KiB, "
                  f"{text.count(chr(10))} lines{files})")  # the file count comes with phases
            print(f"  {'':<22}" + "".join(f"{label:>10}" for label in trees)
                  + ("  against/this" if len(trees) > 1 else ""))
            for key in got["this"]:
                if key != "files":
                    print(_row(key, [got[t].get(key, 0.0) for t in trees], len(trees) > 1,
                               "MiB" if key.endswith("MiB") else "s"))
            sys.stdout.flush()
    print()
    groups = {"nodes": [s for s in sizes if s[1] == 0], "workloads": [s for s in sizes if s[0] == 0],
              "both": [s for s in sizes if s[0] and s[1]]}
    for label, group in groups.items():
        if len(group) < 2:
            continue
        small, large = group[0], group[-1]
        factor = max(large[0] / max(small[0], 1), large[1] / max(small[1], 1))
        for what in ("process check", "process compile", "check CPU", "compile CPU"):
            print(f"growth over {label} {small} -> {large} ({factor:.0f}x the input), {what}:"
                  + "".join(f" {t} {results[large][t][what] / results[small][t][what]:.1f}x"
                            for t in trees))


if __name__ == "__main__":
    main()
