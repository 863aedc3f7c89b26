"""Shell for e2e modules that share the sandbox hosts and must start from cold ones.

Deleting kubeforge's files is not enough: some of them replaced a package's own (haproxy.cfg,
containerd's config.toml), and a later module's reset is judged on giving those back. So a
path kubeforge's keep-originals recorded gets its original back (or goes, if nothing was
there); a path without a record goes unless a package owns it; then the record goes too, so
the next apply records the hosts as they are now.
"""

from __future__ import annotations

import shlex

from kubeforge.compiler.emit.originals import ABSENT, ORIGINALS


def cold(paths: tuple[str, ...], services: tuple[str, ...], store: str = ORIGINALS) -> str:
    """Stop and disable ``services``, give back or remove ``paths`` (files or directories),
    forget the originals kept in ``store``; always exits 0."""
    return "\n".join([
        f"systemctl disable --now {' '.join(services)} 2>/dev/null",
        f"o={shlex.quote(store)}",
        "for p in " + " ".join(shlex.quote(p) for p in paths) + "; do",
        '  k="$o$p"',
        # A directory in the record only holds the records of files under it.
        '  if [ -f "$k" ] || [ -L "$k" ]; then rm -rf "$p"; mv -f "$k" "$p"',
        f'  elif [ -e "$k{ABSENT}" ] || ! dpkg -S "$p" >/dev/null 2>&1; then rm -rf "$p"; fi',
        "done",
        'rm -rf "$o"',
        "systemctl daemon-reload; true",
    ])
