"""The storage addon (`addon storage local-path`): rancher's local-path-provisioner, as its
release v0.0.30 deploys it (deploy/local-path-storage.yaml of the module), for this cluster.

What is kept exactly: the namespace, the service account and the RBAC (the same names and
rules, so `rbac can-i` answers for the account what the API server will), the provisioner's
command line and the ConfigMap's setup and teardown scripts. What kubeforge changes:

* the images: with ``install bundle``, the provisioner runs from the bundle's
  ``kubeforge.local/local-path-provisioner`` image (Debian base, so it has the ``sh``,
  ``mkdir`` and ``rm`` the helper pods run), which also serves as the helper pod's image
  instead of busybox; both ``imagePullPolicy: Never``, since nothing is pulled. Without a
  bundle, upstream's images;
* ``config.json`` lists the declared ``path`` for every node;
* the StorageClass is the cluster's default unless `default false`, and is named after the
  provider (``local-path``), as upstream's.

The RBAC lives here as IR roles and bindings, so the emitter, the authorizer behind
``rbac can-i``/``who-can``/``matrix`` and the RBAC lint read the same objects.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from kubeforge.compiler.ir import Cluster, PolicyRule, Role, StorageAddon
from kubeforge.compiler.rbac import RbacBinding, RoleRef, SubjectRef

NAMESPACE = "local-path-storage"
SERVICE_ACCOUNT = "local-path-provisioner-service-account"
ROLE = "local-path-provisioner-role"
BINDING = "local-path-provisioner-bind"
CONFIGMAP = "local-path-config"
DEPLOYMENT = "local-path-provisioner"
CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
#: The bundle's image (bundle/addons.py builds it) and upstream's, by provider version.
BUNDLE_IMAGE = "kubeforge.local/local-path-provisioner"
UPSTREAM_IMAGE = "rancher/local-path-provisioner"
UPSTREAM_HELPER = "busybox"
#: Where the plan applies addon manifests from (compiler/emit/plan.py).
REMOTE_ADDONS = "/etc/kubernetes/kubeforge/addons"
MANIFEST = f"{REMOTE_ADDONS}/{NAMESPACE}.yaml"
LABELS = {"app": DEPLOYMENT}

_CORE = ("",)
_ALL_WRITES = ("get", "list", "watch", "create", "patch", "update", "delete")


def roles(addon: StorageAddon) -> tuple[Role, ...]:
    """Upstream's Role (helper pods in its namespace) and ClusterRole, rule for rule."""
    span = addon.span
    return (
        Role(ROLE, NAMESPACE, (PolicyRule(_ALL_WRITES, ("pods",), _CORE, span=span),), span),
        Role(ROLE, None, (
            PolicyRule(("get", "list", "watch"),
                       ("nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"),
                       _CORE, span=span),
            PolicyRule(_ALL_WRITES, ("persistentvolumes",), _CORE, span=span),
            PolicyRule(("create", "patch"), ("events",), _CORE, span=span),
            PolicyRule(("get", "list", "watch"), ("storageclasses",), ("storage.k8s.io",),
                       span=span),
        ), span),
    )


def bindings(addon: StorageAddon) -> tuple[RbacBinding, ...]:
    subject = (SubjectRef("ServiceAccount", SERVICE_ACCOUNT, NAMESPACE),)
    return (RbacBinding(BINDING, NAMESPACE, RoleRef("Role", ROLE), subject, addon.span),
            RbacBinding(BINDING, None, RoleRef("ClusterRole", ROLE), subject, addon.span))


def images(addon: StorageAddon, bundled: str | None) -> tuple[str, str, str]:
    """(provisioner image, helper image, pull policy)."""
    if bundled is not None:
        return bundled, bundled, "Never"
    return f"{UPSTREAM_IMAGE}:{addon.version}", UPSTREAM_HELPER, "IfNotPresent"


def config_json(addon: StorageAddon) -> str:
    return json.dumps({"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                                        "paths": [addon.path]}]}, indent=2) + "\n"


def helper_pod(image: str, pull: str) -> str:
    """The helper pod template (upstream's, with the image given)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "containers": [{"name": "helper-pod", "image": image, "imagePullPolicy": pull}],
        },
    }, sort_keys=False)


SETUP = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n'


def _rbac_docs(addon: StorageAddon) -> list[dict[str, Any]]:
    from kubeforge.compiler.emit.rbac import binding_doc, role_doc

    return [role_doc(r) for r in roles(addon)] + [binding_doc(b) for b in bindings(addon)]


def documents(cluster: Cluster, bundled: str | None) -> list[dict[str, Any]]:
    """Every object of the addon, in apply order; ``bundled``: the bundle's image, if any."""
    addon = cluster.storage
    assert addon is not None
    image, helper, pull = images(addon, bundled)
    meta = {"name": DEPLOYMENT, "namespace": NAMESPACE}
    container = {
        "name": DEPLOYMENT, "image": image, "imagePullPolicy": pull,
        "command": ["local-path-provisioner", "--debug", "start", "--config",
                    "/etc/config/config.json"],
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config/"}],
        "env": [{"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"}],
    }
    class_meta: dict[str, Any] = {"name": CLASS}
    if addon.default:
        class_meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        *_rbac_docs(addon),
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
         "data": {"config.json": config_json(addon), "setup": SETUP, "teardown": TEARDOWN,
                  "helperPod.yaml": helper_pod(helper, pull)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": 1, "selector": {"matchLabels": dict(LABELS)},
                  "template": {"metadata": {"labels": dict(LABELS)},
                               "spec": {"serviceAccountName": SERVICE_ACCOUNT,
                                        "containers": [container],
                                        "volumes": [{"name": "config-volume",
                                                     "configMap": {"name": CONFIGMAP}}]}}}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": class_meta,
         "provisioner": PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer",
         "reclaimPolicy": "Delete"},
    ]
