"""`kubeforge verify FILE -i INV`: run the compiled testinfra checks against the hosts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kubeforge.console import table_console


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-i", "--inventory", required=True, type=click.Path(path_type=Path),
              help="Ansible inventory with every node of the cluster.")
@click.option("-o", "--build-dir", default=Path("build"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the file is compiled first.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Cluster state directory (default .kubeforge/<cluster>).")
@click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("~/.ssh/known_hosts"), show_default=True)
@click.option("--trust-on-first-use", is_flag=True,
              help="Accept and record host keys not yet in known_hosts.")
@click.option("--limit", "limit", multiple=True,
              help="Only these hosts (repeat, or comma-separated), as apply --limit.")
@click.option("--until", help="Skip checks of phases after this one (as apply --until).")
@click.option("--phase", "phases", multiple=True, help="Only checks of this phase (repeat).")
@click.option("--preflight", is_flag=True, help="Check hosts before a deploy instead.")
@click.option("-n", "--jobs", default=0, type=click.IntRange(0, 64),
              help="pytest-xdist workers (0: one per host, at most 4).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--failed-only", is_flag=True, help="List only checks that did not pass.")
def verify(file, inventory, build_dir, state_dir, known_hosts, trust_on_first_use, limit, until,
           phases, preflight, jobs, as_json, failed_only) -> None:
    """Check every host against what FILE promises: files, certificates, services, ports,
    kernel settings, the VIP and etcd. Exit 1 if any check fails."""
    from kubeforge.cli_deploy import _prepare, _selection
    from kubeforge.errors import UsageError
    from kubeforge.targets import verify as checks
    from kubeforge.targets.base import SshOptions

    dep = _prepare(file, inventory, build_dir, state_dir)
    # The same parsing and unknown-host error as apply --limit; a host left out of an apply
    # is left out of its checks too, instead of showing up as failures.
    selection = _selection(limit)
    selection.validate(dep.plan)
    hosts = {n: h for n, h in dep.hosts.items() if not selection.limit or n in selection.limit}
    for flag, value in (("--until", until), *(("--phase", p) for p in phases)):
        if value is not None and value not in dep.plan.phases:
            raise UsageError(f"{flag} {value}: unknown phase; phases: {', '.join(dep.plan.phases)}")
    options = SshOptions(known_hosts.expanduser(), trust_on_first_use)
    results = checks.run_checks(dep.build_root, hosts, options,
                                until=until, phases=phases, preflight=preflight, jobs=jobs)
    if as_json:
        click.echo(json.dumps(checks.as_json(results), indent=2))
    else:
        checks.render(results, table_console(), show_passed=not failed_only)
    sys.exit(1 if any(r.status == checks.FAILED for r in results) else 0)
