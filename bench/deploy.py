"""Deploy benchmark on six sandbox hosts (not a test): cold apply, no-op re-apply, per phase,
for the ssh target and the ansible target, and the ansible/ssh wall time ratio.

    python bench/deploy.py [--sandbox-dir DIR] [--target ssh|ansible ...]

The cluster uses all six hosts: external etcd on node1-3, keepalived+haproxy on node4-5 and
the control plane on node6, which is left out with --limit because sandbox hosts carry no
Kubernetes packages; the run stops before kubeadm (--until etcd). Each target gets the same
plan on the same hosts, cleaned first so its cold apply is cold.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console

from kubeforge.targets import ansible
from kubeforge.targets.base import SshOptions
from kubeforge.targets.deploy import Deployment, apply, prepare
from kubeforge.targets.runner import Selection
from kubeforge.targets.sandbox import Sandbox
from kubeforge.targets.ssh import SshTarget

# Everything the plan places up to etcd goes, so the second target's cold run is as cold as
# the first's (a config file left in place would be "unchanged" for it).
CLEAN = ("systemctl disable --now etcd haproxy keepalived 2>/dev/null; rm -rf /var/lib/etcd/member "
         "/etc/kubernetes /etc/default/etcd /etc/systemd/system/etcd.service "
         "/etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf "
         "/etc/keepalived/check_apiserver.sh; systemctl daemon-reload; true")
TARGETS = ("ssh", "ansible")


def files(box: Sandbox, root: Path) -> tuple[Path, Path]:
    hosts = {h.name: h.address for h in box.hosts()}
    vip = hosts["node1"].rsplit(".", 1)[0] + ".100"
    kf = root / "bench.kf"
    kf.write_text(f"""cluster bench {{
  kubernetes "1.37.2"
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


def clean(dep: Deployment, known_hosts: Path) -> None:
    target = SshTarget(SshOptions(known_hosts))
    for spec in dep.hosts.values():
        target.open(spec).run(CLEAN, timeout=60)
    target.close()


def run(dep: Deployment, target: str, known_hosts: Path, selection: Selection):
    """One apply with ``target``: (wall seconds, report, seconds per phase)."""
    quiet = Console(file=io.StringIO())
    t0 = time.monotonic()
    if target == "ansible":
        report = ansible.apply(dep, SshOptions(known_hosts), selection, 8, quiet, live=False)
    else:
        report = apply(dep, SshTarget(SshOptions(known_hosts)), selection, 8, quiet, live=False)
    wall = time.monotonic() - t0
    timings = json.loads((dep.state_dir / "timings.json").read_text())
    return wall, report, timings["phases"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", default=".kubeforge/sandbox")
    parser.add_argument("--target", action="append", choices=TARGETS,
                        help="Only this target (repeat); default both.")
    args = parser.parse_args()
    box = Sandbox(args.sandbox_dir)
    box.up(6)
    selection = Selection(frozenset({"node1", "node2", "node3", "node4", "node5"}),
                          until="etcd")
    walls: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kf, inv = files(box, root)
        dep = prepare(kf, inv, root / "build", root / "state")
        for target in args.target or TARGETS:
            clean(dep, box.known_hosts)
            print(f"== {target} target")
            for label in ("cold apply", "no-op re-apply"):
                wall, report, phases = run(dep, target, box.known_hosts, selection)
                walls[target, label] = wall
                print(f"{label:15} {wall:6.2f}s  {len(report.results)} steps, "
                      f"{report.changes} changed, failed={report.failed}")
                for phase, seconds in phases.items():
                    print(f"    {phase:14} {seconds:6.2f}s")
        clean(dep, box.known_hosts)  # leave no etcd or VIP behind on the shared hosts
    for label in ("cold apply", "no-op re-apply"):
        if ("ssh", label) in walls and ("ansible", label) in walls:
            ssh, ans = walls["ssh", label], walls["ansible", label]
            print(f"{label:15} ssh {ssh:6.2f}s  ansible {ans:6.2f}s  ansible/ssh {ans / ssh:5.2f}x")


if __name__ == "__main__":
    main()
