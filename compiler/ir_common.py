"""IR pieces every area uses: key/value pairs, label selectors, patches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kubeforge.dsl.diagnostics import NO_SPAN, Span

KV = tuple[tuple[str, str], ...]  # ordered key/value pairs (labels, annotations, data)


@dataclass(frozen=True)
class SelectorExpr:
    """One `matchExpressions` entry."""

    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes LabelSelector; the empty selector matches everything."""

    match_labels: KV = ()
    expressions: tuple[SelectorExpr, ...] = ()
    span: Span = NO_SPAN

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for e in self.expressions:
            present = e.key in labels
            if e.operator == "In" and not (present and labels[e.key] in e.values):
                return False
            if e.operator == "NotIn" and present and labels[e.key] in e.values:
                return False
            if e.operator == "Exists" and not present:
                return False
            if e.operator == "DoesNotExist" and present:
                return False
        return True

    def doc(self) -> dict:
        """The selector as Kubernetes writes it."""
        out: dict = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.expressions:
            out["matchExpressions"] = [
                {"key": e.key, "operator": e.operator, **({"values": list(e.values)}
                                                          if e.values else {})}
                for e in self.expressions]
        return out


@dataclass(frozen=True)
class ObjectMeta:
    """Name, labels, annotations and patches of an object a statement makes besides its
    own (an autoscaler or disruption budget); unset fields follow the workload."""

    name: Optional[str] = None  # default: the workload's name
    labels: Optional[KV] = None  # None: the workload's object labels
    annotations: KV = ()
    patches: tuple["Patch", ...] = ()


@dataclass(frozen=True)
class Patch:
    """A user's patch of one emitted object: strategic merge (YAML) or JSON patch (RFC 6902)."""

    kind: str  # strategic | json
    text: str
    span: Span = NO_SPAN
    text_line: int = 0  # source line of the text's first line (0: unknown)
    text_col: int = 1
