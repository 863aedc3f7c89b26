"""The generated testinfra suite: readable modules whose rows come from the plan and artifacts."""

from __future__ import annotations

import ast
import io
import pprint
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography import x509
from rich.console import Console

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit import verify as verify_emit
from kubeforge.compiler.plan import Plan
from kubeforge.targets.verify import FAILED, PASSED, CheckResult, parse_report, render, ssh_config
from kubeforge.targets.base import HostSpec
from tests.conftest import EXAMPLES, FIXED_NOW, assert_golden

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    return compile_file(EXAMPLES / "ha-cluster.kf", root / "build", state_dir=root / "state",
                        now=FIXED_NOW).root


def _tables(path: Path) -> dict[str, list]:
    tree = ast.parse(path.read_text())
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
            and n.targets[0].id.isupper() and isinstance(n.value, ast.List)}


def test_role_files_and_golden(build):
    names = sorted(p.name for p in (build / "verify").glob("*.py"))
    assert names == ["conftest.py", "test_control_plane.py", "test_etcd.py",
                     "test_loadbalancer.py", "test_node.py", "test_preflight.py",
                     "test_worker.py"]
    assert_golden(GOLDEN / "ha-cluster.test_loadbalancer.py",
                  (build / "verify/test_loadbalancer.py").read_text())


def test_every_upload_is_checked_with_mode_owner_and_hash(build):
    plan = Plan.from_json((build / "plan.json").read_text())
    rows = {(r[1], r[2]): r for f in (build / "verify").glob("test_*.py")
            for name, table in _tables(f).items() if name in ("FILES", "KUBEADM_CONFIGS")
            for r in table}
    for step in plan.uploads():
        phase, node, path, mode, owner, group, sha = rows[(step.host, step.action.path)]
        assert (phase, mode, f"{owner}:{group}") == (
            step.phase, step.action.mode, step.action.owner)
        # Content is checked wherever apply checks it (kubeadm rewrites kubelet.conf); a
        # secret against the build's copy: no plain hash of it in any 0644 file.
        if step.check.kind != "sha256":
            assert sha is None
        else:
            assert sha == (f"build:{step.action.source}" if step.action.secret
                           else step.action.sha256)


def test_certificate_rows_carry_the_compiled_sans(build):
    rows = _tables(build / "verify/test_control_plane.py")["CERTIFICATES"]
    phase, node, path, sans, _ = next(r for r in rows if r[1] == "cp1"
                                      and r[2] == "/etc/kubernetes/pki/apiserver.crt")
    cert = x509.load_pem_x509_certificate(
        (build / "nodes/cp1/etc/kubernetes/pki/apiserver.crt").read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.77.0.100" in sans and "api.ha-lab.internal" in sans
    assert len(sans) == len(list(ext))


def test_suite_collects_and_skips_everything_without_hosts(build):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(build / "verify"), "--kf-until=pki", "-p", "no:randomly"],
                         capture_output=True, text=True, cwd=build)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "skipped" in run.stdout and "failed" not in run.stdout


def test_ssh_config_checks_host_keys(tmp_path):
    text = ssh_config({"cp1": HostSpec("cp1", "10.0.0.1", key_file="/k")}, tmp_path / "kh")
    assert "StrictHostKeyChecking yes" in text and f"UserKnownHostsFile {tmp_path}/kh" in text


def test_parse_report_reads_node_check_and_phase(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="t" name="test_file[cp1:/x]">'
        '<properties><property name="kf_node" value="cp1"/><property name="kf_check" '
        'value="file /x"/><property name="kf_phase" value="pki"/></properties>'
        '<failure message="/x has mode 0644, expected 0600">trace</failure></testcase>'
        '</testsuite></testsuites>')
    (result,) = parse_report(report)
    assert (result.node, result.check, result.phase, result.status) == \
        ("cp1", "file /x", "pki", "failed")
    assert "0600" in result.message


@pytest.mark.parametrize("width", [80, 120, 240])
def test_tables_keep_every_check_path_whole(width):
    checks = ["certificate /etc/kubernetes/pki/apiserver-kubelet-client.crt",
              "file /etc/kubernetes/pki/etcd/healthcheck-client.key", "service etcd"]
    results = [CheckResult("cp1", c, "pki", FAILED if i == 0 else PASSED,
                           "the certificate lacks SANs ['10.77.0.11'] and expires in 3 days; "
                           "recompile and apply to renew it" if i == 0 else "")
               for i, c in enumerate(checks)]
    out = io.StringIO()
    render(results, Console(file=out, width=width), show_passed=True)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    for check in checks:
        assert re.search(rf"│ {re.escape(check)}\s+│ pki\s+│ (failed|passed)", text), text
    assert "lacks SANs" in text and "renew it" in text and "3 passed" not in text


_VALUES = st.one_of(st.text(max_size=120), st.integers(-10**30, 10**30), st.booleans(),
                    st.none(), st.sampled_from(["'", '"', "\\", "\u2028", "é", "\x00"]))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.tuples(_VALUES), st.lists(_VALUES, max_size=6).map(tuple),
                 st.lists(st.one_of(_VALUES, st.lists(_VALUES, max_size=2),
                                    st.dictionaries(st.text(max_size=3), _VALUES, max_size=2)),
                          max_size=4).map(tuple)))
def test_a_row_is_written_as_pprint_writes_it(row):
    assert verify_emit._row(row) == pprint.pformat(row, width=200)
