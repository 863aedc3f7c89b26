"""The `rbac` and `kubeconfig user` commands on examples/multi-team.kf, its golden matrix, and
the lint as `kubeforge check` runs it (real source spans)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID

from kubeforge.cli import main
from kubeforge.compiler import pki_store
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.rbac_matrix import program_matrix, to_json
from kubeforge.compiler.state import StateDir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "multi-team.kf"
GOLDEN = Path(__file__).parent / "golden" / "multi-team-matrix.json"
SA_CI = "system:serviceaccount:team-a:ci"


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# ---------------------------------------------------------------- the multi-team example


def test_example_matrix_matches_golden():
    program, _ = load_program(EXAMPLE)
    text = to_json(program_matrix(program))
    if os.environ.get("KUBEFORGE_UPDATE_GOLDENS") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "run with KUBEFORGE_UPDATE_GOLDENS=1 to accept"


def test_matrix_json_command_prints_the_golden():
    result = cli("rbac", "matrix", EXAMPLE, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(GOLDEN.read_text())


def test_matrix_table_has_every_subject_and_scope(monkeypatch):
    # rich sizes the table to the terminal; under xdist a worker may inherit a narrow one
    # and fold the subject names: give it the width of a wide terminal.
    monkeypatch.setenv("COLUMNS", "240")
    result = cli("rbac", "matrix", EXAMPLE)
    assert result.exit_code == 0
    for text in ("cluster-wide (all namespaces)", "namespace team-a", "namespace team-b",
                 "serviceaccount team-a/ci", "group auditors", "user alice", "glwcupd"):
        assert text in result.output


@pytest.mark.parametrize("who,groups,verb,resource,ns,expected", [
    ("alice", (), "create", "deployments", "team-a", True),  # edit in her own namespace
    ("alice", (), "get", "secrets", "team-a", True),
    ("alice", (), "create", "deployments", "team-b", False),  # not in the other team's
    ("alice", (), "create", "rolebindings", "team-a", False),  # edit is not admin
    ("bob", (), "delete", "pods", "team-b", True),
    ("bob", (), "get", "pods", "team-a", False),
    ("carol", (), "list", "pods", "", True),  # auditors read every namespace
    ("carol", (), "get", "secrets", "team-a", False),  # ... except secrets
    ("carol", (), "update", "deployments", "team-b", False),
    ("mallory", ("auditors",), "get", "deployments.apps", "team-b", True),  # --as-group
    ("mallory", (), "get", "pods", "team-a", False),
    (SA_CI, (), "patch", "deployments", "team-a", True),  # CI may only patch deployments
    (SA_CI, (), "get", "deployments", "team-a", False),
    (SA_CI, (), "update", "deployments", "team-a", False),
    (SA_CI, (), "patch", "deployments/scale", "team-a", False),
    (SA_CI, (), "patch", "deployments", "team-b", False),
    (SA_CI, (), "get", "/healthz", "", True),
])
def test_can_i_command(who, groups, verb, resource, ns, expected):
    args = ["rbac", "can-i", EXAMPLE, "--as", who, verb, resource]
    args += [a for g in groups for a in ("--as-group", g)]
    args += ["-n", ns] if ns else []
    result = cli(*args)
    first, reason = result.output.splitlines()[:2]
    assert (result.exit_code, first) == ((0, "yes") if expected else (1, "no")), reason
    if expected and not resource.startswith("/"):
        assert reason.startswith("allowed by ")


def test_can_i_reason_names_the_binding_role_and_rule():
    result = cli("rbac", "can-i", EXAMPLE, "--as", SA_CI, "patch", "deployments", "-n", "team-a")
    assert result.output.splitlines()[1] == (
        "allowed by RoleBinding kubeforge:serviceaccount:team-a:ci:deployer in team-a -> "
        'Role deployer: allow patch on deployments group "apps"')


def test_can_i_unknown_resource_asks_the_core_group_with_a_warning():
    """As kubectl: a resource without a group that is not known is asked about in ""."""
    result = cli("rbac", "can-i", EXAMPLE, "--as", "alice", "get", "widgets", "-n", "team-a")
    assert result.exit_code == 1 and "widgets.GROUP" in result.output
    assert "no RBAC rule allows get widgets in namespace team-a" in result.output


def test_can_i_star_asks_the_core_group_as_kubectl_does(tmp_path):
    """`kubectl auth can-i get '*'` asks for resource `*` in group "" (not `*`)."""
    path = tmp_path / "star.kf"
    path.write_text('namespace a {}\nrole core in a { allow get on * group "" }\n'
                    'role apps in a { allow get on deployments }\n'
                    'user u { bind core in a }\nuser v { bind apps in a }\n')
    assert cli("rbac", "can-i", str(path), "--as", "u", "get", "*", "-n", "a").exit_code == 0
    assert cli("rbac", "can-i", str(path), "--as", "v", "get", "*", "-n", "a").exit_code == 1


def test_can_i_impersonate_users_and_groups(tmp_path):
    path = tmp_path / "imp.kf"
    path.write_text('clusterrole imp { allow impersonate on users groups serviceaccounts }\n'
                    'user "alice@example.com" { bind imp }\n')
    for resource in ("users", "groups"):
        result = cli("rbac", "can-i", str(path), "--as", "alice@example.com", "impersonate",
                     resource)
        assert result.exit_code == 0, result.output


def test_can_i_through_builtin_system_roles_bound_cluster_wide():
    policies = str(ROOT / "examples" / "policies.kf")
    adapter = "system:serviceaccount:monitoring:metrics-adapter"
    assert cli("rbac", "can-i", policies, "--as", adapter, "create", "tokenreviews").exit_code == 0
    assert cli("rbac", "can-i", policies, "--as", adapter, "create",
               "subjectaccessreviews").exit_code == 0
    # view cluster-wide: reads pods anywhere, never secrets
    assert cli("rbac", "can-i", policies, "--as", adapter, "list", "pods").exit_code == 0
    assert cli("rbac", "can-i", policies, "--as", adapter, "get", "secrets", "-n",
               "payments").exit_code == 1
    # the custom verb reaches the team role through aggregation, and view gets the reader
    ana = ("--as", "ana@example.com")
    assert cli("rbac", "can-i", policies, *ana, "reconcile", "widgets.example.com", "-n",
               "payments").exit_code == 0
    assert cli("rbac", "can-i", policies, "--as", "sre@example.com", "list",
               "widgets.example.com").exit_code == 0


def test_can_i_as_group_follows_impersonation(tmp_path):
    path = tmp_path / "grp.kf"
    path.write_text('namespace a {}\nuser alice { groups dev  bind view in a }\n'
                    'group dev { bind edit in a }\ngroup "oidc:ops" { bind admin in a }\n')

    def can(*args):
        return cli("rbac", "can-i", str(path), *args).exit_code == 0
    # a declared user brings its certificate's groups ...
    assert can("--as", "alice", "create", "deployments", "-n", "a")
    # ... which an explicit --as-group replaces, as kubectl impersonation does
    assert not can("--as", "alice", "--as-group", "other", "create", "deployments", "-n", "a")
    assert can("--as", "bob", "--as-group", "oidc:ops", "create", "roles", "-n", "a")
    # anonymous and unauthenticated callers are not system:authenticated
    assert not can("--as", "system:anonymous", "create", "selfsubjectaccessreviews")
    assert not can("--as", "bob", "--as-group", "system:unauthenticated", "create",
                   "selfsubjectaccessreviews")
    assert can("--as", "bob", "create", "selfsubjectaccessreviews")


def test_who_can_command():
    result = cli("rbac", "who-can", EXAMPLE, "patch", "deployments", "-n", "team-a", "--json")
    assert result.exit_code == 0
    subjects = {row["subject"] for row in json.loads(result.output)}
    assert subjects == {"Group system:masters", "Group kubeadm:cluster-admins",
                        "Group team-a-devs", "ServiceAccount team-a/ci"}
    table = cli("rbac", "who-can", EXAMPLE, "get", "secrets", "-n", "team-b")
    assert "team-b-devs" in table.output and "auditors" not in table.output


# ---------------------------------------------------------------- lint through `check`


LINTED = """\
namespace a {
  role everything { allow * on pods }
  role spare { allow get on pods }
  serviceaccount bot { bind cluster-admin }
}
clusterrole powers { allow escalate bind on clusterroles }
group readers { bind powers  bind edit }
"""


def test_lint_spans_from_source(tmp_path):
    src = tmp_path / "linted.kf"
    src.write_text(LINTED)
    program, _ = load_program(src)
    got = {(d.code, d.span.line, d.span.col) for d in program.warnings
           if d.code.startswith("W2")}
    assert got == {
        ("W201", 2, 21),  # the `allow * on pods` rule
        ("W207", 2, 3),  # role everything, never bound
        ("W207", 3, 3),  # role spare, never bound
        ("W203", 4, 24),  # `bind cluster-admin` of a service account
        ("W206", 6, 22),  # escalate/bind
        ("W205", 7, 30),  # `bind edit` cluster-wide reads secrets
    }


def test_check_strict_turns_lint_into_errors(tmp_path):
    src = tmp_path / "linted.kf"
    src.write_text(LINTED)
    relaxed = cli("check", src)
    assert relaxed.exit_code == 0 and "warning[W203]" in relaxed.output
    strict = cli("check", "--strict", src)
    assert strict.exit_code == 1 and "error[W203]" in strict.output


# ---------------------------------------------------------------- kubeconfig user --ttl


def test_kubeconfig_user_ttl(tmp_path):
    program, _ = load_program(EXAMPLE)
    state = StateDir(tmp_path / "state")
    ca = pki_store.ensure_cas(program.cluster, state, dt.datetime.now(dt.timezone.utc)).ca
    out = tmp_path / "carol.conf"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    result = cli("kubeconfig", "user", EXAMPLE, "carol", "--ttl", "8h", "-o", out,
                 "--state-dir", tmp_path / "state")
    after = dt.datetime.now(dt.timezone.utc)
    assert result.exit_code == 0, result.output
    assert "PRIVATE KEY" not in result.output and "client-key-data" not in result.output
    assert out.stat().st_mode & 0o777 == 0o600
    conf = yaml.safe_load(out.read_text())
    assert conf["clusters"][0]["cluster"]["server"] == "https://api.shared.internal:8443"
    pem = base64.b64decode(conf["users"][0]["user"]["client-certificate-data"])
    cert = x509.load_pem_x509_certificate(pem)
    assert before + dt.timedelta(hours=8) <= cert.not_valid_after_utc <= \
        after + dt.timedelta(hours=8)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["carol"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME)] == ["auditors"]
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "leaf.pem").write_bytes(pem)
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"),
                             str(tmp_path / "leaf.pem")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr


def test_kubeconfig_user_errors(tmp_path):
    unknown = cli("kubeconfig", "user", EXAMPLE, "alicia", "--state-dir", tmp_path)
    assert unknown.exit_code == 2 and "did you mean `alice`" in unknown.output
    no_ca = cli("kubeconfig", "user", EXAMPLE, "alice", "--state-dir", tmp_path / "empty")
    assert no_ca.exit_code == 1 and "no cluster CA" in no_ca.output
    bad_ttl = cli("kubeconfig", "user", EXAMPLE, "alice", "--ttl", "soon")
    assert bad_ttl.exit_code == 2 and "--ttl" in bad_ttl.output


@pytest.mark.parametrize("args", [
    ("rbac", "who-can", "get", "secrets", "{file}"),  # the order before FILE came first
    ("rbac", "can-i", "--as", "alice", "get", "pods", "{file}"),
    ("kubeconfig", "user", "alice", "{file}"),
])
def test_file_in_the_wrong_place_says_the_file_comes_first(args):
    result = cli(*(str(EXAMPLE) if a == "{file}" else a for a in args))
    assert result.exit_code == 2
    assert "no such file" in result.output and f"`{EXAMPLE}` is one: the file comes first" \
        in result.output, result.output
    assert f"usage: kubeforge {args[0]} {args[1]} FILE " in result.output, result.output
