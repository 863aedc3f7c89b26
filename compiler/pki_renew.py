"""`kubeforge certs renew`, the state side: which leaf certificates a cluster has under
kubeadm's names, and their re-issue from the CAs kept in the state directory.

A renewal is a record in the state directory (``renewal.json``), written before the first
leaf is re-issued and removed only when every host runs the renewed files; each new pair is
first written whole beside it (``renewal/<leaf>.crt|.key``) and then copied over the stored
leaf. So a renewal killed at any point resumes where it stopped: a leaf whose staged pair
exists is not issued again, and a stored pair is never left half new.

The compile reuses a stored leaf as long as :func:`pki_store.reissue_reason` finds nothing
wrong with it, and a freshly issued leaf has its whole lifetime ahead, so the next ``apply``
sees the renewed files as the current ones and does not flip them back. A CA is never made
here (:func:`pki_store.load_cas` refuses a state without one).

The clock is always passed in.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass

from kubeforge.compiler import pki_store
from kubeforge.compiler.ir import Cluster
from kubeforge.compiler.pki import CAs, LeafSpec, aware, issue_leaf
from kubeforge.compiler.pki_specs import kubeconfig_spec, node_leaf_specs
from kubeforge.compiler.state import StateDir
from kubeforge.errors import StateError, UsageError

RECORD = "renewal.json"
STAGED = "renewal"
FORMAT = "kubeforge-renewal/1"
PKI_DIR = "/etc/kubernetes/pki"
KUBERNETES_DIR = "/etc/kubernetes"
#: The kubelet's client certificate rotates itself (``rotateCertificates``) and kubeadm
#: points kubelet.conf at it after init, so kubeadm does not renew it, and neither do we.
NOT_RENEWED = {"kubelet.conf": "the kubelet rotates its own client certificate "
                               "(rotateCertificates); kubelet.conf points at it"}


@dataclass(frozen=True)
class Leaf:
    """One stored leaf and the host files that carry it."""

    name: str  # kubeadm's name: apiserver, etcd-server, admin.conf, ...
    node: str | None  # the node it belongs to; None for one shared by several nodes
    state_rel: str  # in the state directory, without .crt/.key
    spec: LeafSpec
    host_files: tuple[tuple[str, str], ...]  # (node, absolute path)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.node}" if self.node else self.name


def leaves(cluster: Cluster) -> tuple[Leaf, ...]:
    """Every leaf kubeforge keeps for ``cluster`` that `certs renew` can re-issue, in the
    layout of compiler.emit.pki and compiler.emit.kubeconfig."""
    out: list[Leaf] = []
    for node in cluster.nodes:
        for spec in node_leaf_specs(cluster, node):
            files = tuple((node.name, f"{PKI_DIR}/{spec.file}.{ext}") for ext in ("crt", "key"))
            out.append(Leaf(spec.file.replace("/", "-"), node.name,
                            f"pki/nodes/{node.name}/{spec.file}", spec, files))
        if node.is_control_plane:
            for kind in ("controller-manager", "scheduler"):
                out.append(Leaf(f"{kind}.conf", node.name, f"kubeconfigs/nodes/{node.name}/{kind}",
                                kubeconfig_spec(cluster, kind),
                                ((node.name, f"{KUBERNETES_DIR}/{kind}.conf"),)))
    cps = cluster.control_planes
    out.append(Leaf("admin.conf", None, "kubeconfigs/admin", kubeconfig_spec(cluster, "admin"),
                    tuple((n.name, f"{KUBERNETES_DIR}/admin.conf") for n in cps)))
    first = cluster.first_control_plane
    out.append(Leaf("super-admin.conf", None, "kubeconfigs/super-admin",
                    kubeconfig_spec(cluster, "super-admin"),
                    ((first.name, f"{KUBERNETES_DIR}/super-admin.conf"),) if first else ()))
    return tuple(out)


def select(cluster: Cluster, names: tuple[str, ...], everything: bool) -> tuple[Leaf, ...]:
    """The leaves ``names`` (kubeadm's names; ``NAME@node`` for one node's) or all of them."""
    known = leaves(cluster)
    if everything:
        return known
    picked: list[Leaf] = []
    for raw in names:
        name, _, node = raw.partition("@")
        found = [leaf for leaf in known if leaf.name == name and (not node or leaf.node == node)]
        if not found:
            if name in NOT_RENEWED:
                raise UsageError(f"{name} is not renewed by kubeforge: {NOT_RENEWED[name]}")
            names_known = ", ".join(sorted({leaf.name for leaf in known}))
            where = f" on node {node}" if node else ""
            raise UsageError(f"cluster {cluster.name} has no certificate {name}{where}; "
                             f"it has {names_known} (NAME@node for one node's)")
        picked += [leaf for leaf in found if leaf not in picked]
    return tuple(picked)


def expiring(state: StateDir, chosen: tuple[Leaf, ...], within: dt.timedelta,
             now: dt.datetime) -> tuple[Leaf, ...]:
    """The leaves of ``chosen`` whose stored certificate ends within ``within`` (or is
    missing: a renewal then issues it as the compile would)."""
    out = []
    for leaf in chosen:
        cert = state.read_certificate(f"{leaf.state_rel}.crt")
        if cert is None or cert.not_valid_after_utc - aware(now) <= within:
            out.append(leaf)
    return tuple(out)


@dataclass(frozen=True)
class Renewal:
    """The record of a renewal that has not reached every host yet."""

    started: dt.datetime
    leaves: tuple[str, ...]  # state_rel of each leaf being renewed

    @classmethod
    def load(cls, state: StateDir) -> "Renewal | None":
        data = state.read(RECORD)
        if data is None:
            return None
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            return cls(dt.datetime.fromisoformat(doc["started"]), tuple(doc["leaves"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{state.path(RECORD)} is not a renewal record ({exc}); move it "
                             "away to start a new renewal") from None

    def save(self, state: StateDir) -> None:
        doc = {"format": FORMAT, "started": self.started.isoformat(),
               "leaves": list(self.leaves)}
        state.write(RECORD, (json.dumps(doc, indent=1) + "\n").encode())

    def merged(self, more: tuple[Leaf, ...]) -> "Renewal":
        extra = tuple(leaf.state_rel for leaf in more if leaf.state_rel not in self.leaves)
        return Renewal(self.started, self.leaves + extra)

    @staticmethod
    def clear(state: StateDir) -> None:
        """The renewal reached every host: drop the record, then the staged pairs."""
        state.path(RECORD).unlink(missing_ok=True)
        shutil.rmtree(state.path(STAGED), ignore_errors=True)


def issue(state: StateDir, renewal: Renewal, known: tuple[Leaf, ...], cas: CAs,
          cluster: Cluster, now: dt.datetime) -> list[Leaf]:
    """Re-issue every leaf of ``renewal`` that has no staged pair yet, then make sure each
    stored pair is its staged one; the leaves issued by this call are returned."""
    by_rel = {leaf.state_rel: leaf for leaf in known}
    missing = [rel for rel in renewal.leaves if rel not in by_rel]
    if missing:
        raise StateError(f"the renewal recorded in {state.path(RECORD)} names "
                         f"{', '.join(missing)}, which the cluster no longer has; move the "
                         "record away to start a new renewal")
    issued = []
    for rel in renewal.leaves:
        leaf = by_rel[rel]
        staged = f"{STAGED}/{rel}"
        cert_pem, key_pem = state.read(f"{staged}.crt"), state.read(f"{staged}.key")
        if cert_pem is None or key_pem is None:
            cert_pem, key_pem = issue_leaf(cas.signer(leaf.spec.signer), leaf.spec,
                                           cluster.pki.cert_validity_days,
                                           cluster.pki.algorithm, now)
            # The key first: a staged certificate without its key is issued again.
            state.write(f"{staged}.key", key_pem)
            state.write(f"{staged}.crt", cert_pem)
            issued.append(leaf)
        state.write(f"{rel}.key", key_pem)
        state.write(f"{rel}.crt", cert_pem)
    return issued
