"""Emitter: ``upgrade-plan.json`` and ``upgrade-plan.txt``, what ``apply`` runs before the
bootstrap plan when the cluster runs an older release than the file names (one minor or a
patch up; targets/version_change.py decides). Only for `install bundle`: the new release's
binaries and images come from the file's bundle.

kubeadm's documented order (kubeadm-upgrade.md), one node at a time:

* ``upgrade-prepare``, every node at once: the new kubeadm, and the new release's images
  imported and pinned. Nothing runs them yet, but ``kubeadm upgrade apply`` rolls kube-proxy
  (a DaemonSet) and CoreDNS onto every node at once, and no node can pull them.
  ``kubeadm upgrade plan`` on the first control plane checks the cluster can go.
* ``upgrade-nodes``, the first control plane, then the others, then the workers, each
  waiting for the one before to be back: ``kubeadm upgrade apply vX`` (first) or
  ``kubeadm upgrade node``, drain, the node's new binaries (kubelet, kubectl, containerd,
  runc, CNI plugins) and units, containerd and the kubelet restarted, the node Ready at the
  new version, uncordoned. The kubelet and kubectl change only in the node's own turn: a
  kubelet may not be newer than the API servers it talks to.

Every step has a check, so an interrupted upgrade converges when ``apply`` runs again: a
control plane whose API server manifest names the new release has been upgraded, a node
whose kubelet reports it needs no drain, a service whose running program is the installed
file needs no restart. Drains, waits and uncordons run on the first control plane
(``admin.conf``); the node being drained keeps its DaemonSet pods.
"""

from __future__ import annotations

import shlex
from typing import Any

from kubeforge.compiler.artifacts import Artifact, BuildContext
from kubeforge.compiler.emit import plan_bundle
from kubeforge.compiler.emit.plan import (INIT_MARKER, KUBECTL, RUNTIME_SERVICES, _inputs,
                                          _PlanMaker, _wait, ignore_flags)
from kubeforge.compiler.ir import ClusterNode
from kubeforge.compiler.plan import Command, Plan, PlanError, probe, render_text

PHASES = ("upgrade-prepare", "upgrade-nodes")
DRAIN_TIMEOUT = 300
READY_TIMEOUT = 600


def _running_installed(service: str, binary: str) -> str:
    """The service runs, and runs the file now installed: a program replaced on disk shows
    as ``PATH (deleted)`` in /proc/PID/exe until its service restarts."""
    pid = f"$(systemctl show -p MainPID --value {service})"
    return (f"systemctl is-active --quiet {service} && "
            f"[ \"$(readlink /proc/{pid}/exe)\" = {binary} ]")


def _kubelet_version(node: str) -> str:
    return (f"{shlex.join(KUBECTL)} get node {node} "
            "-o jsonpath='{.status.nodeInfo.kubeletVersion}'")


class _UpgradeMaker:
    def __init__(self, maker: _PlanMaker, bundle: Any) -> None:
        self.m = maker
        self.bundle = bundle
        self.tag = f"v{maker.c.version}"
        self.first = maker.first
        control_planes = [n for n in maker.k8s if n.is_control_plane]
        self.order = [self.first, *(n for n in control_planes if n != self.first),
                      *(n for n in maker.k8s if not n.is_control_plane)]
        self.imports: list[str] = []

    def add(self, node: ClusterNode, phase: str, name: str, action, **kw: Any) -> str:
        return self.m.add(node, phase, name, action, **kw)

    def prepare(self, node: ClusterNode) -> None:
        kubeadm = [f for role in plan_bundle.roles(self.m, node)
                   for f in self.bundle.manifest.files_for(role)
                   if f.install == "/usr/local/bin/kubeadm"][:1]
        for entry in kubeadm:
            plan_bundle.upload_file(self.m, node, "upgrade-prepare", entry.install,
                                    self.bundle.source(entry.path), entry.sha256, entry.mode)
        self.imports += plan_bundle.images(self.m, self.bundle, node, "upgrade-prepare", [])

    def check_first(self) -> str:
        return self.add(
            self.first, "upgrade-prepare", "kubeadm-upgrade-plan",
            Command(argv=("kubeadm", "upgrade", "plan", self.tag), timeout=300),
            check=probe(self._apiserver_at_new()),
            needs=self.m.b.ids(self.first.name, "upgrade-prepare"),
            why="kubeadm's own check that the cluster is healthy and may go to "
                f"{self.tag}; skipped once the first control plane runs it",
            requires=("kubeadm",))

    def _apiserver_at_new(self) -> str:
        return f"grep -q 'kube-apiserver:{self.tag}$' {INIT_MARKER}"

    def turn(self, node: ClusterNode, after: list[str]) -> str:
        """``node``'s upgrade; returns the step the next node waits for."""
        phase, first = "upgrade-nodes", self.first
        upgraded = f"[ \"$({_kubelet_version(node.name)})\" = {self.tag} ]"
        ignores = self.m.preflight_ignores(node)
        # kubeforge owns the certificates and kubeconfigs (`kubeforge certs renew`): ones
        # kubeadm renewed would differ from the build, and the apply after the upgrade would
        # put the build's back under components that read kubeadm's.
        flag = ("--certificate-renewal=false", *ignore_flags(ignores))
        if node == first:
            argv = ("kubeadm", "upgrade", "apply", self.tag, "--yes", *flag)
            why = ("the control plane's static pods, etcd's, the cluster's kubelet and "
                   "kubeadm configuration, kube-proxy and CoreDNS, to the new release")
        else:
            argv = ("kubeadm", "upgrade", "node", *flag)
            why = ("this node's static pods (a control plane) and its kubelet "
                   "configuration, from what `upgrade apply` stored in the cluster")
        done = self._apiserver_at_new() if node.is_control_plane else \
            f"kubelet --version | grep -qx 'Kubernetes {self.tag}'"
        kubeadm = self.add(node, phase, "kubeadm-upgrade", Command(
            argv=argv, timeout=900, retry_safe=False, ignore_preflight_errors=ignores),
            check=probe(done), needs=after, why=why, requires=("kubeadm",))
        drain = self.m.b.add(
            first.name, phase, f"drain-{node.name}",
            Command(argv=(*KUBECTL, "drain", node.name, "--ignore-daemonsets",
                          "--delete-emptydir-data", f"--timeout={DRAIN_TIMEOUT}s"),
                    timeout=DRAIN_TIMEOUT + 60),
            check=probe(upgraded), needs=[kubeadm],
            why="its pods move to other nodes (their disruption budgets allow it) before "
                "its kubelet and runtime restart", chain=False)
        files = plan_bundle.upload_host_files(self.m, self.bundle, node, phase)
        for upload in files:
            self.m.b.drafts[upload].needs.append(drain)
        restarts = []
        runtime = RUNTIME_SERVICES[self.m.c.runtime]
        for service in (runtime, "kubelet"):
            binary = f"/usr/local/bin/{service}"
            restarts.append(self.add(node, phase, f"restart-{service}", Command(
                shell=f"systemctl daemon-reload && systemctl restart {service}", timeout=120),
                check=probe(_running_installed(service, binary)), needs=[*files, *restarts],
                why=f"runs the {self.tag} bundle's {service} from here on"))
        ready = self.m.b.add(
            first.name, phase, f"ready-{node.name}",
            _wait(f"{upgraded} && {shlex.join(KUBECTL)} get node {node.name} -o jsonpath="
                  "'{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True",
                  READY_TIMEOUT),
            needs=restarts, why=f"Ready with a {self.tag} kubelet before the next node goes",
            chain=False)
        return self.m.b.add(
            first.name, phase, f"uncordon-{node.name}",
            Command(argv=(*KUBECTL, "uncordon", node.name)),
            # Schedulable only by an answer: a kubectl that failed (the API restarting) also
            # prints nothing, and must not pass for an uncordoned node.
            check=probe(f"out=$({shlex.join(KUBECTL)} get node {node.name} "
                        "-o jsonpath='{.spec.unschedulable}') && [ -z \"$out\" ]"),
            needs=[ready], why="takes pods again", chain=False)

    def build(self) -> Plan:
        for node in self.order:
            self.prepare(node)
        after = [self.check_first(), *self.imports]
        for node in self.order:
            after = [self.turn(node, after)]
        return self.m.b.finish(PHASES)


def build_upgrade_plan(ctx: BuildContext) -> Plan | None:
    """The upgrade to the file's release, or None without a bundle to take it from."""
    inputs = _inputs(ctx.cluster, ctx.artifacts, ctx.shared)
    if inputs.bundle is None:
        return None
    return _UpgradeMaker(_PlanMaker(ctx.cluster, inputs), inputs.bundle).build()


def emit(ctx: BuildContext) -> list[Artifact]:
    plan = build_upgrade_plan(ctx)
    if plan is None:
        return []
    outputs = {"upgrade-plan.json": plan.to_json(), "upgrade-plan.txt": render_text(plan)}
    for name, text in outputs.items():
        if "PRIVATE KEY" in text:
            raise PlanError(f"{name} would contain key material")
    return [Artifact(name, text.encode()) for name, text in outputs.items()]
