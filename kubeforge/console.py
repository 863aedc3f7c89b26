"""rich consoles: every module that prints with rich takes `Console` from here, so the
broken-pipe hook below is in place whenever rich output exists (and `kubeforge --help` and
`check`, which print without rich, never import it: tests/test_cli_lazy.py)."""

from __future__ import annotations

from rich.console import Console

__all__ = ["Console", "table_console"]


def _reader_gone(self: Console) -> None:
    from kubeforge.cli import reader_gone

    reader_gone()


# rich catches a broken pipe itself and exits 1 without a word; its documented hook sends
# that case to the CLI's handler too, so every command behaves the same whichever way it prints.
Console.on_broken_pipe = _reader_gone  # type: ignore[method-assign]


def table_console() -> Console:
    """stdout at the terminal's width; piped or redirected, wide enough that rows stay whole
    (rich would otherwise squeeze tables into 80 columns), unless COLUMNS says otherwise."""
    import os

    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=240)
