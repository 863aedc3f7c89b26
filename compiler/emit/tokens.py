"""Emitter: the bootstrap-token Secrets of the file's `token` statements.

``manifests/02-bootstrap-tokens.yaml`` (secret, 0600): one ``bootstrap-token-<id>`` Secret in
kube-system per token, applied with the other manifests, after RBAC (its groups' bindings)
and before the namespaces' objects. The plan and files.json name it by a keyed digest only,
as every secret file. The secret halves live in the state directory
(:mod:`kubeforge.compiler.tokens`).
"""

from __future__ import annotations

from kubeforge.compiler import tokens
from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.compiler.emit.manifests import dump_all
from kubeforge.compiler.state import StateDir
from kubeforge.dsl.diagnostics import Diagnostic

MANIFEST = "manifests/02-bootstrap-tokens.yaml"


def emit(ctx: BuildContext) -> list[Artifact]:
    declared = sorted((s for s in ctx.program.subjects if s.kind == "Token"),
                      key=lambda s: s.name)
    if not declared:
        return []
    state = StateDir(ctx.state_dir)
    docs = []
    for token in declared:
        issued = tokens.ensure(state, token, ctx.now)
        if issued.renewed_from is not None:
            ctx.warnings.append(Diagnostic(
                "W302", f"token `{token.name}` expired at {tokens.rfc3339(issued.renewed_from)}; "
                f"issued a new one, valid until {tokens.rfc3339(issued.expires)}", token.span,
                f"`kubeforge kubeconfig token FILE {token.name}` writes a kubeconfig with it "
                "once `apply` has put it on the cluster", "warning"))
        docs.append(tokens.secret_doc(token, issued))
    return [Artifact(MANIFEST, dump_all(docs), 0o600, secret=True)]
