"""Emitter: the PKI in kubeadm's layout (``/etc/kubernetes/pki``) on the nodes that need it.

Strategy B of reference section 4.5 (full PKI): every control plane gets the shared CA and
service-account material plus its own leaves, so ``kubeadm init``/``join --control-plane``
adopt existing files and need no ``--upload-certs``. With external etcd the etcd members get
the etcd CA certificate (not its key) and their own etcd leaves. Workers get nothing:
kubeadm's worker join preflight refuses a pre-placed ``pki/ca.crt``; they discover the CA
through ``cluster-info`` pinned by ``ca_cert_hash`` and obtain their kubelet certificate by
TLS bootstrap.

Later emitters read :class:`PkiBundle` from ``ctx.shared["pki"]``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kubeforge.compiler import pki, pki_specs, pki_store
from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.state import StateDir
from kubeforge.dsl.diagnostics import NO_SPAN, Diagnostic

PKI_DIR = "/etc/kubernetes/pki"


@dataclass(frozen=True)
class PkiFile:
    node: str
    name: str  # relative to /etc/kubernetes/pki: "ca.crt", "etcd/server.key"
    content: bytes
    secret: bool

    @property
    def host_path(self) -> str:
        return f"{PKI_DIR}/{self.name}"


@dataclass(frozen=True)
class PkiBundle:
    """What the PKI emitter made, for the emitters after it."""

    cas: pki.CAs
    service_account: pki.ServiceAccountKey
    ca_cert_hash: str  # sha256:<hex>, for caCertHashes / --discovery-token-ca-cert-hash
    apiserver_cert_sans: tuple[str, ...]  # what apiServer.certSANs must list
    files: tuple[PkiFile, ...]
    reissued: tuple[tuple[str, str], ...]  # (state path, reason) issued during this compile
    state: StateDir

    def files_for(self, node: str) -> tuple[PkiFile, ...]:
        return tuple(f for f in self.files if f.node == node)

    def __getitem__(self, key: str):
        # Emitters written against a dict-shaped bundle (``shared["pki"]["ca_cert_hash"]``)
        # keep working; attribute access is the documented form.
        return getattr(self, key)


def _shared_files(cluster: Cluster, cas: pki.CAs, sa: pki.ServiceAccountKey):
    """(name, content, secret) of the material every control plane must hold identically."""
    files = [("ca.crt", cas.ca.cert_pem, False), ("ca.key", cas.ca.key_pem, True),
             ("front-proxy-ca.crt", cas.front_proxy.cert_pem, False),
             ("front-proxy-ca.key", cas.front_proxy.key_pem, True),
             ("sa.key", sa.key_pem, True), ("sa.pub", sa.pub_pem, False),
             ("etcd/ca.crt", cas.etcd.cert_pem, False)]
    if cluster.etcd == "stacked":
        # Only stacked etcd needs the etcd CA key on control planes (kubeadm signs etcd
        # leaves there on renew); an external etcd CA key stays in the state directory.
        files.append(("etcd/ca.key", cas.etcd.key_pem, True))
    return files


def _node_files(cluster: Cluster, node: ClusterNode, cas: pki.CAs, sa: pki.ServiceAccountKey,
                state: StateDir, now: dt.datetime, reissued: list,
                etcd_members: frozenset[str]) -> list[PkiFile]:
    wanted: dict[str, tuple[bytes, bool]] = {}
    if node.is_control_plane:
        for name, content, secret in _shared_files(cluster, cas, sa):
            wanted[name] = (content, secret)
    elif node.name in etcd_members:
        wanted["etcd/ca.crt"] = (cas.etcd.cert_pem, False)
    for spec in pki_specs.node_leaf_specs(cluster, node):
        rel = f"pki/nodes/{node.name}/{spec.file}"
        leaf = pki_store.ensure_leaf(state, rel, spec, cas.signer(spec.signer),
                                     cluster.pki.algorithm, cluster.pki.cert_validity_days, now)
        if leaf.reissued:
            reissued.append((rel, leaf.reissued))
        wanted[f"{spec.file}.crt"] = (leaf.cert_pem, False)
        wanted[f"{spec.file}.key"] = (leaf.key_pem, True)
    return [PkiFile(node.name, name, content, secret)
            for name, (content, secret) in sorted(wanted.items())]


def build_pki(cluster: Cluster, state: StateDir, now: dt.datetime) -> PkiBundle:
    cas = pki_store.ensure_cas(cluster, state, now)
    sa = pki_store.ensure_service_account_key(cluster, state)
    reissued: list[tuple[str, str]] = []
    # By name, once: `node in cluster.etcd_nodes` per node compared every node with every one.
    etcd_members = frozenset(n.name for n in cluster.etcd_nodes)
    files = [f for node in cluster.nodes
             for f in _node_files(cluster, node, cas, sa, state, now, reissued, etcd_members)]
    return PkiBundle(cas, sa, pki.ca_cert_hash(cas.ca.cert),
                     pki_specs.apiserver_extra_sans(cluster), tuple(files), tuple(reissued), state)


def algorithm_warnings(cluster: Cluster, cas: pki.CAs, state: StateDir) -> list[Diagnostic]:
    """The CAs already made keep their key type when `pki { algorithm }` changes, as kubeadm
    keeps an existing CA (a new one would orphan every deployed node); say so, and how."""
    kept = [ca.name for ca in (cas.ca, cas.front_proxy, cas.etcd)
            if not pki.key_matches_algorithm(ca.cert.public_key(), cluster.pki.algorithm)]
    if not kept:
        return []
    span = cluster.pki.span if cluster.pki.span != NO_SPAN else cluster.span
    old = pki.key_algorithm(cas.ca.cert.public_key())
    files = ", ".join(f"{state.path(f'pki/{name}.crt')}" for name in kept)
    return [Diagnostic(
        "W108", f"the CAs were made with {old}; they are kept and only new leaf certificates "
                f"use {cluster.pki.algorithm}", span,
        f"to rotate the CAs of a deployed cluster follow kubeadm's manual CA rotation "
        f"(kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates); for a cluster not "
        f"deployed yet, delete {files} (and their .key files) and compile again", "warning")]


def emit(ctx: BuildContext) -> list[Artifact]:
    state = StateDir(ctx.state_dir)
    bundle = build_pki(ctx.cluster, state, ctx.now)
    ctx.warnings.extend(algorithm_warnings(ctx.cluster, bundle.cas, state))
    ctx.shared["pki"] = bundle
    ctx.shared.setdefault("state", state)
    artifacts = [node_file(f.node, f.host_path, f.content,
                           mode=0o600 if f.secret else 0o644, secret=f.secret)
                 for f in bundle.files]
    # CA certificates (never keys) at the build root, for users and `certs check-expiration`.
    artifacts += [Artifact(f"pki/{ca.name}.crt", ca.cert_pem)
                  for ca in (bundle.cas.ca, bundle.cas.front_proxy, bundle.cas.etcd)]
    return artifacts
