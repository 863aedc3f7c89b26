"""Day 2 on the real HA cluster: bearer tokens, the cluster's other way in besides x509.

A realistic day-2 change: a service account and a bootstrap-style `token` with its RBAC are
appended to the cluster's file and applied. Then, with the kubeconfigs kubeforge writes
(`kubeconfig serviceaccount`: a TokenRequest over SSH; `kubeconfig token`: the declared token
from the state directory), kubectl on this machine goes through the VIP:

* `kubectl auth whoami` shows exactly the user and groups kubeforge predicts;
* for every identity and a set of cells (allowed and denied, several verbs, resources and
  namespaces, cluster-wide too), `kubectl auth can-i` with that kubeconfig answers what
  `kubeforge rbac can-i --as USER --as-group ...` predicts for the identity whoami reported;
* the service-account token expires after `--ttl` (its `exp` claim; the TokenRequest API's
  minimum of 10 minutes is too long to wait for) and no token Secret is made for it;
* a declared token with a short `ttl` authenticates until its expiration and is refused
  after it; the token's secret half appears in no log, plan or output kubeforge wrote;
* every cell of `rbac matrix`, the new rows included, equals the real authorizer's answer.

The declarations stay in the file (later modules' applies find them applied and an unchanged
re-apply changes nothing), except the short-lived token, which is taken out again so no later
compile issues it anew.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.k8s.ha_cluster import TRANSIENT, HaCluster, changed_steps
from tests.k8s.ha.lab import REPORT, VIP

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DECLARATIONS = """
# tests/k8s/ha/test_day2_tokens.py: bearer-token identities and what they may do
serviceaccount reporter in team-b { bind view  bind deployer in team-a }
token ci-bot {
  ttl 24h
  description "kubeforge e2e: a bootstrap-style token"
  groups system:bootstrappers:e2e-readers
  bind edit in team-b
}
group system:bootstrappers:e2e-readers { bind view in team-a }
"""
BRIEF = """
token brief-e2e { ttl 3m  bind view in team-a }
"""
#: (verb, resource, namespace or "" for cluster-wide): allowed and denied for each identity.
CELLS = (
    ("get", "pods", "team-a"), ("list", "pods", "team-b"), ("get", "pods", "default"),
    ("list", "pods", ""), ("patch", "deployments", "team-a"), ("get", "deployments", "team-a"),
    ("create", "deployments", "team-b"), ("patch", "deployments/scale", "team-b"),
    ("get", "secrets", "team-b"), ("delete", "pods", "team-a"),
    ("create", "rolebindings", "team-b"), ("watch", "configmaps", "team-a"),
    ("list", "nodes", ""), ("get", "namespaces", ""),
)


def _inventory(ha: HaCluster) -> list[str]:
    return ["-i", str(ha.sandbox_dir / "inventory.yaml"), "--known-hosts",
            str(ha.sandbox_dir / "known_hosts")]


def _kubectl_as(ha: HaCluster, kubeconfig: Path, *args: str):
    """kubectl with ``kubeconfig``; a request the API never answered is sent again."""
    for attempt in range(4):
        proc = ha.kubectl(*args, kubeconfig=kubeconfig, check=False, timeout=60)
        if not (proc.returncode and TRANSIENT.search(proc.stderr)):
            return proc
        time.sleep(2 * (attempt + 1))
    return proc


def whoami(ha: HaCluster, kubeconfig: Path) -> dict:
    proc = _kubectl_as(ha, kubeconfig, "auth", "whoami", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["status"]["userInfo"]


def real_can_i(ha: HaCluster, kubeconfig: Path, verb: str, resource: str, ns: str) -> bool:
    scope = ["-n", ns] if ns else ["--all-namespaces"]
    proc = _kubectl_as(ha, kubeconfig, "auth", "can-i", verb, resource, *scope)
    answer = proc.stdout.strip().split()[:1]
    assert answer in (["yes"], ["no"]), f"kubectl auth can-i {verb} {resource}: {proc.stderr}"
    return answer == ["yes"]


def predicted_can_i(ha: HaCluster, user: str, groups: list[str], verb: str, resource: str,
                    ns: str) -> bool:
    args = ["rbac", "can-i", str(ha.kf), verb, resource, "--as", user]
    for group in groups:
        args += ["--as-group", group]
    proc = ha.kubeforge(*args, *(["-n", ns] if ns else []))
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


def compare_cells(ha: HaCluster, kubeconfig: Path, who: dict) -> tuple[list[str], int]:
    """Every cell as the cluster answers for ``kubeconfig`` and as kubeforge predicts for the
    identity the cluster reported; (mismatches, allowed count)."""
    mismatches, allowed = [], 0
    for verb, resource, ns in CELLS:
        real = real_can_i(ha, kubeconfig, verb, resource, ns)
        guess = predicted_can_i(ha, who["username"], who["groups"], verb, resource, ns)
        allowed += real
        if real != guess:
            mismatches.append(f"{who['username']} {verb} {resource} in {ns or '*'}: "
                              f"cluster {real}, kubeforge {guess}")
    return mismatches, allowed


def predicted_identity(ha: HaCluster, label: str):
    from kubeforge.compiler.lower import load_program
    from kubeforge.compiler.rbac_matrix import identities

    program, _ = load_program(ha.kf)
    return identities(program)[label]


def kept_token(ha: HaCluster, name: str) -> dict:
    return json.loads((ha.root / ".kubeforge" / ha.name / "tokens" / name).read_text())


def _jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def declared(applied):
    """The file with this module's declarations appended, applied (a day-2 change)."""
    ha = applied
    if DECLARATIONS not in ha.kf.read_text():
        ha.kf.write_text(ha.kf.read_text() + DECLARATIONS)
    started = time.monotonic()
    proc = ha.on_hosts("apply")
    REPORT["tokens_apply_s"] = round(time.monotonic() - started, 1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return ha


@pytest.mark.parametrize("namespace, account", [("team-a", "ci"), ("team-b", "reporter")])
def test_service_account_kubeconfig_authenticates_with_the_predicted_rights(
        declared, tmp_path, namespace, account):
    ha = declared
    out = tmp_path / f"{account}.kubeconfig"
    proc = ha.kubeforge("kubeconfig", "serviceaccount", str(ha.kf), account, "-n", namespace,
                        "--ttl", "10m", "-o", str(out), *_inventory(ha))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and out.stat().st_mode & 0o777 == 0o600
    conf = yaml.safe_load(out.read_text())
    assert conf["clusters"][0]["cluster"]["server"] == f"https://{VIP}:8443"
    token = conf["users"][0]["user"]["token"]
    assert token not in proc.stderr
    claims = _jwt_claims(token)
    assert claims["exp"] - claims["iat"] == 600, claims  # --ttl 10m, as asked

    who = whoami(ha, out)
    expected = predicted_identity(ha, f"serviceaccount {namespace}/{account}")
    assert (who["username"], who["groups"]) == (expected.name, list(expected.groups)), who
    mismatches, allowed = compare_cells(ha, out, who)
    REPORT.setdefault("tokens_cells", {})[f"serviceaccount {namespace}/{account}"] = len(CELLS)
    assert mismatches == [], "\n".join(mismatches)
    assert 0 < allowed < len(CELLS)  # the cells hold both answers
    # TokenRequest made no long-lived token Secret.
    secrets = ha.json("-n", namespace, "get", "secrets",
                      "--field-selector", "type=kubernetes.io/service-account-token")
    assert secrets["items"] == []


def test_declared_token_kubeconfig_authenticates_with_the_predicted_rights(declared, tmp_path):
    ha = declared
    out = tmp_path / "ci-bot.kubeconfig"
    proc = ha.kubeforge("kubeconfig", "token", str(ha.kf), "ci-bot", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    kept = kept_token(ha, "ci-bot")
    assert yaml.safe_load(out.read_text())["users"][0]["user"]["token"] == kept["token"]
    token_id = kept["token"].split(".")[0]

    secret = ha.json("-n", "kube-system", "get", "secret", f"bootstrap-token-{token_id}")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    issued = dt.datetime.strptime(kept["issued"], "%Y-%m-%dT%H:%M:%SZ")
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data["usage-bootstrap-authentication"] == "true"
    assert data["expiration"] == f"{issued + dt.timedelta(hours=24):%Y-%m-%dT%H:%M:%SZ}"
    assert data["auth-extra-groups"] == \
        "system:bootstrappers:kubeforge:ci-bot,system:bootstrappers:e2e-readers"

    who = whoami(ha, out)
    expected = predicted_identity(ha, "token ci-bot")
    assert (who["username"], who["groups"]) == (expected.name, list(expected.groups)), who
    assert who["username"] == f"system:bootstrap:{token_id}"
    # `rbac can-i --as system:bootstrap:ID` alone brings the token's groups.
    alone = ha.kubeforge("rbac", "can-i", str(ha.kf), "create", "deployments", "-n", "team-b",
                         "--as", who["username"])
    assert alone.returncode == 0, alone.stdout + alone.stderr
    mismatches, allowed = compare_cells(ha, out, who)
    REPORT.setdefault("tokens_cells", {})["token ci-bot"] = len(CELLS)
    assert mismatches == [], "\n".join(mismatches)
    assert 0 < allowed < len(CELLS)


def test_a_short_lived_token_is_refused_after_its_expiration(declared, tmp_path):
    ha = declared
    before = ha.kf.read_text()
    try:
        ha.kf.write_text(before + BRIEF)
        proc = ha.on_hosts("apply", "--phase", "workloads")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        kept = kept_token(ha, "brief-e2e")
        expires = dt.datetime.strptime(kept["issued"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc) + dt.timedelta(minutes=3)
        out = tmp_path / "brief.kubeconfig"
        issued = ha.kubeforge("kubeconfig", "token", str(ha.kf), "brief-e2e", "-o", str(out))
        assert issued.returncode == 0, issued.stderr
        assert dt.datetime.now(dt.timezone.utc) < expires - dt.timedelta(seconds=20), \
            "the apply took most of the token's 3 minutes: nothing left to check before expiry"
        assert whoami(ha, out)["username"] == f"system:bootstrap:{kept['token'].split('.')[0]}"
        time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()))

        def refused():
            proc = _kubectl_as(ha, out, "auth", "whoami")
            return proc.returncode != 0 and "Unauthorized" in proc.stderr
        ha.wait("the expired token refused", refused, 120, 5)
        REPORT["tokens_refused_after_s"] = round(
            (dt.datetime.now(dt.timezone.utc) - expires).total_seconds(), 1)
        late = ha.kubeforge("kubeconfig", "token", str(ha.kf), "brief-e2e", "-o",
                            str(tmp_path / "late.kubeconfig"))
        assert late.returncode == 1 and "expired at" in late.stderr, late.stderr
    finally:
        # Out of the file, so no later compile issues it anew; applied, so the hosts' copy of
        # the token manifest is the file's again (the expired Secret is the token cleaner's).
        ha.kf.write_text(before)
        ha.on_hosts("apply", "--phase", "workloads")


def test_an_unchanged_reapply_changes_nothing(declared):
    """The token Secret compares equal to its manifest (`kubectl diff`), so the modules after
    this one find nothing of it to change."""
    proc = declared.on_hosts("apply")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert changed_steps(proc.stderr) == []


def test_no_token_secret_in_logs_plans_or_outputs(declared):
    ha = declared
    secrets = [kept_token(ha, name)["token"].split(".")[1] for name in ("ci-bot", "brief-e2e")
               if (ha.root / ".kubeforge" / ha.name / "tokens" / name).exists()]
    assert secrets
    build = ha.root / "build" / ha.name
    places = [ha.root / ".kubeforge" / ha.name / "apply.log", build / "plan.json",
              build / "plan.txt", build / "files.json"]
    for place in places:
        text = place.read_text()
        for secret in secrets:
            assert secret not in text and base64.b64encode(secret.encode()).decode() not in \
                text, place
    for output in ha.outputs:  # every kubeforge stdout and stderr of the package so far
        assert not any(secret in output for secret in secrets)


def test_the_whole_matrix_with_the_new_identities_equals_the_real_authorizer(declared, tmp_path):
    """Every cell of `rbac matrix`, the token's and the new account's rows included, asked
    of the real authorizer with each identity's own credential."""
    from tests.k8s.ha.test_ha_e2e import matrix_against_the_cluster

    compared, mismatches = matrix_against_the_cluster(
        declared, tmp_path, frozenset({"token ci-bot", "serviceaccount team-b/reporter"}))
    REPORT["tokens_matrix"] = {"cells": compared, "mismatches": len(mismatches)}
    assert mismatches == [], "\n".join(mismatches[:40])
