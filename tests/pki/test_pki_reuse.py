"""Reuse: recompiling is byte-identical; a leaf is re-issued only when its content or its
remaining validity requires it; the CAs are never re-made."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from kubeforge.compiler import pki, pki_specs, pki_store
from pki_helpers import NOW, build, make_cluster, node, state_files

CA_STATE = ("pki/ca.crt", "pki/ca.key", "pki/front-proxy-ca.crt", "pki/front-proxy-ca.key",
            "pki/etcd/ca.crt", "pki/etcd/ca.key", "pki/sa.key", "pki/sa.pub")


def changed(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    """Files that existed before and differ now (new files are not "changed")."""
    assert set(before) <= set(after)
    return {p for p in before if before[p] != after[p]}


def test_recompile_is_byte_identical(tmp_path):
    cluster = make_cluster()
    first = build(cluster, tmp_path)
    out1, state1 = first.files(), state_files(first.state)
    second = build(cluster, tmp_path, NOW + dt.timedelta(days=30))
    assert second.files() == out1  # files.json included
    assert state_files(second.state) == state1
    assert second.bundle.reissued == ()
    assert second.bundle.ca_cert_hash == first.bundle.ca_cert_hash


def test_recompile_into_a_fresh_build_dir_reuses_the_state(tmp_path):
    cluster = make_cluster()
    first = build(cluster, tmp_path)
    import shutil
    shutil.rmtree(tmp_path / "build")
    assert build(cluster, tmp_path).files() == first.files()


def test_changing_a_node_address_reissues_exactly_its_address_bearing_certs(tmp_path):
    cluster = make_cluster()
    first = build(cluster, tmp_path)
    before, state_before = first.files(), state_files(first.state)
    moved = tuple(node("cp2", "10.0.0.42", "control-plane") if n.name == "cp2" else n
                  for n in cluster.nodes)
    second = build(dataclasses.replace(cluster, nodes=moved), tmp_path)
    assert sorted(second.bundle.reissued) == [
        ("pki/nodes/cp2/apiserver", "SANs changed"),
        ("pki/nodes/cp2/etcd/peer", "SANs changed"),
        ("pki/nodes/cp2/etcd/server", "SANs changed"),
    ]
    assert changed(state_before, state_files(second.state)) == {
        f"pki/nodes/cp2/{leaf}.{ext}" for leaf in ("apiserver", "etcd/peer", "etcd/server")
        for ext in ("crt", "key")}
    pki_dir = "nodes/cp2/etc/kubernetes"
    assert changed(before, second.files()) == {
        f"{pki_dir}/pki/{leaf}.{ext}" for leaf in ("apiserver", "etcd/peer", "etcd/server")
        for ext in ("crt", "key")
    } | {
        # the URLs of the node's own apiserver, not their certificates, and the index
        f"{pki_dir}/controller-manager.conf", f"{pki_dir}/scheduler.conf", "files.json"}


def test_changing_extra_sans_reissues_only_apiserver_certs(tmp_path):
    cluster = make_cluster()
    first = build(cluster, tmp_path)
    state_before = state_files(first.state)
    settings = dataclasses.replace(cluster.pki, extra_sans=("lb.example.com",))
    second = build(dataclasses.replace(cluster, pki=settings), tmp_path)
    assert changed(state_before, state_files(second.state)) == {
        f"pki/nodes/{cp}/apiserver.{ext}" for cp in ("cp1", "cp2", "cp3")
        for ext in ("crt", "key")}


def test_patch_upgrade_to_the_kubelet_api_admin_binding_reissues_only_that_cert(tmp_path):
    # kubeadm 1.35.5 drops O=kubeadm:cluster-admins from apiserver-kubelet-client.
    first = build(make_cluster("1.35.4"), tmp_path)
    state_before = state_files(first.state)
    second = build(make_cluster("1.35.5"), tmp_path)
    reissued = {p for p in changed(state_before, state_files(second.state)) if p.endswith(".crt")}
    assert reissued == {f"pki/nodes/{cp}/apiserver-kubelet-client.crt"
                        for cp in ("cp1", "cp2", "cp3")}
    assert all(reason == "subject changed" for _, reason in second.bundle.reissued)
    assert set(state_files(second.state)) == set(state_before)


def test_ca_is_never_remade(tmp_path):
    cluster = make_cluster()
    first = build(cluster, tmp_path)
    cas = {p: (first.state / p).read_bytes() for p in CA_STATE}
    rsa = dataclasses.replace(cluster, pki=dataclasses.replace(cluster.pki, algorithm="rsa-2048"))
    second = build(rsa, tmp_path, NOW + dt.timedelta(days=400))
    assert {p: (second.state / p).read_bytes() for p in CA_STATE} == cas
    # ... while every leaf moved to the new algorithm.
    assert len(second.bundle.reissued) == 3 * 7
    assert all(r == "key algorithm changed" for _, r in second.bundle.reissued)


@pytest.mark.parametrize("days,reissued", [
    (0, False), (200, False), (243, False),  # more than a third of 365 days left
    (244, True), (340, True), (400, True),   # less than a third left, or expired
    (-1, True),                              # clock moved back before notBefore
])
def test_reissue_by_remaining_validity(tmp_path, days, reissued):
    cluster = make_cluster()
    build(cluster, tmp_path)
    later = build(cluster, tmp_path, NOW + dt.timedelta(days=days))
    assert bool(later.bundle.reissued) is reissued
    if reissued:
        assert len(later.bundle.reissued) == 3 * 7


def test_shortening_cert_validity_reissues(tmp_path):
    cluster = make_cluster()
    build(cluster, tmp_path)
    shorter = dataclasses.replace(cluster.pki, cert_validity_days=90)
    again = build(dataclasses.replace(cluster, pki=shorter), tmp_path)
    assert {r for _, r in again.bundle.reissued} == {"lifetime longer than cert_validity_days"}
    longer = dataclasses.replace(cluster.pki, cert_validity_days=730)
    assert build(dataclasses.replace(cluster, pki=longer), tmp_path).bundle.reissued == ()


def test_reissue_reason_rules(built):
    from kubeforge.compiler.state import StateDir
    from cryptography import x509
    state = StateDir(built.state)
    cas = pki_store.ensure_cas(built.ctx.cluster, state, NOW)
    spec = pki_specs.node_leaf_specs(built.ctx.cluster, built.ctx.cluster.nodes[0])[0]
    cert = x509.load_pem_x509_certificate(state.read("pki/nodes/cp1/apiserver.crt"))
    assert pki_store.reissue_reason(cert, spec, cas.ca, "ecdsa-p256", 365, NOW) is None
    assert pki_store.reissue_reason(cert, spec, cas.front_proxy, "ecdsa-p256", 365, NOW) == \
        "not signed by the current CA"
    renamed = dataclasses.replace(spec, common_name="other")
    assert pki_store.reissue_reason(cert, renamed, cas.ca, "ecdsa-p256", 365, NOW) == \
        "subject changed"
    client = dataclasses.replace(spec, client_auth=True)
    assert pki_store.reissue_reason(cert, client, cas.ca, "ecdsa-p256", 365, NOW) == \
        "extended key usages changed"


def test_issue_client_cert_is_stateless(built):
    from kubeforge.compiler.state import StateDir
    before = state_files(built.state)
    ca = pki_store.load_cluster_ca(StateDir(built.state))
    one = pki.issue_client_cert(ca, "alice", ("dev", "ops"), 30, "ecdsa-p256", NOW)
    two = pki.issue_client_cert(ca, "alice", ("dev", "ops"), 30, "ecdsa-p256", NOW)
    assert one != two  # fresh key and serial each time; callers store what they keep
    assert state_files(built.state) == before
