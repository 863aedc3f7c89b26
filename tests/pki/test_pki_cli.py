"""`kubeforge certs check-expiration` over a compiled build directory."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from kubeforge.cli import main
from kubeforge.cli_certs import residual


def run(*args: str):
    return CliRunner().invoke(main, ["certs", "check-expiration", *args])


def test_table_lists_every_certificate(built):
    result = run(str(built.root), "--at", "2025-09-01T12:00:00")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["CERTIFICATE", "EXPIRES", "RESIDUAL", "TIME", "CERTIFICATE",
                                "AUTHORITY"]
    apiserver = next(line for line in lines
                     if line.startswith("nodes/cp1/etc/kubernetes/pki/apiserver.crt"))
    assert apiserver.split()[1:] == ["Mar", "01,", "2026", "12:00", "UTC", "181d", "ca"]
    assert any(line.startswith("nodes/cp2/etc/kubernetes/pki/etcd/peer.crt") and
               line.endswith("etcd-ca") for line in lines)
    assert any(line.startswith("nodes/cp1/etc/kubernetes/kubelet.conf#system:node:cp1")
               for line in lines)
    ca_header = lines.index(next(line for line in lines
                                 if line.startswith("CERTIFICATE AUTHORITY")))
    assert lines[ca_header].split() == ["CERTIFICATE", "AUTHORITY", "EXPIRES", "RESIDUAL", "TIME"]
    assert "pki/ca.crt" in [line.split()[0] for line in lines[ca_header + 1:]]
    assert "PRIVATE KEY" not in result.output


def test_json_output(built):
    result = run(str(built.root), "--json", "--at", "2026-03-02T00:00:00+00:00")
    assert result.exit_code == 0, result.output
    records = {r["path"]: r for r in json.loads(result.output)["certificates"]}
    # 3 control planes x 7 leaves + 3 CAs x (3 nodes + build root) + 13 kubeconfigs
    assert len(records) == 21 + 12 + 13
    leaf = records["nodes/cp3/etc/kubernetes/pki/front-proxy-client.crt"]
    assert leaf["authority"] == "front-proxy-ca" and leaf["expired"] is True
    admin = records["kubeconfigs/admin.conf#kubernetes-admin"]
    assert admin["kind"] == "kubeconfig" and admin["subject"] == "kubernetes-admin"
    ca = records["pki/etcd/ca.crt"]
    assert ca["is_ca"] and not ca["expired"] and ca["residual"] == "8y"


def test_not_a_build_dir(tmp_path):
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert "BUILD_DIR/<cluster>" in result.output


def test_residual_format():
    assert residual(dt.timedelta(seconds=-5)) == "<invalid>"
    assert residual(dt.timedelta(seconds=30)) == "30s"
    assert residual(dt.timedelta(minutes=5)) == "5m"
    assert residual(dt.timedelta(hours=30)) == "30h"
    assert residual(dt.timedelta(days=364)) == "364d"
    assert residual(dt.timedelta(days=3650)) == "10y"
