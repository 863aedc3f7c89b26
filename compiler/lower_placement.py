"""Lower where pods may run: tolerations, (anti-)affinity terms and topology spread."""

from __future__ import annotations

from kubeforge.compiler import values as V
from kubeforge.compiler.ir import Affinity, LabelSelector, Toleration, TopologySpread
from kubeforge.compiler.lower_meta import MetaLowerer
from kubeforge.dsl.ast import Node

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
HOSTNAME = "kubernetes.io/hostname"


class PlacementLowerer(MetaLowerer):
    def toleration(self, item: Node) -> Toleration | None:
        key = str(item.values()[0].py)
        value_clause = item.clause("toleration_value")
        effect_clause = item.clause("toleration_effect")
        effect = None
        if effect_clause is not None:
            effect = self.choice(effect_clause.value(), EFFECTS, "taint effect")
        return Toleration(key, str(value_clause.value().py) if value_clause else None, effect)

    def affinity(self, item: Node) -> Affinity:
        """`affinity pods|nodes ...` or `anti_affinity pods ...`; `pods NAME` names a
        workload of the namespace, resolved by the checks and the emitter."""
        target = item.first_clause()
        assert target is not None
        weight_c = item.clause("aff_weight")
        weight = None
        if weight_c is not None:
            weight = int(weight_c.value().text)
            if not 1 <= weight <= 100:
                self.error("E105", f"weight {weight} is outside 1-100", weight_c.value().span)
        by_c = item.clause("aff_by")
        ns_c = item.clause("aff_namespaces")
        if target.kind == "aff_nodes":
            for clause in (by_c, ns_c):
                if clause is not None:
                    self.error("E116", "node affinity takes no topology key or namespaces",
                               clause.span)
            return Affinity("node", self.selector(target.clause("match")), weight=weight,
                            span=item.span)
        match = target.clause("match")
        workload = None
        if match is not None:
            selector = self.selector(match)
        else:
            workload = str(target.value().py)
            selector = LabelSelector(span=target.span)
        key = str(by_c.value().py) if by_c else HOSTNAME
        if by_c is not None:
            problem = V.label_key_problem(key)
            if problem:
                self.error("E105", f"topology key: {problem}", by_c.value().span)
        namespaces: tuple[str, ...] = ()
        ns_selector = None
        if ns_c is not None:
            if ns_c.clause("match") is not None:
                ns_selector = self.selector(ns_c.clause("match"))
            else:
                namespaces = tuple(str(v.py) for v in ns_c.values())
        kind = "anti" if item.kind == "anti_affinity" else "pod"
        return Affinity(kind, selector, key, weight, namespaces, ns_selector, item.span, workload)

    def topology_spread(self, item: Node) -> TopologySpread:
        key_v = item.value()
        key = str(key_v.py)
        problem = V.label_key_problem(key)
        if problem:
            self.error("E105", f"topology key: {problem}", key_v.span)
        skew_c = item.clause("ts_skew")
        skew = int(skew_c.value().text) if skew_c else 1
        if skew < 1:
            self.error("E105", "max_skew must be at least 1", skew_c.value().span)
        mode = item.clause("ts_mode")
        domains_c = item.clause("ts_min_domains")
        domains = int(domains_c.value().text) if domains_c else None
        hard = mode is None or str(mode.value().py) == "hard"
        if domains is not None and domains < 1:
            self.error("E105", "min_domains must be at least 1", domains_c.value().span)
        if domains is not None and not hard:
            self.error("E105", "min_domains needs a hard spread (DoNotSchedule)", domains_c.span)
        pods = item.clause("ts_pods")
        selector = self.selector(pods.clause("match")) if pods else None
        return TopologySpread(key, skew, hard, domains, selector, item.span)
