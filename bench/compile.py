"""Compile-time benchmark: generated sources with 10, 100 and 500 workloads.

Run: python bench/compile.py [--repeat N]. Prints the median wall time of each stage:
parse, check (parse + lowering + semantic checks), manifests (emit), and the full
`kubeforge compile` (with a warm state directory, so the PKI is reused as on a re-run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit.manifests import manifest_artifacts
from kubeforge.compiler.lower import load_program
from kubeforge.dsl.parser import parse

CLUSTER = """cluster bench {
  kubernetes "1.37.2"
  endpoint "10.77.0.100:8443"
  loadbalancer keepalived-haproxy { vip 10.77.0.100  interface "eth0" }
  node cp1 { address 10.77.0.11  role control-plane }
  node cp2 { address 10.77.0.12  role control-plane }
  node cp3 { address 10.77.0.13  role control-plane }
  node w1 { address 10.77.0.21  role worker }
}
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


def source(n: int) -> str:
    body = "".join(WORKLOAD.format(i=i) for i in range(n))
    return f"{CLUSTER}\nnamespace bench {{\n{body}}}\n"


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 500])
    args = ap.parse_args()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    print(f"{'workloads':>9} {'lines':>7} {'parse':>9} {'check':>9} {'manifests':>10} {'compile':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in args.sizes:
            text = source(n)
            path = root / f"bench{n}.kf"
            path.write_text(text)
            program, _ = load_program(path)
            assert len(program.workloads) == n
            state = root / f"state{n}"
            compile_file(path, root / "out", state_dir=state, now=now)  # warm the PKI state
            t_parse = median_time(lambda: parse(text, str(path)), args.repeat)
            t_check = median_time(lambda: load_program(path), args.repeat)
            t_emit = median_time(lambda: manifest_artifacts(program), args.repeat)
            t_all = median_time(lambda: compile_file(path, root / "out", state_dir=state, now=now),
                                args.repeat)
            print(f"{n:>9} {text.count(chr(10)):>7} {t_parse * 1000:>7.1f}ms {t_check * 1000:>7.1f}ms"
                  f" {t_emit * 1000:>8.1f}ms {t_all * 1000:>7.1f}ms")


if __name__ == "__main__":
    main()
