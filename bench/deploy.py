"""Deploy benchmark on six sandbox hosts (not a test): cold apply, no-op re-apply, per phase.

    python bench/deploy.py [--sandbox-dir DIR]

The cluster uses all six hosts: external etcd on node1-3, keepalived+haproxy on node4-5 and
the control plane on node6, which is left out with --limit because sandbox hosts carry no
Kubernetes packages; the run stops before kubeadm (--until etcd). Hosts are cleaned first so
the cold apply is cold.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console

from kubeforge.targets.base import SshOptions
from kubeforge.targets.deploy import apply, prepare
from kubeforge.targets.runner import Selection
from kubeforge.targets.sandbox import Sandbox
from kubeforge.targets.ssh import SshTarget

CLEAN = ("systemctl disable --now etcd haproxy keepalived 2>/dev/null; rm -rf /var/lib/etcd/member "
         "/etc/kubernetes /etc/default/etcd /etc/systemd/system/etcd.service; true")


def files(box: Sandbox, root: Path) -> tuple[Path, Path]:
    hosts = {h.name: h.address for h in box.hosts()}
    vip = hosts["node1"].rsplit(".", 1)[0] + ".100"
    kf = root / "bench.kf"
    kf.write_text(f"""cluster bench {{
  kubernetes "1.31.2"
  endpoint "{vip}:8443"
  network {{ pods 10.244.0.0/16  services 10.96.0.0/12  nodes {vip.rsplit('.', 1)[0]}.0/24 }}
  etcd external
  install preinstalled
  loadbalancer keepalived-haproxy {{ vip {vip}  interface "eth0"  port 8443 }}
  nodes from "inventory.yaml"
}}
""")
    inv = root / "inventory.yaml"
    groups = {"etcd": ["node1", "node2", "node3"], "loadbalancers": ["node4", "node5"],
              "control_plane": ["node6"]}
    lines = ["all:", "  vars:", f"    ansible_ssh_private_key_file: {box.key_path}",
             "  children:"]
    for group, names in groups.items():
        lines += [f"    {group}:", "      hosts:"]
        lines += [f"        {n}: {{ansible_host: {hosts[n]}}}" for n in names]
    inv.write_text("\n".join(lines) + "\n")
    return kf, inv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", default=".kubeforge/sandbox")
    args = parser.parse_args()
    box = Sandbox(args.sandbox_dir)
    box.up(6)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kf, inv = files(box, root)
        dep = prepare(kf, inv, root / "build", root / "state")
        target = SshTarget(SshOptions(box.known_hosts))
        for name, spec in dep.hosts.items():
            session = target.open(spec)
            session.run(CLEAN, timeout=60)
        target.close()
        selection = Selection(frozenset({"node1", "node2", "node3", "node4", "node5"}),
                              until="etcd")
        quiet = Console(file=io.StringIO())
        rows = []
        for label in ("cold apply", "no-op re-apply"):
            t0 = time.monotonic()
            report = apply(dep, SshTarget(SshOptions(box.known_hosts)), selection, 8, quiet,
                           live=False)
            wall = time.monotonic() - t0
            timings = json.loads((dep.state_dir / "timings.json").read_text())
            rows.append((label, wall, report, timings["phases"]))
        for label, wall, report, phases in rows:
            print(f"{label:15} {wall:6.2f}s  {len(report.results)} steps, "
                  f"{report.changes} changed, failed={report.failed}")
            for phase, seconds in phases.items():
                print(f"    {phase:14} {seconds:6.2f}s")


if __name__ == "__main__":
    main()
