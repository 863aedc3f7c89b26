"""The state directory: permissions, the bootstrap token, and refusing to guess when key
material is damaged (a CA is never regenerated)."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509

from kubeforge.compiler import pki, pki_store
from kubeforge.compiler.state import BOOTSTRAP_TOKEN_RE, StateDir
from kubeforge.errors import StateError
from pki_helpers import NOW, build, make_cluster


def _fake_pem(kind: str, body: str) -> bytes:
    """A PEM block that only looks like a private key (built here so no file in the
    repository carries a private-key header)."""
    label = " ".join(filter(None, (kind, "PRIVATE", "KEY")))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_and_files_are_private(built):
    assert mode(built.state) == 0o700
    for path in built.state.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    keys = list(built.state.rglob("*.key"))
    assert len(keys) > 20


def test_private_keys_only_on_control_planes_and_in_state(built):
    for art in built.ctx.artifacts:
        if art.path.endswith(".key") or b"PRIVATE KEY" in art.content:
            assert art.path.startswith("nodes/cp") and art.secret and art.mode == 0o600, art.path
            assert mode(built.root / art.path) == 0o600
    root_pki = {p.relative_to(built.root).as_posix() for p in (built.root / "pki").rglob("*")
                if p.is_file()}
    assert root_pki == {"pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt"}


def test_workers_get_nothing_under_pki(built):
    assert not (built.root / "nodes/w1").exists()
    assert built.bundle.files_for("w1") == ()


def test_certificates_are_0644_on_nodes(built):
    for art in built.ctx.artifacts:
        if art.path.endswith(".crt") or art.path.endswith("sa.pub"):
            assert art.mode == 0o644 and not art.secret


def test_bootstrap_token_made_once(tmp_path):
    state = StateDir(tmp_path / "s")
    token = state.bootstrap_token()
    assert BOOTSTRAP_TOKEN_RE.match(token)
    assert StateDir(tmp_path / "s").bootstrap_token() == token
    assert mode(tmp_path / "s" / "bootstrap-token") == 0o600
    assert mode(tmp_path / "s") == 0o700


def test_bootstrap_tokens_differ_between_clusters(tmp_path):
    assert StateDir(tmp_path / "a").bootstrap_token() != StateDir(tmp_path / "b").bootstrap_token()


def test_corrupt_bootstrap_token_is_an_error(tmp_path):
    state = StateDir(tmp_path)
    (tmp_path / "bootstrap-token").write_text("ABCDEF.0123456789abcdef\n")
    with pytest.raises(StateError, match="bootstrap token"):
        state.bootstrap_token()


def test_load_cluster_ca_requires_one(tmp_path):
    with pytest.raises(StateError, match="no cluster CA"):
        pki_store.load_cluster_ca(StateDir(tmp_path))


def test_load_cluster_ca_returns_the_stored_ca(built):
    ca = pki_store.load_cluster_ca(StateDir(built.state))
    assert ca.cert_pem == built.read("pki/ca.crt")
    assert ca.cert == x509.load_pem_x509_certificate(ca.cert_pem)


@pytest.mark.parametrize("damage,message", [
    ("corrupt-key", "not an unencrypted PEM private key"),
    ("corrupt-cert", "not a PEM certificate"),
    ("missing-key", "kubeforge never regenerates a CA"),
    ("missing-cert", "kubeforge never regenerates a CA"),
    ("mismatched-key", "mismatched key"),
])
@pytest.mark.parametrize("ca", ["ca", "front-proxy-ca", "etcd/ca"])
def test_damaged_ca_raises_and_is_left_alone(tmp_path, ca, damage, message):
    cluster = make_cluster()
    built = build(cluster, tmp_path)
    cert, key = built.state / f"pki/{ca}.crt", built.state / f"pki/{ca}.key"
    if damage == "corrupt-key":
        key.write_bytes(_fake_pem("EC", "not a key"))
    elif damage == "corrupt-cert":
        cert.write_bytes(b"garbage")
    elif damage == "missing-key":
        key.unlink()
    elif damage == "missing-cert":
        cert.unlink()
    else:  # a valid key of the right type, just not this CA's
        key.write_bytes(pki.private_key_pem(pki.generate_key("ecdsa-p256")))
    before = {p: p.read_bytes() for p in (cert, key) if p.exists()}
    with pytest.raises(StateError, match=message):
        pki_store.ensure_cas(cluster, StateDir(built.state), NOW)
    with pytest.raises(StateError):
        build(cluster, tmp_path)
    assert {p: p.read_bytes() for p in (cert, key) if p.exists()} == before


def test_error_messages_never_contain_key_material(tmp_path):
    built = build(make_cluster(), tmp_path)
    key = built.state / "pki/ca.key"
    secret_body = key.read_bytes().splitlines()[1]
    key.write_bytes(key.read_bytes()[:-40])  # truncated: corrupt
    with pytest.raises(StateError) as err:
        pki_store.ensure_cas(make_cluster(), StateDir(built.state), NOW)
    assert secret_body.decode() not in str(err.value)


def test_a_certificate_that_is_not_a_ca_is_refused(tmp_path):
    cluster = make_cluster()
    built = build(cluster, tmp_path)
    # Put a leaf and its key where the front-proxy CA belongs.
    leaf = built.state / "pki/nodes/cp1/front-proxy-client"
    (built.state / "pki/front-proxy-ca.crt").write_bytes(leaf.with_suffix(".crt").read_bytes())
    (built.state / "pki/front-proxy-ca.key").write_bytes(leaf.with_suffix(".key").read_bytes())
    with pytest.raises(StateError, match="is not the front-proxy-ca CA"):
        pki_store.ensure_cas(cluster, StateDir(built.state), NOW)


def test_expired_ca_is_an_error_not_a_regeneration(tmp_path):
    import datetime as dt
    cluster = make_cluster()
    build(cluster, tmp_path)
    with pytest.raises(StateError, match="expired"):
        pki_store.ensure_cas(cluster, StateDir(tmp_path / "state"), NOW + dt.timedelta(days=3651))


def test_service_account_pair_mismatch(tmp_path):
    cluster = make_cluster()
    built = build(cluster, tmp_path)
    other = pki.generate_key("ecdsa-p256")
    (built.state / "pki/sa.pub").write_bytes(pki.public_key_pem(other.public_key()))
    with pytest.raises(StateError, match="sa.pub does not match"):
        build(cluster, tmp_path)
    (built.state / "pki/sa.key").unlink()
    with pytest.raises(StateError, match="without sa.key"):
        build(cluster, tmp_path)


def test_mismatched_leaf_key_is_an_error(tmp_path):
    cluster = make_cluster()
    built = build(cluster, tmp_path)
    (built.state / "pki/nodes/cp2/apiserver.key").write_bytes(
        pki.private_key_pem(pki.generate_key("ecdsa-p256")))
    with pytest.raises(StateError, match="mismatched key"):
        build(cluster, tmp_path)


def test_missing_leaf_is_simply_issued_again(tmp_path):
    cluster = make_cluster()
    built = build(cluster, tmp_path)
    (built.state / "pki/nodes/cp2/apiserver.key").unlink()
    again = build(cluster, tmp_path)
    assert again.bundle.reissued == (("pki/nodes/cp2/apiserver", "new"),)


def test_a_loose_state_dir_is_tightened_on_write(tmp_path):
    root = tmp_path / "loose"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    StateDir(root).write("pki/nodes/cp1/x.key", b"k")
    assert mode(root) == mode(root / "pki") == mode(root / "pki/nodes/cp1") == 0o700
    assert mode(root / "pki/nodes/cp1/x.key") == 0o600
