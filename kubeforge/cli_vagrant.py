"""`kubeforge vagrant up|destroy|inventory`: a test bed of Vagrant machines for a cluster file.

`up` compiles FILE (which writes BUILD/<cluster>/Vagrantfile) and boots its machines;
`inventory` writes the Ansible inventory and known_hosts that `plan`, `apply` and `verify`
take; `destroy` removes the machines and whatever `up` set up for them.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from kubeforge.compiler import hostport
from kubeforge.console import Console
from kubeforge.targets.vagrant import PROVIDERS

_file = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_build = click.option("-o", "--build-dir", "build_dir", default=Path("build"), show_default=True,
                      type=click.Path(file_okay=False, path_type=Path),
                      help="Build directory; the Vagrantfile is BUILD/<cluster>/Vagrantfile.")


def _console() -> Console:
    return Console(stderr=True, highlight=False)


def _cluster(file: Path):
    """The file's cluster, checked but not compiled (destroy and inventory write nothing)."""
    from kubeforge.compiler.lower import load_program
    from kubeforge.errors import UsageError

    program, _ = load_program(file)
    if program.cluster is None:
        raise UsageError(f"{file}: declares no `cluster` block, so there are no machines")
    return program.cluster


def _stream(console: Console, status):
    """Vagrant's headline lines (`==> cp1: ...`) are printed; every line feeds the spinner."""
    def on_line(line: str) -> None:
        if line.startswith("==>"):
            console.print(line, style="dim", markup=False)
        if line.strip():
            status.update(f"vagrant: {line.strip()[:100]}")
    return on_line


@click.group("vagrant")
def vagrant() -> None:
    """Vagrant machines matching a cluster file, ready for `kubeforge apply`."""


@vagrant.command("up")
@_file
@click.option("--provider", type=click.Choice(PROVIDERS), default="virtualbox", show_default=True,
              help="docker: systemd containers, for machines without virtualisation.")
@_build
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Key material directory (default .kubeforge/<cluster>/).")
def up_cmd(file: Path, provider: str, build_dir: Path, state_dir: Path | None) -> None:
    """Compile FILE and bring up one machine per node."""
    import time

    from kubeforge.compiler.build import compile_file
    from kubeforge.targets.vagrant import up

    console = _console()
    started = time.monotonic()
    result = compile_file(file, build_dir, state_dir=state_dir)
    cluster = result.program.cluster
    with console.status(f"vagrant up --provider {provider} in {result.root}") as status:
        machines = up(result.root.absolute(), cluster, provider, _stream(console, status))
    table = Table("machine", "provider", "state", "address", "roles",
                  title=f"cluster {cluster.name}")
    for node, machine in zip(cluster.nodes, machines):
        table.add_row(node.name, machine.provider, machine.state, str(node.address),
                      " ".join(node.roles))
    console.print(table)
    console.print(f"up in {time.monotonic() - started:.0f} s; next: kubeforge vagrant inventory "
                  f"{file}", markup=False, soft_wrap=True)


@vagrant.command("destroy")
@_file
@_build
def destroy_cmd(file: Path, build_dir: Path) -> None:
    """Destroy the machines of FILE's cluster (and the docker network and daemon `up` made)."""
    from kubeforge.targets.vagrant import destroy

    console = _console()
    root = build_dir / _cluster(file).name
    with console.status(f"vagrant destroy in {root}") as status:
        done = destroy(root.absolute(), _stream(console, status))
    for line in done:
        console.print(line, markup=False)


@vagrant.command("inventory")
@_file
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Inventory to write (default BUILD/<cluster>/vagrant-inventory.yaml).")
@click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path),
              help="known_hosts to write (default: the inventory's name, suffix .known_hosts).")
@click.option("--build-dir", default=Path("build"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Build directory `vagrant up` used.")
@click.option("--trust-on-first-use", is_flag=True,
              help="VirtualBox/libvirt: read the host keys over `vagrant ssh`, which checks "
                   "none (docker machines' keys come through docker and need no trust).")
def inventory_cmd(file: Path, output: Path | None, known_hosts: Path | None,
                  build_dir: Path, trust_on_first_use: bool) -> None:
    """Write an Ansible inventory and known_hosts for FILE's running machines."""
    from kubeforge.targets.vagrant import require_running
    from kubeforge.targets.vagrant_inventory import write_inventory

    console = _console()
    cluster = _cluster(file)
    root = (build_dir / cluster.name).absolute()
    inventory = output or root / "vagrant-inventory.yaml"
    known = known_hosts or inventory.with_suffix(".known_hosts")
    with console.status("reading ssh-config and host keys from the machines"):
        machines = require_running(root, cluster)
        endpoints = write_inventory(root, cluster, machines, inventory, known,
                                    trust_on_first_use)
    for name, endpoint in endpoints.items():
        console.print(f"{name}: {endpoint.user}@{hostport.join(endpoint.host, endpoint.port)}",
                      markup=False)
    console.print(f"wrote {inventory} and {known}; next: kubeforge apply {file} -i {inventory} "
                  f"--known-hosts {known}", markup=False, soft_wrap=True)
