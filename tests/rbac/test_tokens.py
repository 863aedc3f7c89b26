"""`token NAME { ttl ... }` from source text: the lowering's checks, the bootstrap-token
Secret the compile writes (and keeps out of plan.json, plan.txt and files.json), the state
directory, `rbac can-i`/`matrix`/`who-can` for the token's identity, and `kubeconfig token`.
The real authenticator and authorizer judge the same token in
tests/k8s/ha/test_day2_tokens.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kubeforge.cli import main
from kubeforge.compiler import tokens
from kubeforge.compiler.build import compile_file
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.rbac import Request
from kubeforge.compiler.rbac_compile import authorizer_for, identity_of
from kubeforge.compiler.rbac_matrix import program_matrix
from kubeforge.dsl.diagnostics import DiagnosticError
from kubeforge.dsl.formatter import format_source
from kubeforge.targets.redact import redact

NOW = dt.datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=dt.timezone.utc)
CLUSTER = """cluster lab {
  kubernetes "1.37.2"
  endpoint "10.0.0.100:8443"
  loadbalancer keepalived-haproxy { vip 10.0.0.100  interface "eth0"  port 8443 }
  node cp1 { address 10.0.0.11  role control-plane worker }
}
namespace shop {}
namespace back {}
"""
TOKENS = """
token ci {
  ttl 24h
  description "CI pipeline"
  groups system:bootstrappers:readers
  bind edit in shop
}
group system:bootstrappers:readers { bind view in back }
"""
CI_ID = tokens.token_id("ci")
CI_USER = f"system:bootstrap:{CI_ID}"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(tmp_path: Path, extra: str = TOKENS) -> Path:
    file = tmp_path / "lab.kf"
    file.write_text(CLUSTER + extra)
    return file


def build(tmp_path: Path, now: dt.datetime = NOW, extra: str = TOKENS):
    return compile_file(write(tmp_path, extra), tmp_path / "build",
                        state_dir=tmp_path / "state", now=now)


def secret_data(root: Path) -> dict:
    (doc,) = list(yaml.safe_load_all((root / "manifests/02-bootstrap-tokens.yaml").read_text()))
    return doc, {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}


def errors(tmp_path: Path, extra: str) -> list[tuple[str, str, str]]:
    with pytest.raises(DiagnosticError) as info:
        load_program(write(tmp_path, extra))
    return [(d.code, d.message, d.hint or "") for d in info.value.diagnostics]


# ---------------------------------------------------------------- the compile


def test_the_secret_is_a_bootstrap_token_with_the_declared_expiration(tmp_path):
    result = build(tmp_path)
    doc, data = secret_data(result.root)
    assert doc["type"] == "bootstrap.kubernetes.io/token"
    assert doc["metadata"]["namespace"] == "kube-system"
    assert doc["metadata"]["name"] == f"bootstrap-token-{CI_ID}"
    kept = json.loads((tmp_path / "state/tokens/ci").read_text())
    token_id, _, secret = kept["token"].partition(".")
    assert token_id == CI_ID and len(secret) == 16 and secret.isalnum() and secret.islower()
    assert data == {
        "token-id": CI_ID, "token-secret": secret, "description": "CI pipeline",
        "expiration": "2026-03-02T12:00:05Z",  # issued (to the second) + 24h
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeforge:ci,system:bootstrappers:readers",
    }
    assert "usage-bootstrap-signing" not in data  # it signs no cluster-info


def test_the_token_stays_out_of_every_readable_file(tmp_path):
    result = build(tmp_path)
    secret = json.loads((tmp_path / "state/tokens/ci").read_text())["token"].split(".")[1]
    manifest = result.root / "manifests/02-bootstrap-tokens.yaml"
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state/tokens/ci").stat().st_mode) == 0o600
    encoded = base64.b64encode(secret.encode()).decode()
    readable = [p for p in result.root.rglob("*") if p.is_file() and p.stat().st_mode & 0o044]
    assert readable and (result.root / "plan.json") in readable
    for path in readable:
        text = path.read_text(errors="replace")
        assert secret not in text and encoded not in text, path
    files = json.loads((result.root / "files.json").read_text())
    entry = files["files"]["manifests/02-bootstrap-tokens.yaml"] if "files" in files else \
        files["manifests/02-bootstrap-tokens.yaml"]
    assert entry["secret"] is True and entry["mode"] == "0600"
    plan = (result.root / "plan.txt").read_text()
    assert "apply-02-bootstrap-tokens.yaml" in plan and "apply-01-rbac.yaml" in plan


def test_recompiling_keeps_the_token_and_an_expired_one_is_issued_anew(tmp_path):
    first = build(tmp_path)
    before = (first.root / "manifests/02-bootstrap-tokens.yaml").read_bytes()
    again = build(tmp_path, NOW + dt.timedelta(hours=23))
    assert (again.root / "manifests/02-bootstrap-tokens.yaml").read_bytes() == before
    assert not [w for w in again.warnings if w.code == "W302"]
    later = build(tmp_path, NOW + dt.timedelta(hours=25))
    old = yaml.safe_load(before)
    _, new = secret_data(later.root)
    assert new["token-id"] == CI_ID and new["expiration"] == "2026-03-03T13:00:05Z"
    assert new["token-secret"] != base64.b64decode(old["data"]["token-secret"]).decode()
    (warning,) = [w for w in later.warnings if w.code == "W302"]
    assert "token `ci` expired at 2026-03-02T12:00:05Z" in warning.message
    assert warning.span.line == CLUSTER.count("\n") + 2  # the token statement


def test_a_changed_ttl_moves_the_expiration_of_the_same_token(tmp_path):
    first = build(tmp_path)
    _, data = secret_data(first.root)
    shorter = build(tmp_path, NOW + dt.timedelta(minutes=5), TOKENS.replace("ttl 24h", "ttl 2h"))
    _, now = secret_data(shorter.root)
    assert now["token-secret"] == data["token-secret"]
    assert now["expiration"] == "2026-03-01T14:00:05Z"


def test_a_file_without_tokens_writes_no_token_manifest(tmp_path):
    result = build(tmp_path, extra="")
    assert not (result.root / "manifests/02-bootstrap-tokens.yaml").exists()
    assert not (tmp_path / "state/tokens").exists()


def test_a_corrupt_kept_token_stops_the_compile(tmp_path):
    build(tmp_path)
    (tmp_path / "state/tokens/ci").write_text('{"token": "abcdef.0123456789abcdef", '
                                              '"issued": "2026-03-01T12:00:05Z"}\n')
    with pytest.raises(Exception, match="does not hold token `ci`"):
        build(tmp_path)


def test_the_token_group_is_bound_in_the_rbac_manifest(tmp_path):
    result = build(tmp_path)
    docs = list(yaml.safe_load_all((result.root / "manifests/01-rbac.yaml").read_text()))
    (binding,) = [d for d in docs if d["metadata"]["name"] == "kubeforge:token:ci:edit"]
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "shop"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:bootstrappers:kubeforge:ci"}]


# ---------------------------------------------------------------- the language


@pytest.mark.parametrize("extra, expected", [
    ("token ci { bind view }", ("E115", "token `ci` needs a `ttl`", "authenticate forever")),
    ("token ci { ttl 30s }", ("E106", "shorter than a minute", "")),
    ("token ci { ttl 5x }", ("E106", "`5x` is not a duration", "")),
    ("token ci { ttl 1h  groups readers }",
     ("E105", "a token's group must be `system:bootstrappers:...`, not `readers`",
      "write `system:bootstrappers:readers`")),
    ("token ci { ttl 1h  groups system:bootstrappers }",
     ("E105", "not `system:bootstrappers`", "write `system:bootstrappers:NAME`")),
    ("token ci { ttl 1h  groups \"system:Ops_Team\" }",
     ("E105", "not `system:Ops_Team`", "write `system:bootstrappers:ops-team`")),
    ("token ci { ttl 1h  groups system:bootstrappers:kubeadm:default-node-token }",
     ("E105", "is kubeadm's join-token group", "")),
    ("token CI_bot { ttl 1h }", ("E103", "token name `CI_bot` is not a valid DNS-1123 label", "")),
    ("token ci { ttl 1h  cert_validity 30d }", ("E116", "only users get client certificates", "")),
    ("token ci { ttl 1h  ttl 2h }", ("E101", "`ttl` is given twice", "")),
    ("user ana { ttl 1h }", ("E116", "only tokens have a `ttl`", "token NAME { ttl 24h")),
    ("group ops { description \"x\" }", ("E116", "only tokens have a `description`", "")),
    ("token ci { ttl 1h }\ntoken ci { ttl 2h }", ("E100", "token `ci` is declared twice", "")),
    ("token t14091 { ttl 1h }\ntoken t33296 { ttl 1h }",  # a real collision of derived ids
     ("E100", "tokens `t14091` and `t33296` get the same token id 12f4np", "rename")),
    ("token ci { ttl 1h  bind edit in nowhere }", ("E102", "unknown namespace `nowhere`", "")),
])
def test_checks(tmp_path, extra, expected):
    code, message, hint = expected
    found = errors(tmp_path, extra)
    assert any(c == code and message in m and hint in h for c, m, h in found), found


def test_a_token_inside_a_namespace_is_a_syntax_error(tmp_path):
    found = errors(tmp_path, "namespace x { token ci { ttl 1h } }")
    assert found[0][0] == "E001" and "`token` is not a statement of this block" in found[0][1]


def test_formatter_lays_a_token_out_canonically():
    ugly = 'token ci{ttl 24h description "CI"\ngroups system:bootstrappers:ro bind view in shop\n' \
           'bind edit in back}'
    pretty = format_source(ugly)
    assert pretty == ("token ci {\n"
                      "  ttl 24h\n"
                      '  description "CI"\n'
                      "  groups system:bootstrappers:ro\n"
                      "  bind view in shop\n"
                      "  bind edit in back\n"
                      "}\n")
    assert format_source(pretty) == pretty
    assert format_source("token ci { ttl 1h  bind view }\n") == "token ci { ttl 1h  bind view }\n"


# ---------------------------------------------------------------- who the token is


def test_identity_is_what_the_bootstrap_authenticator_reports(tmp_path):
    program, _ = load_program(write(tmp_path))
    (token,) = [s for s in program.subjects if s.kind == "Token"]
    who = identity_of(token)
    assert who.name == CI_USER and CI_ID == tokens.token_id("ci")  # stable: from the name
    assert who.groups == ("system:bootstrappers", "system:bootstrappers:kubeforge:ci",
                          "system:bootstrappers:readers", "system:authenticated")


@pytest.mark.parametrize("args, allowed", [
    (("create", "deployments", "-n", "shop"), True),  # edit through its own group
    (("get", "secrets", "-n", "shop"), True),
    (("create", "rolebindings", "-n", "shop"), False),  # edit is not admin
    (("get", "pods", "-n", "back"), True),  # view through the declared extra group
    (("delete", "pods", "-n", "back"), False),
    (("get", "pods", "-n", "default"), False),
    (("list", "nodes"), False),
])
def test_can_i_as_the_tokens_user_brings_its_groups(tmp_path, args, allowed):
    result = cli("rbac", "can-i", write(tmp_path), "--as", CI_USER, *args)
    assert result.exit_code == (0 if allowed else 1), result.output
    assert result.output.startswith("yes" if allowed else "no")


def test_matrix_and_who_can_know_the_token(tmp_path):
    program, _ = load_program(write(tmp_path))
    matrix = program_matrix(program)
    assert matrix["scopes"]["shop"]["token ci"]["deployments"] == [
        "get", "list", "watch", "create", "update", "patch", "delete"]
    assert matrix["scopes"]["back"]["token ci"]["pods"] == ["get", "list", "watch"]
    assert matrix["scopes"]["*"]["token ci"]["pods"] == []
    result = cli("rbac", "who-can", write(tmp_path), "create", "deployments", "-n", "shop",
                 "--json")
    assert {"subject": "Group system:bootstrappers:kubeforge:ci",
            "binding": "RoleBinding kubeforge:token:ci:edit in shop",
            "role": "ClusterRole edit"} in json.loads(result.output)
    # `kubectl auth whoami` works with the token: system:basic-user binds the group every
    # authenticated identity has.
    token = next(s for s in program.subjects if s.kind == "Token")
    assert authorizer_for(program).can_i(tokens.identity(token), Request(
        "create", "selfsubjectreviews", api_group="authentication.k8s.io")).allowed


# ---------------------------------------------------------------- kubeconfig token


def test_kubeconfig_token_writes_the_kept_token_for_the_endpoint(tmp_path):
    build(tmp_path, dt.datetime.now(dt.timezone.utc))
    out = tmp_path / "out" / "ci.conf"
    result = CliRunner().invoke(main, ["kubeconfig", "token", str(tmp_path / "lab.kf"), "ci",
                                       "-o", str(out), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    bearer = json.loads((tmp_path / "state/tokens/ci").read_text())["token"]
    assert bearer not in result.stdout and bearer not in result.stderr
    assert f"user {CI_USER}" in result.stderr and "system:bootstrappers:readers" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    conf = yaml.safe_load(out.read_text())
    assert conf["users"] == [{"name": CI_USER, "user": {"token": bearer}}]
    cluster = conf["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.100:8443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == \
        (tmp_path / "build/lab/pki/ca.crt").read_bytes()
    printed = CliRunner().invoke(main, ["kubeconfig", "token", str(tmp_path / "lab.kf"), "ci",
                                        "-o", "-", "--state-dir", str(tmp_path / "state")])
    assert printed.exit_code == 0 and yaml.safe_load(printed.stdout) == conf


def test_kubeconfig_token_errors(tmp_path):
    file = write(tmp_path)
    unknown = cli("kubeconfig", "token", file, "cii", "--state-dir", tmp_path / "state")
    assert unknown.exit_code == 2 and "declares no token `cii`; did you mean `ci`" in \
        unknown.output
    other = cli("kubeconfig", "token", file, "deploy", "--state-dir", tmp_path / "state")
    assert other.exit_code == 2 and "declares no token `deploy`; it declares ci" in other.output
    none = cli("kubeconfig", "token", write(tmp_path, ""), "ci", "--state-dir", tmp_path)
    assert none.exit_code == 2 and "declare `token ci { ttl 24h" in none.output
    missing = cli("kubeconfig", "token", write(tmp_path), "ci", "--state-dir", tmp_path / "x")
    assert missing.exit_code == 1 and "no token `ci`" in missing.output
    build(tmp_path, dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2))
    expired = cli("kubeconfig", "token", file, "ci", "--state-dir", tmp_path / "state",
                  "-o", tmp_path / "x.conf")
    assert expired.exit_code == 1 and "expired at" in expired.output
    assert not (tmp_path / "x.conf").exists()


def test_redaction_covers_service_account_tokens():
    jwt = ("eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJleHAiOjE3MDAwMDAwMDB9."
           "c2lnbmF0dXJlLWJ5dGVz_-x")
    out = redact(f"error: token {jwt} rejected\nbearer={jwt}")
    assert jwt not in out and "c2lnbmF0dXJl" not in out and "rejected" in out
