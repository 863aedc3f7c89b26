"""Strict validation of kubeadm, kubelet and kube-proxy configuration documents.

``kubeadm init``/``join`` only *warn* about unknown fields and then drop them, so a misspelt
field silently loses a setting on a real host. The strict JSON schemas in ``data/`` (copied
from the reference, draft 2020-12, ``additionalProperties: false``) turn that into an error
before anything leaves the machine. ``jsonschema`` is a test/verification dependency, so it is
imported on first use rather than at module import.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import yaml

#: Which schema file validates which (apiVersion, kind).
SCHEMA_FILES: dict[tuple[str, str], str] = {
    **{("kubeadm.k8s.io/v1beta4", kind): f"kubeadm-v1beta4-{kind}.json"
       for kind in ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration")},
    ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"):
        "kubelet-v1beta1-KubeletConfiguration.json",
    ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"):
        "kubeproxy-v1alpha1-KubeProxyConfiguration.json",
}


@cache
def _validator(key: tuple[str, str]):
    from jsonschema import Draft202012Validator

    text = resources.files("kubeforge.compiler").joinpath("data", SCHEMA_FILES[key]).read_text()
    schema = json.loads(text)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_document(doc: Any, label: str = "document") -> list[str]:
    if not isinstance(doc, dict):
        return [f"{label}: not a mapping"]
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in SCHEMA_FILES:
        return [f"{label}: no schema for {key[0]}/{key[1]}"]
    problems = []
    for err in sorted(_validator(key).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path)
        problems.append(f"{label} ({key[1]}) /{where}: {err.message}")
    return problems


def validate_documents(text: str) -> list[str]:
    """Every problem in a multi-document YAML stream; an empty list means all documents
    validate. A stream with no document at all is a problem too."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        return [f"not YAML: {err}"]
    if not docs:
        return ["no document"]
    problems: list[str] = []
    for i, doc in enumerate(docs):
        problems += validate_document(doc, f"doc {i}")
    return problems
