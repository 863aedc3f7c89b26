"""`certs renew`, the state side, from .kf source: which leaves a renewal re-issues, that a
compile afterwards keeps them (the next apply does not flip them back), that a killed renewal
resumes without issuing again, and the expiry warnings of plan/apply (clock and short
validity)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from kubeforge.compiler import pki_renew, pki_store
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.cert_scan import expiry_warnings
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.state import StateDir
from kubeforge.errors import StateError, UsageError

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(days=1)

SOURCE = """cluster lab {{
  kubernetes "1.37.2"
  endpoint "10.0.0.100:8443"
  etcd {etcd}
  loadbalancer keepalived-haproxy {{ vip 10.0.0.100  interface "eth0" }}
  pki {{ cert_validity {validity} }}
  node cp1 {{ address 10.0.0.11  role control-plane }}
  node cp2 {{ address 10.0.0.12  role control-plane }}
  node cp3 {{ address 10.0.0.13  role control-plane }}
  node w1 {{ address 10.0.0.21  role worker }}
{extra}}}
"""
EXTERNAL = """  node e1 { address 10.0.0.31  role etcd }
  node e2 { address 10.0.0.32  role etcd }
  node e3 { address 10.0.0.33  role etcd }
"""


def _source(etcd="stacked", validity="365d") -> str:
    return SOURCE.format(etcd=etcd, validity=validity, extra=EXTERNAL if etcd == "external" else "")


class Lab:
    def __init__(self, tmp_path, **kw) -> None:
        self.file = tmp_path / "lab.kf"
        self.file.write_text(_source(**kw))
        self.build_dir, self.state_dir = tmp_path / "build", tmp_path / "state"
        self.state = StateDir(self.state_dir)
        self.cluster = load_program(self.file)[0].cluster

    def compile(self, now=NOW):
        return compile_file(self.file, self.build_dir, state_dir=self.state_dir, now=now)

    def files(self) -> dict[str, bytes]:
        root = self.build_dir / "lab"
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file()}

    def state_files(self) -> dict[str, bytes]:
        return {rel: self.state.read(rel) for rel in self.state.files()}

    def renew(self, names=(), everything=False, now=LATER):
        chosen = pki_renew.select(self.cluster, names, everything)
        record = (pki_renew.Renewal.load(self.state) or pki_renew.Renewal(now, ())).merged(chosen)
        record.save(self.state)
        cas = pki_store.load_cas(self.state, now)
        return pki_renew.issue(self.state, record, pki_renew.leaves(self.cluster), cas,
                               self.cluster, now)


@pytest.fixture
def lab(tmp_path) -> Lab:
    lab = Lab(tmp_path)
    lab.compile()
    return lab


def test_the_leaves_under_kubeadms_names(lab):
    names = {leaf.label for leaf in pki_renew.leaves(lab.cluster)}
    per_cp = {"apiserver", "apiserver-kubelet-client", "front-proxy-client",
              "apiserver-etcd-client", "etcd-server", "etcd-peer", "etcd-healthcheck-client",
              "controller-manager.conf", "scheduler.conf"}
    assert names == {f"{n}@{cp}" for n in per_cp for cp in ("cp1", "cp2", "cp3")} | {
        "admin.conf", "super-admin.conf"}
    admin = pki_renew.select(lab.cluster, ("admin.conf",), False)[0]
    assert admin.host_files == tuple((cp, "/etc/kubernetes/admin.conf")
                                     for cp in ("cp1", "cp2", "cp3"))
    assert [leaf.label for leaf in pki_renew.select(lab.cluster, ("apiserver",), False)] == [
        "apiserver@cp1", "apiserver@cp2", "apiserver@cp3"]
    assert [leaf.label for leaf in pki_renew.select(lab.cluster, ("etcd-peer@cp2",), False)] == [
        "etcd-peer@cp2"]


def test_external_etcd_members_have_their_own_leaves(tmp_path):
    lab = Lab(tmp_path, etcd="external")
    labels = {leaf.label for leaf in pki_renew.leaves(lab.cluster)}
    assert {"etcd-server@e1", "etcd-peer@e3", "etcd-healthcheck-client@e2"} <= labels
    assert "etcd-server@cp1" not in labels and "apiserver-etcd-client@cp1" in labels


@pytest.mark.parametrize("name, message", [
    ("kubelet.conf", "kubelet.conf is not renewed by kubeforge: the kubelet rotates"),
    ("apiserverr", "has no certificate apiserverr; it has admin.conf, apiserver,"),
    ("apiserver@w1", "has no certificate apiserver on node w1"),
])
def test_unknown_names_are_usage_errors(lab, name, message):
    with pytest.raises(UsageError, match=message):
        pki_renew.select(lab.cluster, (name,), False)


def test_renew_reissues_exactly_the_chosen_leaf_and_the_compile_keeps_it(lab):
    build_before, state_before = lab.files(), lab.state_files()
    issued = lab.renew(("apiserver@cp1",))
    assert [leaf.label for leaf in issued] == ["apiserver@cp1"]
    old = x509.load_pem_x509_certificate(state_before["pki/nodes/cp1/apiserver.crt"])
    new = lab.state.read_certificate("pki/nodes/cp1/apiserver.crt")
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc == old.not_valid_after_utc + dt.timedelta(days=1)
    assert new.subject == old.subject and new.extensions.get_extension_for_class(
        x509.SubjectAlternativeName) == old.extensions.get_extension_for_class(
        x509.SubjectAlternativeName)
    changed = {rel for rel, data in lab.state_files().items() if state_before.get(rel) != data}
    assert changed == {"pki/nodes/cp1/apiserver.crt", "pki/nodes/cp1/apiserver.key",
                       "renewal.json", "renewal/pki/nodes/cp1/apiserver.crt",
                       "renewal/pki/nodes/cp1/apiserver.key"}

    # The next compile (as apply runs it) takes the renewed pair as the current one.
    result = lab.compile(now=LATER)
    assert not result.warnings or all("W108" != w.code for w in result.warnings)
    build_after = lab.files()
    host_cert = "nodes/cp1/etc/kubernetes/pki/apiserver.crt"
    assert build_after[host_cert] == lab.state.read("pki/nodes/cp1/apiserver.crt")
    differ = {p for p in build_after if build_before.get(p) != build_after[p]}
    assert {host_cert, "nodes/cp1/etc/kubernetes/pki/apiserver.key"} <= differ
    # Besides the pair, only what lists file digests changes (plan.json, files.json, ...).
    assert all(p.startswith(("nodes/cp1/etc/kubernetes/pki/apiserver.", "plan.", "files.json",
                             "ansible/", "verify/")) for p in differ), differ
    assert lab.files() == build_after or lab.compile(now=LATER) and lab.files() == build_after


def test_kubeconfig_leaves_renew_the_files_that_embed_them(lab):
    before = lab.files()
    lab.renew(("controller-manager.conf@cp2", "admin.conf"))
    lab.compile(now=LATER)
    after = lab.files()
    assert {p for p in after if p.endswith(".conf") and before.get(p) != after[p]} == {
        "nodes/cp2/etc/kubernetes/controller-manager.conf",
        *(f"nodes/{cp}/etc/kubernetes/admin.conf" for cp in ("cp1", "cp2", "cp3")),
        "kubeconfigs/admin.conf"}


def test_a_killed_renewal_resumes_without_issuing_again(lab):
    first = lab.renew(everything=True)
    assert len(first) == len(pki_renew.leaves(lab.cluster))
    done = lab.state_files()
    # Run again (the same command after a kill): nothing is issued, nothing changes.
    assert lab.renew(everything=True, now=LATER + dt.timedelta(hours=1)) == []
    assert lab.state_files() == done
    # Killed after staging but before the stored pair was replaced: the staged pair goes in.
    staged_cert = lab.state.read("renewal/pki/nodes/cp2/etcd/peer.crt")
    lab.state.write("pki/nodes/cp2/etcd/peer.crt", b"")
    lab.state.path("pki/nodes/cp2/etcd/peer.crt").unlink()
    assert lab.renew(everything=True) == []
    assert lab.state.read("pki/nodes/cp2/etcd/peer.crt") == staged_cert
    # Killed between the staged key and the staged certificate: that leaf is issued anew.
    lab.state.path("renewal/pki/nodes/cp2/scheduler.crt").unlink(missing_ok=True)
    lab.state.path("renewal/kubeconfigs/nodes/cp2/scheduler.crt").unlink()
    assert [leaf.label for leaf in lab.renew(everything=True)] == ["scheduler.conf@cp2"]
    # Done on every host: the record goes, and the next renewal starts afresh.
    pki_renew.Renewal.clear(lab.state)
    assert not lab.state.exists("renewal.json") and not lab.state.path("renewal").exists()
    assert pki_renew.Renewal.load(lab.state) is None


def test_a_renewal_never_makes_a_ca(lab):
    cas = {rel: lab.state.read(rel) for rel in lab.state.files() if rel.endswith("ca.crt")}
    lab.renew(everything=True)
    assert {rel: lab.state.read(rel) for rel in cas} == cas
    lab.state.path("pki/front-proxy-ca.crt").unlink()
    lab.state.path("pki/front-proxy-ca.key").unlink()
    with pytest.raises(StateError, match="no CA front-proxy-ca"):
        pki_store.load_cas(lab.state, NOW)


def test_expiring_within_picks_only_leaves_that_end_soon(lab):
    every = pki_renew.select(lab.cluster, (), True)
    assert pki_renew.expiring(lab.state, every, dt.timedelta(days=30), NOW) == ()
    soon = NOW + dt.timedelta(days=340)
    assert pki_renew.expiring(lab.state, every, dt.timedelta(days=30), soon) == every


def test_plan_warns_of_certificates_ending_within_30_days(lab):
    root = lab.build_dir / "lab"
    assert expiry_warnings(root, NOW) == []
    late = expiry_warnings(root, NOW + dt.timedelta(days=340))
    assert len(late) == 1 and late[0].startswith("30 certificate(s) end within 30 days: ")
    assert "kubeforge certs renew FILE -i INV --all" in late[0] and "and 25 more" in late[0]
    cas = expiry_warnings(root, NOW + dt.timedelta(days=3640))
    assert any(w.startswith("3 CA certificate(s) end within 30 days") for w in cas)


def test_short_validity_is_a_plan_warning(tmp_path):
    lab = Lab(tmp_path, validity="20d")
    lab.compile()
    (warning,) = expiry_warnings(lab.build_dir / "lab", NOW)
    assert "certificate(s) end within 30 days" in warning
    assert f"{(NOW + dt.timedelta(days=20)):%Y-%m-%d}" in warning
    assert "PRIVATE KEY" not in warning
