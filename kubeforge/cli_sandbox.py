"""`kubeforge sandbox up|down|status`: local hosts with real sshd to deploy onto."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from kubeforge.errors import UsageError
from kubeforge.targets.sandbox import DEFAULT_DIR, Sandbox

DEFAULT_COUNT = 3

dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                          default=DEFAULT_DIR, show_default=True,
                          help="Where the key, known_hosts, inventory and state live.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")


@click.group()
def sandbox() -> None:
    """Local systemd hosts with real sshd on a private network (docker containers)."""


@sandbox.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-n", "count", type=click.IntRange(1, 200), default=None,
              help=f"Without FILE: number of hosts, node1..nodeN [default: {DEFAULT_COUNT}].")
@dir_option
@click.option("--subnet", default=None, help="Without FILE: private subnet (default "
                                             "10.77.0.0/24, or the one this sandbox already "
                                             "uses); hosts get .11, .12, ...")
@click.option("--name", default=None, help="Prefix of the docker objects (default kubeforge).")
@json_option
def up(file: Path | None, count: int | None, directory: Path, subnet: str | None,
       name: str | None, as_json: bool) -> None:
    """Start (or reuse and repair) the hosts FILE's cluster declares (names, roles, addresses)
    or COUNT hosts node1..nodeN, and write their inventory and known_hosts."""
    started = time.monotonic()
    if file is not None:
        if count is not None or subnet is not None:
            raise UsageError("sandbox up FILE brings up the file's nodes on the subnet that "
                             "holds them; -n and --subnet are for a sandbox without FILE")
        cluster = _cluster(file)
        box = Sandbox.for_cluster(directory, cluster, name=name)
        hosts = box.up_cluster(cluster)
    else:
        box = Sandbox(directory, subnet=subnet, name=name)
        hosts = box.up(count or DEFAULT_COUNT)
    state = json.loads(box.state_path.read_text())
    if as_json:
        click.echo(json.dumps({
            "ok": True, "dir": str(box.dir), "name": box.name, "subnet": box.subnet,
            "image": state["image"], "image_build_seconds": state.get("image_build_seconds"),
            "network": state["network"], "dockerd": state["dockerd"],
            "inventory": str(box.inventory), "known_hosts": str(box.known_hosts),
            "key": str(box.key_path), "hosts": [h.as_dict() for h in hosts],
            "seconds": round(time.monotonic() - started, 1)}, indent=2, sort_keys=True))
        return
    for host in hosts:
        click.echo(f"{host.name}\t{host.address}\t{host.container}\t{' '.join(host.roles)}"
                   .rstrip())
    click.echo(f"{len(hosts)} hosts up in {time.monotonic() - started:.1f} s; inventory "
               f"{box.inventory}, known_hosts {box.known_hosts}", err=True)
    if file is not None:
        click.echo(f"next: kubeforge apply {file} -i {_shown(box.inventory)} --known-hosts "
                   f"{_shown(box.known_hosts)}", err=True)
    else:
        click.echo(f"ssh -i {box.key_path} -o UserKnownHostsFile={box.known_hosts} "
                   f"root@{hosts[0].address}", err=True)


def _cluster(file: Path):
    from kubeforge.compiler.lower import load_program

    program, _ = load_program(file)
    if program.cluster is None or not program.cluster.nodes:
        raise UsageError(f"{file}: declares no cluster with nodes, so there are no hosts to "
                         "bring up")
    return program.cluster


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (shorter to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@sandbox.command()
@dir_option
@json_option
def down(directory: Path, as_json: bool) -> None:
    """Remove everything the sandbox recorded (containers, network, firewall rule, daemon)."""
    done = Sandbox(directory).down()
    if as_json:
        click.echo(json.dumps({"ok": True, "actions": done}, indent=2))
    else:
        for line in done:
            click.echo(line, err=True)


@sandbox.command()
@dir_option
@json_option
def status(directory: Path, as_json: bool) -> None:
    """List the hosts and whether their sshd answers."""
    rows = Sandbox(directory).status()
    if as_json:
        click.echo(json.dumps({"ok": True, "hosts": rows}, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo(f"no sandbox hosts recorded in {directory}", err=True)
    for row in rows:
        state = "sshd up" if row["sshd"] else ("running, sshd down" if row["running"] else "stopped")
        click.echo(f"{row['name']}\t{row['address']}\t{row['container']}\t{state}")
