"""`kubeforge rbac ...` (offline RBAC questions) and `kubeforge kubeconfig user`.

Every answer comes from the file's compiled RBAC plus the bootstrap policy every cluster
has; nothing talks to a cluster. A request without ``-n`` is asked cluster-wide: for a
namespaced resource that means "in every namespace", which only ClusterRoleBindings grant
(kubectl's ``--all-namespaces``).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from rich.table import Table

from kubeforge.cli_args import FileFirst
from kubeforge.compiler.rbac import Identity, Request
from kubeforge.console import table_console
from kubeforge.errors import UsageError

FILE = click.Path(dir_okay=False, path_type=Path)
VERB_LETTERS = {"get": "g", "list": "l", "watch": "w", "create": "c", "update": "u",
                "patch": "p", "delete": "d"}


def _load(file: Path):
    from kubeforge.compiler.lower import load_program

    program, _sources = load_program(file)
    return program


def parse_request(verb: str, resource: str, namespace: str, name: str = "") -> Request:
    """A request from ``pods``, ``pods/log``, ``deployments.apps/scale``,
    ``widgets.example.com`` or a URL such as ``/healthz``.

    As kubectl does, ``*`` and a resource it does not know without a group ask about the
    core group ``""`` (``users`` and ``groups`` for ``impersonate`` are core resources)."""
    from kubeforge.compiler.rbac_defaults import api_group_of

    if resource.startswith("/"):
        return Request(verb, path=resource)
    base, _, sub = resource.partition("/")
    base, _, group = base.partition(".")
    if not group and base != "*":
        known = api_group_of(base)
        if known is None:
            click.echo(f"warning: `{base}` is not a resource kubeforge knows; asking about the "
                       f"core API group (name another group as `{base}.GROUP`)", err=True)
        group = known or ""
    return Request(verb, base, sub, group, namespace, name)


def identity_for(program, user: str, groups: tuple[str, ...]) -> Identity:
    """``--as USER [--as-group G]...`` with kube-apiserver's impersonation rules; without
    ``--as-group``, a user the file declares brings the groups its certificate carries, and
    a declared token's user (``system:bootstrap:<id>``) the groups its Secret gives it."""
    from kubeforge.compiler import tokens
    from kubeforge.compiler.rbac import impersonate

    if not groups:
        declared = next((s for s in program.subjects if s.kind == "User" and s.name == user), None)
        if declared is not None and declared.groups:
            return impersonate(user, declared.groups)
        token = next((s for s in program.subjects
                      if s.kind == "Token" and tokens.user_name(s.name) == user), None)
        if token is not None:
            return tokens.identity(token)
    return impersonate(user, groups or None)


@click.group("rbac")
def rbac() -> None:
    """Ask the compiled RBAC of a file: can-i, who-can, matrix."""


@rbac.command("can-i", cls=FileFirst)
@click.argument("file", type=FILE)
@click.argument("verb")
@click.argument("resource")
@click.option("--as", "as_user", required=True, help="User name, system:serviceaccount:NS:NAME, or a declared token's "
                   "system:bootstrap:ID (`kubeconfig token` prints it).")
@click.option("--as-group", "as_groups", multiple=True,
              help="A group (repeatable); replaces a declared user's groups, as kubectl does.")
@click.option("-n", "--namespace", default="", help="Namespace (default: cluster-wide).")
@click.option("--name", "resource_name", default="", help="A resource name (resourceNames).")
def can_i(file: Path, verb: str, resource: str, as_user: str, as_groups: tuple[str, ...],
          namespace: str, resource_name: str) -> None:
    """Whether --as may VERB RESOURCE; exit 0 for yes, 1 for no.

    RESOURCE is `pods`, `pods/log`, `deployments.apps/scale`, `widgets.example.com` or a
    non-resource URL such as `/healthz`.
    """
    from kubeforge.compiler.rbac_compile import authorizer_for

    program = _load(file)
    request = parse_request(verb, resource, namespace, resource_name)
    decision = authorizer_for(program).can_i(identity_for(program, as_user, as_groups), request)
    click.echo("yes" if decision.allowed else "no")
    click.echo(decision.reason)
    sys.exit(0 if decision.allowed else 1)


@rbac.command("who-can", cls=FileFirst)
@click.argument("file", type=FILE)
@click.argument("verb")
@click.argument("resource")
@click.option("-n", "--namespace", default="", help="Namespace (default: cluster-wide).")
@click.option("--name", "resource_name", default="", help="A resource name (resourceNames).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def who_can(file: Path, verb: str, resource: str, namespace: str, resource_name: str,
            as_json: bool) -> None:
    """The subjects bound to a role that allows VERB RESOURCE."""
    from kubeforge.compiler.rbac_compile import authorizer_for

    program = _load(file)
    grants = authorizer_for(program).who_can(parse_request(verb, resource, namespace,
                                                           resource_name))
    rows = [(str(g.subject), str(g.binding),
             f"{'ClusterRole' if g.role.cluster_scoped else 'Role'} {g.role.name}")
            for g in grants]
    if as_json:
        click.echo(json.dumps([dict(zip(("subject", "binding", "role"), r)) for r in rows],
                              indent=2))
        return
    table = Table("SUBJECT", "BINDING", "ROLE", title=f"who can {verb} {resource}"
                  + (f" in {namespace}" if namespace else " cluster-wide"))
    for row in rows:
        table.add_row(*row)
    table_console().print(table)


@rbac.command("matrix", cls=FileFirst)
@click.argument("file", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def matrix(file: Path, as_json: bool) -> None:
    """Subjects x (verb, resource), per namespace and cluster-wide (`*`)."""
    from kubeforge.compiler.rbac_matrix import program_matrix, to_json

    data = program_matrix(_load(file))
    if as_json:
        click.echo(to_json(data), nl=False)
        return
    console = table_console()
    legend = " ".join(f"{letter}={verb}" for verb, letter in VERB_LETTERS.items())
    for scope, rows in data["scopes"].items():
        title = "cluster-wide (all namespaces)" if scope == "*" else f"namespace {scope}"
        columns = list(next(iter(rows.values()), {}))
        table = Table("SUBJECT", *columns, title=title, caption=legend)
        for subject, cells in rows.items():
            table.add_row(subject, *(_cell(cells[c], data["verbs"]) for c in columns))
        console.print(table)


def _cell(allowed: list[str], verbs: list[str]) -> str:
    return "".join(VERB_LETTERS.get(v, v[0]) if v in allowed else "." for v in verbs)


# ============================================================================ kubeconfig


@click.group("kubeconfig")
def kubeconfig() -> None:
    """Make kubeconfigs: client certificates and declared tokens from the state directory,
    service-account tokens from the cluster."""


def parse_ttl(text: str, minimum: int = 60,
              too_short: str = "a certificate shorter than a minute is useless") -> dt.timedelta:
    from kubeforge.compiler.values import ValueProblem, duration_seconds
    from kubeforge.dsl.ast import Value
    from kubeforge.dsl.diagnostics import NO_SPAN

    try:
        seconds = duration_seconds(Value("UNITNUM", text, NO_SPAN))
    except ValueProblem as problem:
        raise click.BadParameter(f"{problem} ({problem.hint})", param_hint="--ttl") from None
    if seconds < minimum:
        raise click.BadParameter(too_short, param_hint="--ttl")
    return dt.timedelta(seconds=seconds)


@kubeconfig.command("user", cls=FileFirst)
@click.argument("file", type=FILE)
@click.argument("name")
@click.option("--ttl", default="24h", show_default=True,
              help="Certificate lifetime (30m, 24h, 7d).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it (default ./<name>.kubeconfig); never printed.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Key material directory (default .kubeforge/<cluster>/).")
def kubeconfig_user(file: Path, name: str, ttl: str, output: Path | None,
                    state_dir: Path | None) -> None:
    """A fresh short-lived client-certificate kubeconfig for declared user NAME.

    Signed by the cluster CA in the state directory, without recompiling; nothing is
    stored, so the credential exists only in the written file.
    """
    from kubeforge.compiler import pki, pki_store
    from kubeforge.compiler.artifacts import write_atomic
    from kubeforge.compiler.build import default_state_dir
    from kubeforge.compiler.emit.kubeconfig import endpoint_url, render_kubeconfig
    from kubeforge.compiler.state import StateDir
    from kubeforge.dsl.diagnostics import did_you_mean

    lifetime = parse_ttl(ttl)
    program = _load(file)
    if program.cluster is None:
        raise UsageError(f"{file} declares no `cluster` block")
    users = {s.name: s for s in program.subjects if s.kind == "User"}
    if name not in users:
        hint = did_you_mean(name, users) or f"declare `user {name} {{ ... }}` in {file}"
        raise UsageError(f"{file} declares no user `{name}`; {hint}")
    cluster, user = program.cluster, users[name]
    state = StateDir(state_dir or default_state_dir(cluster.name))
    ca = pki_store.load_cluster_ca(state)
    now = dt.datetime.now(dt.timezone.utc)
    cert_pem, key_pem = pki.issue_client_cert(ca, user.name, user.groups,
                                              lifetime.total_seconds() / 86400,
                                              cluster.pki.algorithm, now)
    conf = render_kubeconfig(cluster.name, endpoint_url(cluster), ca.cert_pem, user.name,
                             cert_pem, key_pem)
    target = output or Path(f"{name}.kubeconfig")
    write_atomic(target, conf, 0o600)
    expires = min(now + lifetime, ca.cert.not_valid_after_utc)
    click.echo(f"wrote {target} (user {name}, expires {expires:%Y-%m-%d %H:%M:%S}Z)", err=True)
