"""`kubeforge etcd backup|restore FILE -i INV`: snapshots of the cluster's etcd, and the way
back from one after its data was lost.

Both reach the hosts over SSH with their host keys checked (the options of `apply`). `backup`
takes a snapshot on the first member that can and fetches it; `restore` replaces the data of
every member with a snapshot: the API is down while it runs, so it asks first (or wants
`--yes` when no one can be asked).

Exit codes: 0 done, 1 failed on the cluster, 2 usage (inventory, a snapshot file that is
missing or not a snapshot, no --yes without a terminal).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kubeforge.cli_deploy import _hosts, _prepare, _ssh, common_options
from kubeforge.errors import UsageError


def _session(file, inventory, build_dir, state_dir, known_hosts, trust, jump, jump_key):
    from kubeforge.compiler.lower import load_program
    from kubeforge.targets.etcd_ops import Hosts

    dep = _prepare(file, inventory, build_dir, state_dir)
    program, _ = load_program(file)
    return program.cluster, Hosts(_ssh(known_hosts, trust, jump, jump_key), dep.hosts)


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.group("etcd")
def etcd() -> None:
    """Snapshots of the cluster's etcd, and restoring one."""


@etcd.command("backup")
@common_options(("--build-dir",))
@click.option("-o", "--out", "out_dir", default=Path("."), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the snapshot is written (0600, named after the cluster, member "
                   "and time).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def backup_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
               jump, jump_key, out_dir, as_json) -> None:
    """Take an etcd snapshot now on one healthy member and fetch it: prints its path, size,
    sha256 and revision. The members are tried in order (only those of --limit, if given)."""
    from kubeforge.targets.etcd_ops import backup

    cluster, hosts = _session(file, inventory, build_dir, state_dir, known_hosts,
                              trust_on_first_use, jump, jump_key)
    try:
        snap = backup(cluster, hosts, out_dir, _say, _hosts(limit))
    finally:
        hosts.close()
    if as_json:
        click.echo(json.dumps({"ok": True, **snap.as_dict()}, indent=2, sort_keys=True))
    else:
        click.echo(f"{snap.path}\n  member    {snap.member}\n  size      {snap.size} bytes\n"
                   f"  sha256    {snap.sha256}\n  revision  {snap.revision}\n"
                   f"  took      {snap.seconds}s")


@etcd.command("restore")
@common_options(("--build-dir",))
@click.argument("snapshot", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask: replace every member's data.")
@click.option("--timeout", default=900, show_default=True, type=click.IntRange(min=30),
              help="Seconds to wait for etcd and then the API to be healthy again.")
@click.option("--json", "as_json", is_flag=True, help="Print the stage times as JSON.")
def restore_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
                jump, jump_key, snapshot, yes, timeout, as_json) -> None:
    """Restore the cluster's etcd from SNAPSHOT: stop every API server and etcd member,
    restore each member's data from the snapshot, start them and wait until all members
    and the API are healthy. Safe to run again after an interruption (with the same
    SNAPSHOT it goes on where it stopped)."""
    from kubeforge.targets.etcd_ops import check_snapshot_file, restore

    check_snapshot_file(snapshot)
    if limit:
        raise UsageError("--limit: a restore works on every etcd member and control plane")
    question = (f"Restore the etcd of {file} from {snapshot}? Every API server and etcd "
                "member stops, and each member's data is replaced (what was written after "
                "the snapshot is lost)")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{question.split('?')[0]}: this replaces the cluster's data; "
                             "pass --yes to confirm (no terminal to ask on)")
        click.confirm(question, abort=True)
    cluster, hosts = _session(file, inventory, build_dir, state_dir, known_hosts,
                              trust_on_first_use, jump, jump_key)
    try:
        times = restore(cluster, hosts, snapshot, _say, timeout)
    finally:
        hosts.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "seconds": times}, indent=2, sort_keys=True))
    else:
        click.echo(f"restored {cluster.name} from {snapshot}: {len(cluster.etcd_nodes)} "
                   f"members healthy, the API ready ({sum(times.values()):.0f}s)")
