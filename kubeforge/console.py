"""Consoles for output whose product is a table."""

from __future__ import annotations

from rich.console import Console


def table_console() -> Console:
    """stdout at the terminal's width; piped or redirected, wide enough that rows stay whole
    (rich would otherwise squeeze tables into 80 columns), unless COLUMNS says otherwise."""
    import os

    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=240)
