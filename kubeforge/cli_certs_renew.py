"""`kubeforge certs renew FILE -i INV [--all | NAME...]`: re-issue leaf certificates from the
CAs in the state directory, put them on the hosts and restart exactly what reads them, one
control plane at a time (compiler/pki_renew.py is the state side, targets/renew.py the host
side; their module docs say why an interrupted run converges when run again).

Exit codes: 0 every host runs the renewed certificates, 1 a host failed (run again to
finish), 2 usage.
"""

from __future__ import annotations

import json
import sys

import click

from kubeforge.cli_certs import certs
from kubeforge.cli_deploy import _common, _prepare, _ssh
from kubeforge.errors import UsageError


def _within(text: str | None):
    if text is None:
        return None
    import datetime as dt

    from kubeforge.compiler.values import ValueProblem, duration_seconds
    from kubeforge.dsl.ast import Value
    from kubeforge.dsl.diagnostics import NO_SPAN

    try:
        return dt.timedelta(seconds=duration_seconds(Value("UNITNUM", text, NO_SPAN)))
    except ValueProblem as problem:
        raise click.BadParameter(f"{problem} ({problem.hint})",
                                 param_hint="--expiring-within") from None


def _renew_state(file, state_dir, names, everything, within, now):
    """Record and issue the chosen leaves (resuming a recorded renewal): (cluster, state,
    record or None, whether one was recorded before, labels issued now)."""
    from kubeforge.compiler import pki_renew, pki_store
    from kubeforge.compiler.build import default_state_dir
    from kubeforge.compiler.lower import load_program
    from kubeforge.compiler.state import StateDir

    program, _ = load_program(file)
    cluster = program.cluster
    if cluster is None:
        raise UsageError(f"{file} declares no cluster")
    state = StateDir(state_dir or default_state_dir(cluster.name))
    chosen = pki_renew.select(cluster, names, everything)
    if within is not None:
        chosen = pki_renew.expiring(state, chosen, within, now)
    record = pki_renew.Renewal.load(state)
    resumed = record is not None
    issued = []
    if chosen or record:
        cas = pki_store.load_cas(state, now)
        record = (record or pki_renew.Renewal(now, ())).merged(chosen)
        record.save(state)  # before the first leaf changes: a killed run resumes from it
        issued = pki_renew.issue(state, record, pki_renew.leaves(cluster), cas, cluster, now)
    return cluster, state, record, resumed, [leaf.label for leaf in issued]


def _described(cluster, state, record) -> list[dict]:
    from kubeforge.compiler import pki_renew

    out = []
    for leaf in pki_renew.leaves(cluster):
        if record is None or leaf.state_rel not in record.leaves:
            continue
        cert = state.read_certificate(f"{leaf.state_rel}.crt")
        out.append({"name": leaf.name, "node": leaf.node, "serial": format(cert.serial_number, "x"),
                    "not_after": cert.not_valid_after_utc.isoformat()})
    return out


@click.command("renew")
@_common
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "everything", is_flag=True,
              help="Every leaf certificate (kubeadm's names: apiserver, etcd-server, "
                   "admin.conf, ...); not the CAs, which are never regenerated.")
@click.option("--expiring-within", "within", metavar="DURATION",
              help="Only those of the chosen certificates that end within DURATION (30d): "
                   "a run with none such renews nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was renewed and restarted "
                                                      "as JSON.")
def renew_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
              jump, jump_key, names, everything, within, as_json) -> None:
    """Re-issue the leaf certificates NAME... (NAME@node for one node's; or --all) from the
    cluster's kept CAs, upload them and restart exactly the components that read them, one
    control plane at a time, each one's API server and etcd healthy before the next. Without
    NAME, only finishes an interrupted renewal and restarts components older than their
    certificate files."""
    from kubeforge.targets import renew
    from kubeforge.targets.execute import Sessions, StepRunner
    from kubeforge.compiler import pki_renew

    if limit:
        raise UsageError("--limit: a renewal works through every node holding the "
                         "certificates (one at a time); name certificates as NAME@node instead")
    if names and everything:
        raise UsageError("name certificates or pass --all, not both")
    now = renew.now_utc()
    cluster, state, record, resumed, issued = _renew_state(
        file, state_dir, tuple(names), everything, _within(within), now)
    dep = _prepare(file, inventory, build_dir, state_dir)  # the build now holds the new leaves
    paths = {p for leaf in pki_renew.leaves(cluster) for _, p in leaf.host_files}
    ssh = _ssh(known_hosts, trust_on_first_use, jump, jump_key)
    sessions = Sessions(ssh, dep.hosts)
    runner = StepRunner(dep.plan, dep.build_root, dep.load_state(), sessions,
                        digest_key=dep.digest_key)
    results = []
    log = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    try:
        for node in renew.order(cluster):
            result = renew.renew_host(cluster, node, runner, dep.plan.steps, paths, log)
            results.append(result)
            if not as_json:
                did = ", ".join(filter(None, (
                    f"uploaded {len(result.uploaded)} files" if result.uploaded else "",
                    f"restarted {', '.join(result.restarted)}" if result.restarted else "")))
                click.echo(f"{node.name}: " + (f"FAILED: {result.error}" if result.error
                                               else did or "up to date")
                           + f" ({result.seconds:.1f}s)", err=True)  # progress, as apply's
            if result.error:
                break  # never touch the next control plane while one is unhealthy
    finally:
        sessions.close()
        ssh.close()
    complete = len(results) == len(renew.order(cluster)) and not any(r.error for r in results)
    renewal = _described(cluster, state, record)
    if complete and record is not None:
        pki_renew.Renewal.clear(state)
    if as_json:
        click.echo(json.dumps({"cluster": cluster.name, "complete": complete,
                               "resumed": resumed,
                               "issued": issued, "renewal": renewal,
                               "hosts": [r.as_dict() for r in results]}, indent=2))
    else:
        if issued:
            click.echo(f"issued {len(issued)} certificates: {', '.join(issued)}")
        if not (renewal or any(r.uploaded or r.restarted for r in results)):
            click.echo("nothing to renew")
        if not complete:
            click.echo("the renewal is not finished: run `kubeforge certs renew` again",
                       err=True)
    sys.exit(0 if complete else 1)


# `certs check-expiration` reads a build alone; renew joins its group here, so the group's
# offline command does not load the SSH side and `certs` (kubeforge.cli's LAZY) loads this.
certs.add_command(renew_cmd)
