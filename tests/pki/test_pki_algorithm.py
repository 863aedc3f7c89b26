"""`pki { algorithm }` from source text: ecdsa-p384 where kubeadm has it (1.34+), and a
change of algorithm after the CAs exist keeps them, with a warning that says how to rotate."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubeforge.cli import main
from kubeforge.compiler.build import compile_file
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.conftest import FIXED_NOW

SOURCE = """cluster lab {
  kubernetes "%s"
  pki { algorithm %s }
  node cp1 { address 192.168.56.11  role control-plane worker }
}
"""


def compile_source(tmp_path, version, algorithm, **kw):
    path = tmp_path / "lab.kf"
    path.write_text(SOURCE % (version, algorithm))
    return compile_file(path, tmp_path / "build", state_dir=tmp_path / "state", now=FIXED_NOW,
                        **kw)


def test_ecdsa_p384_compiles_for_kubernetes_1_34(tmp_path):
    result = compile_source(tmp_path, "1.34.1", "ecdsa-p384")
    init = [d for d in yaml.safe_load_all(
        (result.root / "nodes/cp1/etc/kubernetes/kubeadm/init.yaml").read_text()) if d]
    cluster = next(d for d in init if d["kind"] == "ClusterConfiguration")
    assert cluster["encryptionAlgorithm"] == "ECDSA-P384"
    for name in ("ca", "apiserver"):
        cert = x509.load_pem_x509_certificate(
            (result.root / f"nodes/cp1/etc/kubernetes/pki/{name}.crt").read_bytes())
        assert isinstance(cert.public_key().curve, ec.SECP384R1), name


@pytest.mark.parametrize("version", ["1.33.4", "1.33.13"])
def test_ecdsa_p384_before_1_34_is_a_version_error(tmp_path, version):
    with pytest.raises(DiagnosticError) as info:
        compile_source(tmp_path, version, "ecdsa-p384")
    [diag] = info.value.diagnostics
    assert diag.code == "E105" and "needs Kubernetes 1.34 or later" in diag.message
    assert (diag.span.line, diag.span.col) == (3, 19)
    assert not (tmp_path / "state").exists()


def test_changing_the_algorithm_keeps_the_cas_and_warns(tmp_path):
    first = compile_source(tmp_path, "1.37.2", "ecdsa-p256")
    assert first.warnings == ()
    ca_before = (tmp_path / "state/pki/ca.crt").read_bytes()
    second = compile_source(tmp_path, "1.37.2", "rsa-2048")
    assert (tmp_path / "state/pki/ca.crt").read_bytes() == ca_before
    [warning] = second.warnings
    assert warning.code == "W108" and warning.severity == "warning"
    assert "made with ecdsa-p256" in warning.message and "rsa-2048" in warning.message
    assert "manual-rotation-of-ca-certificates" in warning.hint
    assert str(tmp_path / "state/pki/ca.crt") in warning.hint
    leaf = x509.load_pem_x509_certificate(
        (second.root / "nodes/cp1/etc/kubernetes/pki/apiserver.crt").read_bytes())
    assert leaf.public_key().key_size == 2048  # new leaves follow the new algorithm


def test_the_algorithm_warning_on_the_command_line_and_under_strict(tmp_path):
    compile_source(tmp_path, "1.37.2", "ecdsa-p256")
    (tmp_path / "lab.kf").write_text(SOURCE % ("1.37.2", "rsa-2048"))
    args = ["compile", str(tmp_path / "lab.kf"), "-o", str(tmp_path / "build"),
            "--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "warning[W108]" in result.output and "pki { algorithm rsa-2048 }" in result.output
    strict = CliRunner().invoke(main, [*args, "--strict"])
    assert strict.exit_code == 1 and "error[W108]" in strict.output
