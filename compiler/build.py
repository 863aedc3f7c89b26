"""The compile pipeline: source file -> checked IR -> artifacts on disk."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
from dataclasses import dataclass
from pathlib import Path

from kubeforge.compiler import text_memo
from kubeforge.compiler.artifacts import Artifact, BuildContext, write_artifacts
from kubeforge.compiler.gc_batch import fewer_collections
from kubeforge.compiler.ir import Program
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.state import StateDir
from kubeforge.dsl.diagnostics import Diagnostic, DiagnosticError, SourceMap, Span

#: Emitters in the order they run; a later emitter may read what an earlier one put in
#: ``ctx.shared`` (the PKI bundle) or ``ctx.artifacts`` (the plan lists every file).
EMITTERS: tuple[str, ...] = (
    "kubeforge.compiler.emit.bundle",  # first: a bad bundle is refused before anything else
    "kubeforge.compiler.emit.pki",
    "kubeforge.compiler.emit.kubeconfig",
    "kubeforge.compiler.emit.rbac",
    "kubeforge.compiler.emit.tokens",
    "kubeforge.compiler.emit.hostprep",
    "kubeforge.compiler.emit.loadbalancer",
    "kubeforge.compiler.emit.etcd",
    "kubeforge.compiler.emit.etcd_backup",
    "kubeforge.compiler.emit.kubeadm",
    "kubeforge.compiler.emit.cni",
    "kubeforge.compiler.emit.addons",
    "kubeforge.compiler.emit.manifests",
    "kubeforge.compiler.emit.vagrant",
    "kubeforge.compiler.emit.plan",
    "kubeforge.compiler.emit.plan_upgrade",
    "kubeforge.compiler.emit.ansible",  # build-local files: the plan ignores them
    "kubeforge.compiler.emit.verify",
)


@dataclass(frozen=True)
class BuildResult:
    program: Program
    root: Path
    artifacts: tuple[Artifact, ...]
    warnings: tuple[Diagnostic, ...]
    sources: SourceMap | None = None  # to show warnings with their source lines


def default_state_dir(cluster_name: str, base: Path | None = None) -> Path:
    return (base or Path.cwd()) / ".kubeforge" / cluster_name


def run_emitters(program: Program, state_dir: Path, now: dt.datetime) -> BuildContext:
    ctx = BuildContext(program=program, state_dir=state_dir, now=now,
                       base_dir=Path(program.base_dir))
    with fewer_collections(), text_memo.kept_in(StateDir(state_dir)):
        for name in EMITTERS:
            module = importlib.import_module(name)
            ctx.artifacts.extend(module.emit(ctx))
    return ctx


def compile_file(source: str | Path, out_dir: str | Path, *, state_dir: str | Path | None = None,
                 now: dt.datetime | None = None, strict: bool = False) -> BuildResult:
    program, sources = load_program(source, strict=strict)
    if program.cluster is None:
        raise DiagnosticError(
            [Diagnostic("E115", "nothing to compile: the file declares no `cluster` block",
                        Span(str(source), 1, 1, 1, 1),
                        "add `cluster NAME { ... }` (or import a file that has one)")],
            sources,
        )
    name = program.cluster.name
    state = Path(state_dir) if state_dir else default_state_dir(name)
    warnings = list(program.warnings)
    tightened = StateDir(state).tighten()
    if tightened:
        warnings.append(Diagnostic(
            "W301", f"the state directory was readable by others: tightened {len(tightened)} "
            f"mode(s): {'; '.join(tightened[:3])}{'; ...' if len(tightened) > 3 else ''}",
            Span(str(state), 0, 0, 0, 0), "keep it 0700 with 0600 files: it holds every key",
            "warning"))
    try:
        ctx = run_emitters(program, state, now or dt.datetime.now(dt.timezone.utc))
    except DiagnosticError as err:
        # Emitters (secret sources, ...) report without the source text; add it.
        raise DiagnosticError(err.diagnostics, sources) from None
    if strict and ctx.warnings:
        raise DiagnosticError([dataclasses.replace(w, severity="error") for w in ctx.warnings],
                              sources)
    root = Path(out_dir) / name
    write_artifacts(root, ctx.artifacts, StateDir(state).digest_key())
    return BuildResult(program, root, tuple(ctx.artifacts), (*warnings, *ctx.warnings), sources)
