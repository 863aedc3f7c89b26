"""Readers every lowering pass shares: label selectors, patches and object metadata blocks."""

from __future__ import annotations

from typing import Iterable, Optional

from kubeforge.compiler import values as V
from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir import LabelSelector, ObjectMeta, Patch, SelectorExpr
from kubeforge.dsl.ast import Node, Value
from kubeforge.fileio import TEXT_LIMIT, FileProblem, read_text

_OPERATORS = {"match_in": "In", "match_notin": "NotIn", "match_exists": "Exists",
              "match_absent": "DoesNotExist"}


class MetaLowerer(Lowerer):
    # -- label selectors -------------------------------------------------------------------
    def selector(self, node: Node, *, expressions: bool = True,
                 what: str = "this selector") -> LabelSelector:
        """A `{ k = "v"  k in "a" "b"  k not in ...  k exists  k not exists }` selector,
        given as a statement's block or as an inline `match` clause."""
        items = node.body if node.body is not None else \
            [a for a in node.args if isinstance(a, Node)]
        labels: dict[str, str] = {}
        exprs: list[SelectorExpr] = []
        for item in items:
            vals = item.values()
            key_v = vals[0]
            key = str(key_v.py)
            problem = V.label_key_problem(key)
            if problem:
                self.error("E105", problem, key_v.span)
            if item.kind == "entry":
                value = self.label_value(vals[1])
                labels[key] = value
                continue
            if not expressions:
                self.error("E116", f"{what} selects by equal labels only (`key = \"value\"`)",
                           item.span)
                continue
            values = tuple(self.label_value(v) for v in vals[1:])
            exprs.append(SelectorExpr(key, _OPERATORS[item.kind], values))
        return LabelSelector(tuple(labels.items()), tuple(exprs), node.span)

    def label_value(self, value: Value) -> str:
        text = V.text(value)
        problem = V.label_value_problem(text)
        if problem:
            self.error("E105", problem, value.span)
        return text

    # -- patches --------------------------------------------------------------------------
    def patches(self, body: Iterable[Node]) -> tuple[Patch, ...]:
        out = []
        for stmt in body:
            if stmt.kind not in ("patch", "patch_file"):
                continue
            kind = "json" if stmt.clause("patch_json") is not None else "strategic"
            if stmt.kind == "patch_file":
                path_v = stmt.clause("from_file").value()
                text = self.read_file(path_v)
                if text is None:
                    continue
                path = self.path(path_v)
                from kubeforge.dsl.diagnostics import Span

                out.append(Patch(kind, text, Span(str(path), 1, 1, 1, 1), 1, 1))
                continue
            value = stmt.value()
            text = str(value.py)
            line, col = value.span.line, value.span.col
            if value.text.startswith('"""'):
                raw = value.text[3:-3]
                line += 1 if raw.startswith(("\n", "\r\n")) else 0
                col = 1 + _indent_removed(raw)
            out.append(Patch(kind, text, stmt.span, line, col))
        return tuple(out)

    def read_file(self, path_v: Value) -> Optional[str]:
        """A UTF-8 regular file's text (a device or pipe would never end or never answer)."""
        try:
            return read_text(self.path(path_v), TEXT_LIMIT)
        except FileProblem as problem:
            self.error("E117", f"file `{path_v.py}` {problem}", path_v.span)
        return None

    # -- object metadata -------------------------------------------------------------------
    def meta(self, body: Iterable[Node], kind: str) -> ObjectMeta:
        """A metadata block (`{ name N  labels {..}  annotations {..}  patch ... }`)."""
        body = tuple(body)
        name = None
        for stmt in body:
            if stmt.kind == "object_name":
                name = self.name(stmt.value(), kind, subdomain=True)
        label_stmts = [s for s in body if s.kind == "labels"]
        labels = self.merged_kv(label_stmts, labels=True) if label_stmts else None
        annotations = self.merged_kv(s for s in body if s.kind == "annotations")
        return ObjectMeta(name, labels, annotations, self.patches(body))


def _indent_removed(raw: str) -> int:
    """How many columns dedenting a block string's text removed."""
    lines = [ln for ln in raw.split("\n")[1:] if ln.strip()]
    if raw and not raw.startswith(("\n", "\r\n")):
        return 0
    return min((len(ln) - len(ln.lstrip(" \t")) for ln in lines), default=0)
