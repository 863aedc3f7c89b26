"""The cluster's `kubernetes "1.N.P"` statement and what the version table says about it.

Accepted: the minors of :mod:`kubeforge.compiler.versions`. A minor past its upstream end of
life still compiles, with a warning that names the day support ended (W113).
"""

from __future__ import annotations

from kubeforge.compiler import versions
from kubeforge.compiler.context import Lowerer
from kubeforge.dsl.ast import Node
from kubeforge.dsl.diagnostics import Span

#: The language's key algorithm names -> kubeadm's ClusterConfiguration.encryptionAlgorithm.
KUBEADM_ALGORITHMS = {
    "rsa-2048": "RSA-2048", "rsa-3072": "RSA-3072", "rsa-4096": "RSA-4096",
    "ecdsa-p256": "ECDSA-P256", "ecdsa-p384": "ECDSA-P384",
}


def lower_version(lowerer: Lowerer, stmt: Node | None, span: Span) -> str | None:
    """The declared version as "1.N.P", or None after reporting why it is unusable."""
    example = f'e.g. `kubernetes "{versions.DEFAULT_VERSION}"`'
    if stmt is None:
        lowerer.error("E115", "the cluster block needs a Kubernetes version", span,
                      f"add {example}")
        return None
    value = stmt.value()
    text = str(value.py).lstrip("v")
    try:
        minor, _ = versions.parse(text)
    except versions.UnsupportedVersion:
        lowerer.error("E113", f"`{value.py}` is not a Kubernetes version", value.span,
                      f"write major.minor.patch, {example}")
        return None
    if minor not in versions.RELEASES:
        lowerer.error("E113", f"Kubernetes {text} is not supported", value.span,
                      f"kubeforge supports {versions.SUPPORTED_RANGE}; {example}")
        return None
    ended = versions.end_of_support(text)
    if ended is not None:
        lowerer.warn("W113", f"Kubernetes 1.{minor} is out of upstream support since {ended} "
                     "(no more security fixes)", value.span,
                     f"upgrade to a supported minor, {example}")
    return text


def check_algorithm(lowerer: Lowerer, algorithm: str, version: str | None, span: Span) -> None:
    """kubeadm must know the key algorithm (ECDSA-P384 arrived in 1.34)."""
    if version is None:
        return
    row = versions.release(version)
    if KUBEADM_ALGORITHMS[algorithm] not in row.encryption_algorithms:
        newer = next(m for m in versions.SUPPORTED_MINORS
                     if KUBEADM_ALGORITHMS[algorithm] in versions.RELEASES[m].encryption_algorithms)
        lowerer.error("E105", f"key algorithm `{algorithm}` needs Kubernetes 1.{newer} or later",
                      span, f"kubeadm 1.{row.minor} knows "
                      f"{', '.join(row.encryption_algorithms)}")
