"""`kubeforge plan`, `apply` and `reset`: the compiled plan meets real hosts.

Exit codes: 0 success, 1 failed (or skipped) steps, 2 usage (flags, files, an inventory
that does not match the cluster).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kubeforge.console import Console
from kubeforge.errors import UsageError
from kubeforge.targets.base import JumpHost, SshOptions

TARGETS = ("ssh", "ansible")


def _common(fn):
    return common_options()(fn)


def common_options(build_dir_flags: tuple[str, ...] = ("-o", "--build-dir"),
                   limit: bool = True):
    """FILE, the inventory, the build and state directories and the SSH options, as a
    decorator. A command whose ``-o`` is its output (``kubeconfig serviceaccount``) keeps
    only ``--build-dir``; one that works on one host has no ``--limit``."""
    options = [
        click.argument("file", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("-i", "--inventory", required=True, type=click.Path(path_type=Path),
                     help="Ansible inventory (YAML, INI or a directory of them, read as "
                          "Ansible reads it) with every node of the cluster."),
        click.option(*build_dir_flags, "build_dir", default=Path("build"), show_default=True,
                     type=click.Path(file_okay=False, path_type=Path),
                     help="Where the file is compiled first."),
        click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Cluster state directory (default .kubeforge/<cluster>)."),
        *([click.option("--limit", "limit", multiple=True,
                        help="Only these hosts (repeat, or comma-separated).")] if limit else []),
        click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path),
                     default=Path("~/.ssh/known_hosts"), show_default=True),
        click.option("--trust-on-first-use", is_flag=True,
                     help="Accept and record host keys not yet in known_hosts."),
        click.option("--jump", help="Reach hosts through this one: [user@]host[:port]."),
        click.option("--jump-key", type=click.Path(dir_okay=False), default=None,
                     help="Private key for the jump host (default: the host's key)."),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def _hosts(limit: tuple[str, ...]) -> frozenset[str]:
    return frozenset(h.strip() for item in limit for h in item.split(",") if h.strip())


def _ssh(known_hosts: Path, trust: bool, jump: str | None, jump_key: str | None):
    from kubeforge.targets.ssh import SshTarget

    try:
        hop = JumpHost.parse(jump) if jump else None
    except ValueError as exc:
        raise UsageError(f"--jump: {exc}") from None
    return SshTarget(SshOptions(known_hosts.expanduser(), trust, hop, jump_key))


def _prepare(file, inventory, build_dir, state_dir):
    """Compile and pair with the inventory (shared by plan, apply, reset and verify), with
    its warnings on stderr."""
    from kubeforge.targets.deploy import prepare

    dep = prepare(file, inventory, build_dir, state_dir)
    for diagnostic in dep.diagnostics:
        click.echo(diagnostic, err=True)
    for warning in dep.warnings:
        click.echo(f"warning: {warning}", err=True)
    return dep


def _selection(limit, phase=None, until=None):
    from kubeforge.targets.runner import Selection

    return Selection(_hosts(limit), phase, until)


def _stale_certificates(file, dep, target) -> list[str]:
    """Components on the hosts that run with certificates older than their files."""
    from kubeforge.compiler.lower import load_program
    from kubeforge.targets.execute import Sessions
    from kubeforge.targets.renew import stale_warnings

    cluster = load_program(file)[0].cluster
    sessions = Sessions(target, dep.hosts)
    try:
        found = stale_warnings(cluster, sessions)
    finally:
        sessions.close()
    for warning in found:
        click.echo(f"warning: {warning}", err=True)
    return found


def _version_review(dep, selection, new_target) -> tuple[list[str], dict | None]:
    """plan's word on a version change: why apply would refuse it, or the upgrade apply
    would run first (its own review)."""
    from kubeforge.targets import review, upgrade, version_change

    state = dep.load_state()
    found = version_change.problem(dep.plan.cluster, state.kubernetes, dep.kubernetes)
    if found is None:
        return [], None
    upgrade_plan = upgrade.load(dep)
    refused = found[1] if found[0] != version_change.UPGRADE else upgrade.refusal(
        dep, upgrade_plan, state, state.kubernetes, bool(selection.limit or selection.phase
                                                         or selection.until))
    if refused:
        warning = f"apply will refuse: {refused}"
        click.echo(f"warning: {warning}", err=True)
        return [warning], None
    upgraded = upgrade.deployment(dep, upgrade_plan)
    target = new_target()  # review closes the target it probed with
    verdicts = review.review(upgraded, _selection(()), target)
    return [], review.as_dict(upgraded, verdicts, target is not None)


@click.command("plan")
@_common
@click.option("--phase", help="Only this phase.")
@click.option("--until", help="Up to and including this phase.")
@click.option("--probe", is_flag=True, help="Run every step's check and the preflight checks on "
                                           "the hosts (read-only); exit 1 if one would fail.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def plan_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
             jump, jump_key, phase, until, probe, as_json) -> None:
    """Show what `apply` would change, per host and phase (no secrets), and which nodes it
    would remove."""
    from kubeforge.targets import removal, review

    dep = _prepare(file, inventory, build_dir, state_dir)
    target = _ssh(known_hosts, trust_on_first_use, jump, jump_key) if probe else None
    stale = _stale_certificates(file, dep, target) if probe else []
    selection = _selection(limit, phase, until)
    refused, upgrading = _version_review(
        dep, selection,
        lambda: _ssh(known_hosts, trust_on_first_use, jump, jump_key) if probe else None)
    stale += refused
    verdicts = review.review(dep, selection, target)
    report = review.as_dict(dep, verdicts, probe)
    if upgrading is not None:
        report["upgrade"] = upgrading
    report["remove"] = removal.describe(
        dep.plan, removal.leaving(dep.plan, dep.load_state(), dep.former))
    report["warnings"] += stale
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        if upgrading is not None:
            click.echo(f"first, the upgrade from Kubernetes {dep.load_state().kubernetes} to "
                       f"{dep.kubernetes}, one node at a time:\n" + review.render(upgrading)
                       + "\nthen:")
        click.echo(review.render(report))
    if any(r["blocked"] or r["failing"] for r in (report, upgrading or report)):
        sys.exit(1)


@click.command("apply")
@_common
@click.option("--target", type=click.Choice(TARGETS), default="ssh", show_default=True)
@click.option("--phase", help="Only this phase.")
@click.option("--until", help="Up to and including this phase.")
@click.option("-j", "--jobs", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Hosts worked on at once.")
@click.option("--allow-removal", is_flag=True,
              help="Drain, delete and reset the nodes FILE no longer declares (see `plan`).")
@click.option("--version-upgraded", is_flag=True,
              help="The cluster was upgraded by hand with kubeadm to the version FILE names "
                   "(one minor or patch up): record it instead of upgrading.")
def apply_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
              jump, jump_key, target, phase, until, jobs, allow_removal,
              version_upgraded) -> None:
    """Compile FILE and bring the inventory's hosts to its plan; resumes after a failure.
    Nodes an earlier apply set up that FILE no longer declares are removed first, one at a
    time, with --allow-removal only. When FILE names the next minor or patch release, the
    cluster is upgraded first, node by node in kubeadm's order (from FILE's bundle)."""
    from kubeforge.targets import removal, upgrade, version_change
    from kubeforge.targets.deploy import apply

    dep = _prepare(file, inventory, build_dir, state_dir)
    state = dep.load_state()
    change = version_change.check(dep.plan.cluster, state.kubernetes, dep.kubernetes)
    selection = _selection(limit, phase, until)
    selection.validate(dep.plan)
    upgrading = change == version_change.UPGRADE and not version_upgraded
    if upgrading:
        upgrade_plan = upgrade.load(dep)
        upgrade.check(dep, upgrade_plan, state, state.kubernetes,
                      bool(limit or phase or until))
    ssh = _ssh(known_hosts, trust_on_first_use, jump, jump_key)
    gone = removal.leaving(dep.plan, dep.load_state(), dep.former)
    if gone and not allow_removal:
        raise UsageError(removal.refusal(dep.plan, gone))
    if gone:
        try:
            removal.remove(dep.plan, dep.hosts, dep.load_state(), dep.state_dir, ssh, gone,
                           lambda line: click.echo(line, err=True))
        except removal.RemovalError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    removal.save_for_later(dep)
    if upgrading:
        click.echo(f"upgrading cluster {dep.plan.cluster} from Kubernetes {state.kubernetes} "
                   f"to {dep.kubernetes}, one node at a time", err=True)
        report = apply(upgrade.deployment(dep, upgrade_plan), ssh, jobs=jobs,
                       console=Console(stderr=True))
        if report.failed:
            sys.exit(1)
        dep.load_state().set_kubernetes(dep.kubernetes)
        ssh = _ssh(known_hosts, trust_on_first_use, jump, jump_key)  # apply closed it
    if target == "ansible":  # the compiled ansible/ playbook through ansible-runner
        from kubeforge.targets.ansible import apply as apply_ansible
        report = apply_ansible(dep, ssh.options, selection, jobs, Console(stderr=True))
    else:
        report = apply(dep, ssh, selection, jobs, Console(stderr=True))
    version_change.record(dep.load_state(), dep.kubernetes)
    sys.exit(1 if report.failed else 0)


@click.command("reset")
@_common
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
              jump, jump_key, yes) -> None:
    """Undo what apply did: kubeadm reset, services stopped and disabled, files removed or
    given back."""
    from kubeforge.targets.reset import reset

    dep = _prepare(file, inventory, build_dir, state_dir)
    selection = _selection(limit)
    selection.validate(dep.plan)
    hosts = sorted(selection.limit) if selection.limit else [h.name for h in dep.plan.hosts]
    if not yes:
        click.confirm(f"Reset {', '.join(hosts)} of cluster {dep.plan.cluster}? This removes "
                      "what apply placed and stops its services", abort=True)
    outcome = reset(dep, _ssh(known_hosts, trust_on_first_use, jump, jump_key), hosts)
    for host, error in outcome.items():
        click.echo(f"{host}: {'reset' if not error else 'FAILED: ' + error}")
    click.echo("iptables rules were left alone (kubeforge creates none)", err=True)
    sys.exit(1 if any(outcome.values()) else 0)


COMMANDS = (plan_cmd, apply_cmd, reset_cmd)
