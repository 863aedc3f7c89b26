"""`kubeforge kubeconfig serviceaccount` and `kubeforge kubeconfig token`: kubeconfigs that
authenticate with a bearer token, the cluster's other way in besides a client certificate.

Both point at the cluster endpoint (the VIP) and trust the cluster CA, like `kubeconfig
user`'s. The token goes only into the written file (0600, replaced atomically), or to stdout
when ``-o -`` asks for it; messages name the identity and the expiry, never the token.

* ``serviceaccount``: a token from the TokenRequest API (``kubectl create token`` on the
  control plane that applies the workloads, over SSH, with its admin.conf), bound to the
  account and expiring after ``--ttl``; no long-lived token Secret is made.
* ``token``: the declared bootstrap-style token (``token NAME { ttl ... }``) as the state
  directory keeps it; nothing is contacted (`apply` is what puts it on the cluster).

Exit codes: 0 written, 1 the cluster refused (no such account yet) or the token expired,
2 usage (an undeclared account or token, a bad --ttl).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from pathlib import Path

import click

from kubeforge.cli_args import FileFirst
from kubeforge.cli_deploy import common_options
from kubeforge.cli_rbac import FILE, _load, kubeconfig, parse_ttl
from kubeforge.errors import KubeforgeError, StateError, UsageError

#: The TokenRequest API refuses an expirationSeconds below ten minutes.
MIN_TOKEN_SECONDS = 600
OUTPUT = click.Path(dir_okay=False, allow_dash=True, path_type=Path)


def _cluster(program, file: Path):
    if program.cluster is None:
        raise UsageError(f"{file} declares no `cluster` block")
    return program.cluster


def write_kubeconfig(conf: bytes, output: Path | None, default: str) -> str:
    """Write ``conf`` 0600 (atomically) to ``output`` or ``./default``; ``-`` prints it,
    because the person asked for the token on stdout. Returns where it went."""
    from kubeforge.compiler.artifacts import write_atomic

    if output == Path("-"):
        click.echo(conf.decode(), nl=False)
        return "stdout"
    target = output or Path(default)
    write_atomic(target, conf, 0o600)
    return str(target)


def _account(program, file: Path, name: str, namespace: str | None):
    found = [s for s in program.subjects if s.kind == "ServiceAccount" and s.name == name
             and (namespace is None or s.namespace == namespace)]
    if not found:
        declared = sorted(f"{s.namespace}/{s.name}" for s in program.subjects
                          if s.kind == "ServiceAccount")
        where = f" in namespace {namespace}" if namespace else ""
        raise UsageError(f"{file} declares no service account {name}{where}; "
                         + (f"it declares {', '.join(declared)}" if declared else
                            f"declare `serviceaccount {name} in NAMESPACE {{ bind ROLE }}`"))
    if len(found) > 1:
        raise UsageError(f"service account {name} is declared in namespaces "
                         f"{', '.join(sorted(s.namespace for s in found))}: pick one with -n")
    return found[0]


def token_expiry(token: str) -> dt.datetime:
    """The ``exp`` claim of a service-account token (a JWT), unverified: only to tell the
    person when it ends, which the API server may have made earlier than asked."""
    try:
        _, payload, _ = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return dt.datetime.fromtimestamp(int(claims["exp"]), dt.timezone.utc)
    except (ValueError, KeyError, TypeError):
        # Never shown: whatever came back may still be a credential.
        raise KubeforgeError("the API server's answer to the TokenRequest is not a "
                             "service-account token") from None


@click.command("serviceaccount", cls=FileFirst)
@common_options(("--build-dir",), limit=False)
@click.argument("name")
@click.option("-n", "--namespace",
              help="The account's namespace, when the file declares NAME in more than one.")
@click.option("--ttl", default="1h", show_default=True,
              help="Token lifetime, at least 10m (30m, 1h, 24h); the API server may cap it.")
@click.option("-o", "--output", type=OUTPUT,
              help="Where to write it (default ./<name>.kubeconfig); `-` prints it, token "
                   "included.")
def serviceaccount_cmd(file, inventory, build_dir, state_dir, known_hosts, trust_on_first_use,
                       jump, jump_key, name, namespace, ttl, output) -> None:
    """A kubeconfig for declared service account NAME with a token from the TokenRequest API.

    The token is bound to the account and expires after --ttl; no long-lived token Secret
    is made. FILE is compiled first (as `apply` does) to find the control plane that applies
    the workloads, where `kubectl create token` runs over SSH.
    """
    from kubeforge.cli_applier import kubectl, on_applier
    from kubeforge.compiler.emit.kubeconfig import endpoint_url, render_token_kubeconfig

    lifetime = parse_ttl(ttl, MIN_TOKEN_SECONDS, "the TokenRequest API refuses tokens "
                                                 "shorter than 10m")
    program = _load(file)
    cluster = _cluster(program, file)
    account = _account(program, file, name, namespace)
    user = f"system:serviceaccount:{account.namespace}:{account.name}"

    def request(session, applier, dep):
        code, out, err = kubectl(session, "-n", account.namespace, "create", "token",
                                 account.name, f"--duration={int(lifetime.total_seconds())}s")
        if code:
            hint = (" (has `kubeforge apply` created it?)" if "NotFound" in err
                    or "not found" in err else "")
            click.echo(f"{applier}: {err.strip() or 'kubectl create token failed'}{hint}",
                       err=True)
            return None
        return out.strip(), (dep.build_root / "pki" / "ca.crt").read_bytes()

    answer = on_applier(file, inventory, build_dir, state_dir, known_hosts, trust_on_first_use,
                        jump, jump_key, request)
    if answer is None:
        sys.exit(1)
    token, ca_pem = answer
    expires = token_expiry(token)
    conf = render_token_kubeconfig(cluster.name, endpoint_url(cluster), ca_pem, user, token)
    where = write_kubeconfig(conf, output, f"{name}.kubeconfig")
    click.echo(f"wrote {where} (user {user}, expires {expires:%Y-%m-%d %H:%M:%S}Z)", err=True)


@click.command("token", cls=FileFirst)
@click.argument("file", type=FILE)
@click.argument("name")
@click.option("-o", "--output", type=OUTPUT,
              help="Where to write it (default ./<name>.kubeconfig); `-` prints it, token "
                   "included.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Key material directory (default .kubeforge/<cluster>/).")
def token_cmd(file: Path, name: str, output: Path | None, state_dir: Path | None) -> None:
    """A kubeconfig that authenticates with declared token NAME (`token NAME { ttl ... }`).

    The token is the one compile issued and keeps in the state directory; `apply` puts it
    on the cluster. Nothing is contacted.
    """
    from kubeforge.compiler import pki_store, tokens
    from kubeforge.compiler.build import default_state_dir
    from kubeforge.compiler.emit.kubeconfig import endpoint_url, render_token_kubeconfig
    from kubeforge.compiler.state import StateDir
    from kubeforge.dsl.diagnostics import did_you_mean

    program = _load(file)
    cluster = _cluster(program, file)
    declared = {s.name: s for s in program.subjects if s.kind == "Token"}
    if name not in declared:
        hint = (did_you_mean(name, declared) or f"it declares {', '.join(sorted(declared))}"
                if declared else f"declare `token {name} {{ ttl 24h  bind ROLE in NAMESPACE }}`")
        raise UsageError(f"{file} declares no token `{name}`; {hint}")
    token = declared[name]
    state = StateDir(state_dir or default_state_dir(cluster.name))
    issued = tokens.load(state, token)
    if issued is None:
        raise StateError(f"no token `{name}` in {state.root} yet: `kubeforge compile` issues "
                         "it and `kubeforge apply` puts it on the cluster")
    if issued.expires <= dt.datetime.now(dt.timezone.utc):
        raise StateError(f"token `{name}` expired at {tokens.rfc3339(issued.expires)}; the "
                         "next `kubeforge apply` issues a new one and puts it on the cluster")
    who = tokens.identity(token)
    conf = render_token_kubeconfig(cluster.name, endpoint_url(cluster),
                                   pki_store.load_cluster_ca(state).cert_pem, who.name,
                                   issued.bearer)
    where = write_kubeconfig(conf, output, f"{name}.kubeconfig")
    click.echo(f"wrote {where} (user {who.name}, groups {', '.join(who.groups)}; expires "
               f"{tokens.rfc3339(issued.expires)})", err=True)


COMMANDS = (serviceaccount_cmd, token_cmd)

# `kubeconfig user` lives with the RBAC commands; the token commands join its group here, so
# `rbac` does not load the SSH side and `kubeconfig` (kubeforge.cli's LAZY) loads this module.
for _command in COMMANDS:
    kubeconfig.add_command(_command)
