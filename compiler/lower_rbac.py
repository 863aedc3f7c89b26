"""Lower roles, cluster roles, users, groups and service accounts."""

from __future__ import annotations

import re

from kubeforge.compiler import values as V
from kubeforge.compiler.ir import Binding, LabelSelector, PolicyRule, Role, Subject
from kubeforge.compiler.lower_meta import MetaLowerer
from kubeforge.compiler.values import CERT_CN_MAX
from kubeforge.dsl.ast import Node
from kubeforge.dsl.diagnostics import did_you_mean

#: API group of the resources people name most; others need `group "..."`.
RESOURCE_GROUPS = {
    **{r: "" for r in (
        "pods", "services", "endpoints", "configmaps", "secrets", "serviceaccounts",
        "persistentvolumeclaims", "persistentvolumes", "namespaces", "nodes", "events",
        "replicationcontrollers", "resourcequotas", "limitranges", "podtemplates", "bindings",
        "componentstatuses", "users", "groups")},
    **{r: "apps" for r in ("deployments", "statefulsets", "daemonsets", "replicasets",
                           "controllerrevisions")},
    **{r: "batch" for r in ("jobs", "cronjobs")},
    "horizontalpodautoscalers": "autoscaling",
    **{r: "networking.k8s.io" for r in ("ingresses", "networkpolicies", "ingressclasses")},
    "poddisruptionbudgets": "policy",
    **{r: "rbac.authorization.k8s.io" for r in ("roles", "rolebindings", "clusterroles",
                                                "clusterrolebindings")},
    **{r: "storage.k8s.io" for r in ("storageclasses", "volumeattachments", "csidrivers",
                                     "csinodes")},
    "leases": "coordination.k8s.io",
    "endpointslices": "discovery.k8s.io",
    "certificatesigningrequests": "certificates.k8s.io",
    "customresourcedefinitions": "apiextensions.k8s.io",
    "priorityclasses": "scheduling.k8s.io",
    **{r: "authentication.k8s.io" for r in ("tokenreviews", "selfsubjectreviews", "userextras",
                                            "uids")},
    **{r: "authorization.k8s.io" for r in ("subjectaccessreviews", "selfsubjectaccessreviews",
                                           "localsubjectaccessreviews", "selfsubjectrulesreviews")},
}
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
         "escalate", "bind", "impersonate", "use", "approve", "sign", "proxy", "attest", "*")
#: Verbs of non-resource URLs: the request's lower-cased HTTP method.
URL_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "*")
#: The longest `aggregate_to` name: its label key `aggregate-to-NAME` must fit 63 characters.
AGGREGATE_NAME_MAX = 63 - len("aggregate-to-")
#: ClusterRoles every cluster has (user-facing ones and the commonly bound system ones).
BUILTIN_CLUSTER_ROLES = ("cluster-admin", "admin", "edit", "view")


class RbacLowerer(MetaLowerer):
    def role(self, stmt: Node, namespace: str | None) -> Role:
        name = self.name(stmt.value(), "role", subdomain=True)
        rules: list[PolicyRule] = []
        labels: list[tuple[str, str]] = []
        aggregate_to: list[str] = []
        selectors: list[LabelSelector] = []
        cluster = stmt.kind == "clusterrole"
        for item in stmt.body or ():
            if item.kind == "rule":
                rules.extend(self.rule(item))
            elif item.kind == "url_rule":
                if not cluster:
                    self.error("E116", "non-resource URLs can only be granted by a clusterrole",
                               item.span, "declare `clusterrole NAME { ... }`")
                verbs = self.verbs(item, URL_VERBS)
                urls = tuple(str(v.py) for v in item.values() if v.kind == "STRING")
                for url in urls:
                    if not url.startswith("/") and url != "*":
                        self.error("E105", f"non-resource URL `{url}` must start with /", item.span)
                rules.append(PolicyRule(verbs, urls=urls, span=item.span))
            elif item.kind == "labels":
                labels.extend(self.kv(item, labels=True))
            elif item.kind == "aggregate_to":
                if not cluster:
                    self.error("E116", "only a clusterrole can aggregate", item.span)
                for v in item.values():
                    target = str(v.py)
                    if len(target) > AGGREGATE_NAME_MAX or V.label_key_problem(
                            f"aggregate-to-{target}"):
                        self.error("E105", f"`aggregate_to {target}` makes the label key "
                                   f"`rbac.authorization.k8s.io/aggregate-to-{target}`, which "
                                   "Kubernetes rejects", v.span,
                                   f"the name must be at most {AGGREGATE_NAME_MAX} letters, "
                                   "digits, '-', '_' or '.'")
                    aggregate_to.append(target)
            elif item.kind == "aggregate_from":
                if not cluster:
                    self.error("E116", "only a clusterrole can aggregate", item.span)
                selectors.append(self.selector(item))
        aggregate_from = tuple(selectors) if selectors else None
        if aggregate_from is not None and rules:
            first = next(i for i in stmt.body or () if i.kind in ("rule", "url_rule"))
            self.error("E116", f"clusterrole `{name}` aggregates (`aggregate_from`) and also has "
                       "`allow` rules", first.span, "the API server's aggregation controller "
                       "replaces the rules of an aggregated role; move these rules to another "
                       "clusterrole that the selector picks up")
        return Role(name, None if cluster else namespace, tuple(rules), stmt.span, tuple(labels),
                    tuple(aggregate_to), aggregate_from)

    def verbs(self, item: Node, known: tuple[str, ...] = VERBS,
              custom: bool = False) -> tuple[str, ...]:
        """The rule's verbs. ``custom``: unknown verbs are allowed (custom resources may
        define their own), unless one is a near miss of a known verb."""
        clause = item.clause("rule_verbs")
        assert clause is not None
        out = []
        for v in clause.values():
            word = str(v.py)
            if word in known:
                out.append(word)
                continue
            near = did_you_mean(word, known)
            if custom and near is None:
                out.append(word)
                continue
            hint = near or ("custom verbs are allowed on resources of a named API group "
                            '(`group "example.com"`); known verbs: ' + ", ".join(known))
            self.error("E104", f"unknown verb `{word}`", v.span, hint)
            out.append(word)
        return tuple(dict.fromkeys(out))

    def rule(self, item: Node) -> list[PolicyRule]:
        group_clause = item.clause("rule_group")
        custom = group_clause is not None and any(
            str(v.py) not in set(RESOURCE_GROUPS.values()) for v in group_clause.values())
        verbs_t = self.verbs(item, custom=custom)
        resources = item.clause("rule_resources").values()
        names_clause = item.clause("rule_names")
        names = tuple(str(v.py) for v in names_clause.values()) if names_clause else ()
        if group_clause is not None:
            groups = tuple(str(v.py) for v in group_clause.values())
            return [PolicyRule(verbs_t, tuple(r.text for r in resources), groups, names,
                               span=item.span)]
        by_group: dict[str, list[str]] = {}
        for res in resources:
            text = res.text
            base = text.split("/")[0]
            if base == "*":
                by_group.setdefault("*", []).append(text)
                continue
            if base not in RESOURCE_GROUPS:
                hint = did_you_mean(base, RESOURCE_GROUPS) or \
                    'for other resources name their API group: `group "example.com"`'
                self.error("E104", f"unknown resource `{base}`", res.span, hint)
                continue
            by_group.setdefault(RESOURCE_GROUPS[base], []).append(text)
        return [PolicyRule(verbs_t, tuple(res), (group,), names, span=item.span)
                for group, res in sorted(by_group.items())]

    def subject(self, stmt: Node, namespace: str | None) -> Subject | None:
        kind = {"user": "User", "group": "Group", "serviceaccount": "ServiceAccount",
                "token": "Token"}[stmt.kind]
        name_v = stmt.value()
        name = str(name_v.py)
        if kind in ("User", "Group") and (not name or name != name.strip()):
            self.error("E105", f"`{name}` is not a {stmt.kind} name", name_v.span)
        if kind == "Token":
            # Its own group `system:bootstrappers:kubeforge:NAME` must be a valid one.
            name = self.name(name_v, "token")
        if kind == "ServiceAccount":
            name = self.name(name_v, "service account", subdomain=True)
            scope = stmt.clause("role_scope")
            if scope is not None:
                namespace = str(scope.value().py)
            if namespace is None:
                self.error("E115", f"service account `{name}` needs a namespace", stmt.span,
                           f"write `serviceaccount {name} in NAMESPACE` or declare it inside a "
                           "namespace block")
                return None
        groups: list[str] = []
        bindings: list[Binding] = []
        validity = None
        automount = None
        ttl = None
        description = ""
        body = stmt.body or ()
        self.unique_stmts(body, f"{stmt.kind} `{name}`")
        for item in body:
            if item.kind == "member_of":
                if kind not in ("User", "Token"):
                    self.error("E116", "only users and tokens are members of groups", item.span)
                if kind == "Token":
                    self._token_groups(item)
                groups.extend(str(v.py) for v in item.values())
            elif item.kind in ("ttl", "description"):
                if kind != "Token":
                    self.error("E116", f"only tokens have a `{item.kind}`", item.span,
                               "declare a bearer token with `token NAME { ttl 24h ... }`"
                               if item.kind == "ttl" else None)
                elif item.kind == "ttl":
                    ttl = self._token_ttl(item)
                else:
                    description = str(item.value().py)
            elif item.kind == "bind":
                scope = item.clause("role_scope")
                ns = str(scope.value().py) if scope else None
                wide = item.clause("bind_cluster") is not None
                if kind == "ServiceAccount" and ns is None and not wide:
                    ns = namespace
                bindings.append(Binding(str(item.value().py), ns, item.span, wide))
            elif item.kind == "cert_validity":
                if kind != "User":
                    self.error("E116", "only users get client certificates", item.span)
                from kubeforge.compiler.values import duration_days

                validity = self.read(duration_days, item.value(), "E106")
            elif item.kind == "automount_token":
                if kind != "ServiceAccount":
                    self.error("E116", "only service accounts have tokens to mount", item.span)
                automount = item.value().py
            elif item.kind in ("labels", "annotations") and kind != "ServiceAccount":
                self.error("E116", f"a {stmt.kind} is no Kubernetes object to label", item.span,
                           "labels and annotations go on service accounts and other objects")
        if kind == "Token" and ttl is None and not any(i.kind == "ttl" for i in body):
            self.error("E115", f"token `{name}` needs a `ttl`", stmt.span,
                       "a bootstrap token without an expiration would authenticate forever: "
                       "add e.g. `ttl 24h`")
        if kind == "User" and name.startswith("system:"):
            self.error("E105", f"user `{name}` uses the reserved `system:` prefix", name_v.span)
        if kind == "User" and len(name) > CERT_CN_MAX:
            self.error("E103", f"user name `{name}` is longer than {CERT_CN_MAX} characters",
                       name_v.span, "a user's client certificate carries the name as its "
                       f"common name, which holds at most {CERT_CN_MAX} characters")
        return Subject(kind, name, stmt.span, namespace if kind == "ServiceAccount" else None,
                       tuple(dict.fromkeys(groups)), tuple(bindings), validity, automount,
                       self.merged_kv((s for s in body if s.kind == "labels"), labels=True),
                       self.merged_kv(s for s in body if s.kind == "annotations"), ttl,
                       description)

    def _token_groups(self, item: Node) -> None:
        """A token's groups go into its Secret's auth-extra-groups, which the API server
        accepts only under ``system:bootstrappers:``."""
        from kubeforge.compiler.tokens import GROUP_RE, KUBEADM_GROUPS

        for v in item.values():
            group = str(v.py)
            if group.startswith(KUBEADM_GROUPS):
                self.error("E105", f"`{group}` is kubeadm's join-token group", v.span,
                           "a token there may join nodes and have their certificates approved "
                           "(bindings kubeforge does not model); use a group of your own")
            elif not GROUP_RE.match(group):
                bare = group.lower().removeprefix("system:bootstrappers").removeprefix("system:")
                suffix = re.sub(r"[^a-z0-9:-]", "-", bare).strip("-:") or "NAME"
                self.error("E105", f"a token's group must be `system:bootstrappers:...`, "
                           f"not `{group}`", v.span,
                           f"the API server only accepts such groups for bootstrap tokens: "
                           f"write `system:bootstrappers:{suffix}` and bind that group")

    def _token_ttl(self, item: Node) -> int | None:
        seconds = self.read(V.duration_seconds, item.value(), "E106")
        if seconds is not None and seconds < 60:
            self.error("E106", f"a token ttl of {item.value().text} is shorter than a minute",
                       item.value().span, "it would expire before `apply` put it on the cluster")
            return None
        return seconds


