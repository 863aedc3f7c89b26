"""What a kubeadm release would print, read from that release's own source instead.

Building a kubeadm costs minutes of CPU per minor (README, "Tests"), so the binary tests run
for the minors upstream still supports; these readers cover every minor. Each one is
checked against the binary: ``tests/compiler/test_versions_kubeadm.py`` compares both with the
same table row for every minor that has a binary, so a reader that misreads the source fails
there before it is trusted for an out-of-support minor.

Each reader takes the root of the ``k8s.io/kubernetes`` module of the release
(:func:`tests.support.kubeadm_build.kubernetes_source`).
"""

from __future__ import annotations

import re
from pathlib import Path

APP = "cmd/kubeadm/app"


def _read(root: Path, path: str) -> str:
    return (root / APP / path).read_text()


def _block(text: str, start: str) -> str:
    """The text between the braces of the Go block (function, map literal) that follows
    ``start`` (braces counted; none of the blocks read here has one in a string)."""
    _, found, rest = text.partition(start)
    assert found, f"no `{start}` in the source"
    opening = rest.index("{")
    depth = 0
    for index in range(opening, len(rest)):
        depth += {"{": 1, "}": -1}.get(rest[index], 0)
        if depth == 0:
            return rest[opening + 1:index]
    raise AssertionError(f"`{start}` has no end")


def image_tags(root: Path, minor: int) -> dict[str, str]:
    """The etcd, pause and CoreDNS tags the kubeadm of ``minor`` names for its own version
    (constants.go: SupportedEtcdVersion, PauseVersion, CoreDNSVersion). The etcd map is
    keyed by literal minors or, from 1.35, by ``getSkewedKubernetesVersion(n)``: the
    kubeadm's own minor plus n."""
    text = _read(root, "constants/constants.go")
    etcd = {}
    for key, tag in re.findall(r"^\s*(.+?):\s*\"([^\"]+)\",$",
                               _block(text, "\tSupportedEtcdVersion = "), re.M):
        skew = re.fullmatch(r"uint8\(getSkewedKubernetesVersion\((-?\d+)\)\.Minor\(\)\)", key)
        etcd[minor + int(skew[1]) if skew else int(key)] = tag
    pause = re.search(r'^\s*PauseVersion = "([^"]+)"', text, re.M)
    coredns = re.search(r'^\s*CoreDNSVersion = "([^"]+)"', text, re.M)
    assert pause and coredns, "constants.go changed shape"
    # EtcdSupportedVersion(): a minor outside the map takes the nearest end (1.37.2's map
    # stops at 36; its kubeadm warns and names the 36 entry).
    nearest = minor if minor in etcd else (min(etcd) if minor < min(etcd) else max(etcd))
    return {"etcd": etcd[nearest], "pause": pause[1], "coredns": coredns[1]}


def feature_gates(root: Path) -> tuple[str, ...]:
    """The gates ``kubeadm init --help`` lists: InitFeatureGates without HiddenInHelpText."""
    text = _read(root, "features/features.go")
    names = dict(re.findall(r"^\t(\w+) = \"(\w+)\"$", text, re.M))
    body = _block(text, "var InitFeatureGates = FeatureList")
    entries = re.split(r"^\t(?=\w+:)", body, flags=re.M)[1:]
    gates = []
    for entry in entries:
        ident = entry.split(":", 1)[0]
        if not re.search(r"HiddenInHelpText:\s*true", entry):
            gates.append(names[ident])
    return tuple(sorted(gates))


def encryption_algorithms(root: Path) -> tuple[str, ...]:
    """ClusterConfiguration.encryptionAlgorithm values validation.go accepts."""
    values = dict(re.findall(r"^\s*(EncryptionAlgorithm\w+)\s+EncryptionAlgorithmType = "
                             r"\"([^\"]+)\"", _read(root, "apis/kubeadm/types.go"), re.M))
    body = _block(_read(root, "apis/kubeadm/validation/validation.go"),
                  "func ValidateEncryptionAlgorithm(")
    return tuple(sorted(values[name] for name in re.findall(r"kubeadm\.(EncryptionAlgorithm\w+)",
                                                            body)))


def config_apis(root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(API versions ``kubeadm config validate`` reads, those it reads only with
    --allow-experimental-api): the versions under apis/kubeadm/ less util/config/common.go's
    old and experimental ones."""
    group = "kubeadm.k8s.io"
    present = {f"{group}/{d.name}" for d in (root / APP / "apis/kubeadm").iterdir()
               if d.is_dir() and re.fullmatch(r"v\d+(?:(?:alpha|beta)\d+)?", d.name)}
    body = _block(_read(root, "util/config/common.go"), "func validateSupportedVersion(")
    # Each map literal is one statement ending at a blank line (1.36: `map[string]string{}`).
    old = body.split("oldKnownAPIVersions := ", 1)[1].split("\n\n", 1)[0]
    experimental = body.split("experimentalAPIVersions := ", 1)[1].split("\n\n", 1)[0]
    old = set(re.findall(rf'"({group}/\w+)":', old))
    experimental = set(re.findall(rf'"({group}/\w+)":', experimental))
    return tuple(sorted(present - old - experimental)), tuple(sorted(present & experimental))
