"""The `kubeforge` command line.

Exit codes: 0 success, 1 invalid input or a failed operation, 2 usage error (bad flags,
missing files), 3 an internal bug (reported with a request to file it).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import click

from kubeforge import __version__
from kubeforge.errors import KubeforgeError

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3


def report(err: KubeforgeError, as_json: bool = False) -> int:
    if as_json:
        # Imported here: --help and the commands that never report diagnostics skip it.
        from kubeforge.dsl.diagnostics import DiagnosticError

        diagnostics = [d.as_dict() for d in err.diagnostics] if isinstance(err, DiagnosticError) else []
        click.echo(json.dumps({"ok": False, "error": str(err) if not diagnostics else None,
                               "diagnostics": diagnostics}, indent=2, sort_keys=True))
    else:
        click.echo(str(err), err=True)
    return err.exit_code


def json_errors(fn):
    """With --json, report kubeforge errors as JSON on stdout instead of text on stderr."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KubeforgeError as err:
            if not kwargs.get("as_json"):
                raise
            sys.exit(report(err, as_json=True))
    return wrapper


def reader_gone() -> NoReturn:
    """The reader of our output went away (`kubeforge ... | head`): end as Unix tools do,
    killed by SIGPIPE (the shell shows 141), with no traceback and no exit code that would
    claim a failed operation. stdout goes to /dev/null first, so nothing flushes into the
    closed pipe on the way out. Output through rich comes here too (kubeforge.console)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + signal.SIGPIPE)  # not reached where SIGPIPE exists


#: Subcommands in their own modules: name -> (module, attribute, the command's short help).
#: A module is imported only when its command runs or shows its own help, so `kubeforge
#: --help` and `check` do not pay for paramiko, cryptography's x509 and the sandbox code
#: (tests/test_cli_lazy.py holds the help texts to the commands' own).
LAZY: dict[str, tuple[str, str, str]] = {
    "apply": ("kubeforge.cli_deploy", "apply_cmd",
              "Compile FILE and bring the inventory's hosts to its plan; resumes after a failure."),
    "bundle": ("kubeforge.cli_bundle", "bundle",
               "Offline bundles: binaries and image archives built from the Go module proxy."),
    "certs": ("kubeforge.cli_certs_renew", "certs",
              "Inspect the certificates of a compiled cluster, and renew them on its hosts."),
    "etcd": ("kubeforge.cli_etcd", "etcd", "Snapshots of the cluster's etcd, and restoring one."),
    "kubeconfig": ("kubeforge.cli_tokens", "kubeconfig",
                   "Make kubeconfigs: client certificates and declared tokens from the state "
                   "directory, service-account tokens from the cluster."),
    "plan": ("kubeforge.cli_deploy", "plan_cmd",
             "Show what `apply` would change, per host and phase (no secrets), and which nodes "
             "it would remove."),
    "rbac": ("kubeforge.cli_rbac", "rbac", "Ask the compiled RBAC of a file: can-i, who-can, matrix."),
    "reset": ("kubeforge.cli_deploy", "reset_cmd",
              "Undo what apply did: kubeadm reset, services stopped and disabled, files "
              "removed or given back."),
    "rollout": ("kubeforge.cli_rollout", "rollout",
                "A declared workload's revisions on the cluster, and the way back to one."),
    "sandbox": ("kubeforge.cli_sandbox", "sandbox",
                "Local systemd hosts with real sshd on a private network (docker containers)."),
    "vagrant": ("kubeforge.cli_vagrant", "vagrant",
                "Vagrant machines matching a cluster file, ready for `kubeforge apply`."),
    "verify": ("kubeforge.cli_verify", "verify",
               "Check every host against what FILE promises: files, certificates, services, "
               "ports, kernel settings, the VIP and etcd."),
}


class Group(click.Group):
    """Turns kubeforge's own errors into messages and exit codes, never tracebacks; loads
    the LAZY subcommands when they are used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and name not in self.commands:
            module, attribute, _ = LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from LAZY's texts, without importing the modules."""
        rows = []
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # Shortened as the command itself would (a bare Command costs nothing).
                rows.append((name, click.Command(name, help=LAZY[name][2])
                             .get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        # A machine that asked for --json reads stdout whatever happens, errors included.
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args; 9 drops it
            warnings.simplefilter("ignore", DeprecationWarning)
            as_json = "--json" in (*getattr(ctx, "protected_args", ()), *ctx.args)
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a broken pipe shows here, not at interpreter exit
            return result
        except BrokenPipeError:
            reader_gone()
        except KubeforgeError as err:
            ctx.exit(report(err, as_json))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so plainly, keep the traceback for the report
            import traceback

            if as_json:
                click.echo(json.dumps({"ok": False, "internal": True, "diagnostics": [],
                                       "error": f"internal error: {type(exc).__name__}: {exc}"},
                                      indent=2, sort_keys=True))
            click.echo("kubeforge: internal error (this is a bug; please report it with the "
                       "traceback below)", err=True)
            traceback.print_exc()
            ctx.exit(EXIT_BUG)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubeforge")
def main() -> None:
    """Compile a kubeforge file into a kubeadm HA cluster and deploy it."""


def _print_warnings(warnings, sources=None) -> None:
    for warning in warnings:
        click.echo(warning.render(sources), err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings (RBAC lint, ...) as errors.")
@click.option("--json", "as_json", is_flag=True, help="Print diagnostics as JSON.")
@json_errors
def check(file: Path, strict: bool, as_json: bool) -> None:
    """Parse and check FILE without writing anything."""
    from kubeforge.compiler.lower import load_program

    program, sources = load_program(file, strict=strict)
    if as_json:
        click.echo(json.dumps({"ok": True, "diagnostics": [w.as_dict() for w in program.warnings]},
                              indent=2, sort_keys=True))
    else:
        _print_warnings(program.warnings, sources)
        click.echo(f"{file}: ok", err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Output directory.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Key material directory (default .kubeforge/<cluster>/).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@json_errors
def compile(file: Path, out_dir: Path, state_dir: Path | None, strict: bool, as_json: bool) -> None:
    """Check FILE and write every artifact under OUT/<cluster>/."""
    from kubeforge.compiler.build import compile_file

    result = compile_file(file, out_dir, state_dir=state_dir, strict=strict)
    if as_json:
        click.echo(json.dumps({"ok": True, "root": str(result.root),
                               "files": sorted(a.path for a in result.artifacts)},
                              indent=2, sort_keys=True))
    else:
        _print_warnings(result.warnings, result.sources)
        click.echo(f"wrote {len(result.artifacts)} files to {result.root}", err=True)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", "check_only", is_flag=True,
              help="Exit 1 if a file is not formatted; write nothing.")
@click.option("-w", "--write", is_flag=True, help="Rewrite the files in place.")
def fmt(files: tuple[Path, ...], check_only: bool, write: bool) -> None:
    """Print FILES in canonical form (or rewrite them with -w)."""
    from kubeforge.compiler.artifacts import write_atomic
    from kubeforge.dsl.formatter import format_source
    from kubeforge.dsl.parser import read_source

    unformatted = []
    for file in files:
        text = read_source(file)
        pretty = format_source(text, str(file))
        if check_only:
            if pretty != text:
                unformatted.append(file)
        elif write:
            write_atomic(file, pretty.encode(), file.stat().st_mode & 0o777)
        else:
            click.echo(pretty, nl=False)
    for file in unformatted:
        click.echo(f"{file}: not formatted", err=True)
    if unformatted:
        sys.exit(EXIT_INVALID)


