"""`kubeforge rollout history|undo FILE WORKLOAD`: a declared workload's revisions, and the
way back to one, on the cluster FILE describes.

The file stays the source of truth: `undo` asks the cluster for the previous (or a given)
revision, as `kubectl rollout undo` does, and then says what the file still declares, so a
person knows the next `apply` rolls forward again unless the file is changed back. Commands run
on the control plane that applies the workloads, over SSH with its host key checked, with the
admin kubeconfig that never leaves it.

Exit codes: 0 done, 1 the cluster refused (no such revision, the rollout did not finish),
2 usage (unknown workload, inventory).
"""

from __future__ import annotations

import sys

import click

from kubeforge.cli_applier import kubectl as _kubectl
from kubeforge.cli_applier import on_applier
from kubeforge.cli_deploy import _common
from kubeforge.errors import UsageError

#: Kinds `kubectl rollout` can undo, as the IR names them.
ROLLABLE = ("Deployment", "StatefulSet", "DaemonSet")


def _workload(file, name: str, namespace: str | None):
    """The declared workload ``name`` (``kind/name`` accepted, as kubectl writes it)."""
    from kubeforge.compiler.lower import load_program

    program, _ = load_program(file)
    kind, _, bare = name.rpartition("/")
    found = [w for w in program.workloads
             if w.name == bare and (not kind or w.kind.lower() == kind.lower())
             and (namespace is None or w.namespace == namespace)]
    if not found:
        declared = ", ".join(sorted(f"{w.namespace}/{w.kind.lower()}/{w.name}"
                                    for w in program.workloads if w.kind in ROLLABLE))
        raise UsageError(f"{file} declares no workload {name}"
                         + (f" in namespace {namespace}" if namespace else "")
                         + (f"; it declares {declared}" if declared else ""))
    if len(found) > 1:
        raise UsageError(f"{name} is declared in namespaces "
                         f"{', '.join(sorted(w.namespace for w in found))}: pick one with -n")
    (workload,) = found
    if workload.kind not in ROLLABLE:
        raise UsageError(f"{workload.kind.lower()} {workload.name} has no rollout to undo "
                         f"(only {', '.join(k.lower() for k in ROLLABLE)})")
    return workload


def _run(file, inventory, build_dir, state_dir, known_hosts, trust, jump, jump_key, body):
    return on_applier(file, inventory, build_dir, state_dir, known_hosts, trust, jump, jump_key,
                      lambda session, applier, _dep: body(session, applier))


@click.group("rollout")
def rollout() -> None:
    """A declared workload's revisions on the cluster, and the way back to one."""


def _options(fn):
    fn = click.option("-n", "--namespace", help="The workload's namespace, when the file "
                                                "declares the name in more than one.")(fn)
    fn = click.argument("workload")(fn)
    return _common(fn)


@rollout.command("history")
@_options
def history_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
                jump, jump_key, workload, namespace) -> None:
    """The revisions the cluster keeps of WORKLOAD (kubectl rollout history)."""
    w = _workload(file, workload, namespace)

    def body(session, _applier):
        code, out, err = _kubectl(session, "-n", w.namespace, "rollout", "history",
                                  f"{w.kind.lower()}/{w.name}")
        click.echo(out, nl=False)
        if code:
            click.echo(err.strip(), err=True)
        return code

    sys.exit(1 if _run(file, inventory, build_dir, state_dir, known_hosts, trust_on_first_use,
                       jump, jump_key, body) else 0)


@rollout.command("undo")
@_options
@click.option("--to-revision", type=click.IntRange(min=1),
              help="This revision (see `rollout history`), not the previous one.")
@click.option("--timeout", default=600, show_default=True, type=click.IntRange(min=1),
              help="Seconds to wait for the rolled-back revision to be ready.")
def undo_cmd(file, inventory, build_dir, state_dir, limit, known_hosts, trust_on_first_use,
             jump, jump_key, workload, namespace, to_revision, timeout) -> None:
    """Roll WORKLOAD back to its previous revision (or --to-revision) and wait until it is
    ready; the file is not changed, so say what it still declares."""
    w = _workload(file, workload, namespace)
    ref = f"{w.kind.lower()}/{w.name}"

    def body(session, applier):
        args = ["-n", w.namespace, "rollout", "undo", ref]
        if to_revision:
            args.append(f"--to-revision={to_revision}")
        code, out, err = _kubectl(session, *args)
        if code:
            click.echo(f"{applier}: {err.strip() or out.strip()}", err=True)
            return code
        click.echo(out.strip())
        code, out, err = _kubectl(session, "-n", w.namespace, "rollout", "status", ref,
                                  f"--timeout={timeout}s", timeout=timeout + 30)
        click.echo(out.strip() if not code else f"{applier}: {err.strip() or out.strip()}",
                   err=bool(code))
        if code:
            return code
        declared = ", ".join(f"{c.name}={c.image}" for c in w.containers)
        click.echo(f"note: {file} still declares {declared}; the next `kubeforge apply` rolls "
                   f"{ref} forward to it again unless the file is changed back", err=True)
        return 0

    sys.exit(1 if _run(file, inventory, build_dir, state_dir, known_hosts, trust_on_first_use,
                       jump, jump_key, body) else 0)
