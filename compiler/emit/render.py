"""Text rendering shared by the host-side emitters: jinja2 templates and YAML documents.

Templates live in ``compiler/templates/`` (package data). ``StrictUndefined`` turns a
misspelt variable into an error at compile time instead of an empty string on a host, and
``keep_trailing_newline`` keeps files POSIX-clean. YAML goes through PyYAML's ``safe_dump``
with sorted keys, so the same IR always gives byte-identical files (content hashes drive the
plan's idempotency).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jinja2
import yaml

from kubeforge.compiler import text_memo


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("kubeforge.compiler", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # config files, not HTML
    )


def render_template(template: str, /, **variables: Any) -> str:
    return _environment().get_template(template).render(**variables)


def dump_yaml(doc: Any) -> str:
    return text_memo.text(_safe_dump, doc)  # every node's configs, on every compile


def _safe_dump(doc: Any) -> str:
    # width: never fold long strings (a folded certSAN or URL is still valid YAML, but diffs
    # of generated files should show whole values).
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=4096)


def dump_yaml_documents(docs: Iterable[Any]) -> str:
    """A multi-document stream, documents separated by ``---``."""
    return "---\n".join(dump_yaml(d) for d in docs)


def go_duration(seconds: int) -> str:
    """``time.Duration.String()`` for whole seconds: 86400 -> ``24h0m0s``, 90 -> ``1m30s``."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
