"""One argument order for every command: the .kf FILE comes first.

`kubeforge rbac who-can FILE VERB RESOURCE`, `kubeforge kubeconfig user FILE NAME`, as
`plan FILE`, `apply FILE`, `verify FILE`. A FILE given elsewhere in the line would surface as
"get: no such file"; :class:`FileFirst` says what happened instead.
"""

from __future__ import annotations

from pathlib import Path

import click

from kubeforge.errors import UsageError


class FileFirst(click.Command):
    """A command whose first argument is FILE: a missing FILE while another argument is an
    existing file is reported as the wrong order, with the right one."""

    def invoke(self, ctx: click.Context):
        file = ctx.params.get("file")
        if file is not None and not Path(file).exists():
            # Arguments first: an option's file (the inventory) is where it belongs.
            kinds = {p.name: isinstance(p, click.Argument) for p in self.params}
            others = [str(v) for k, v in sorted(ctx.params.items(),
                                                key=lambda kv: not kinds.get(kv[0], False))
                      if k != "file" and isinstance(v, (str, Path)) and str(v)
                      and Path(v).is_file()]
            if others:
                names = " ".join(p.human_readable_name for p in self.params
                                 if isinstance(p, click.Argument))
                command = " ".join(["kubeforge", *ctx.command_path.split()[1:]])
                raise UsageError(
                    f"{file}: no such file, and `{others[0]}` is one: the file comes first "
                    f"(usage: {command} {names} [OPTIONS])")
        return super().invoke(ctx)
