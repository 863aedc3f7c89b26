"""Emitter (runs last): ``plan.json`` and ``plan.txt``, the bootstrap DAG of reference section 4.

Every artifact with a node becomes exactly one upload, placed in the phase of the component
that reads it; commands and services come from the IR and from what earlier emitters
published in ``ctx.shared`` (``install``, ``loadbalancer``, ``etcd``,
``node_labels_after_join``), with fallbacks derived from the artifacts so the plan stays
complete when one of them is absent. Inside a phase, a host's uploads come first, then the
package install (``--force-confold`` keeps the files just uploaded, so a package's first
start already uses them), then commands and services. Consecutive phases of one host are
chained; steps across hosts are linked only where the bootstrap needs it:

* ``kubeadm init`` (first control plane) needs every load-balancer service and every
  external etcd member healthy, so the endpoint answers when init talks through it.
* Every worker join needs only ``api-ready`` (the first control plane answering ``/readyz``
  through the endpoint): the load balancer sends it to whichever API server is healthy.
  Control-plane joins run one after another (each also needs the previous one): kubeadm
  adds a stacked etcd member as a learner first, and etcd takes one learner at a time.
* CNI, addons and workloads run on the first control plane after ``api-ready``; ``verify``
  waits for every node.

Idempotency probes for ``kubeadm init``/``join`` test the file whose presence makes
kubeadm's own preflight refuse a second run (``manifests/kube-apiserver.yaml`` for init,
``kubelet.conf`` for join), never a file kubeforge uploads itself. No kubeadm step ignores a
preflight error unless a node declares fewer CPUs or less memory than kubeadm demands of a
control plane: files that would trip join preflight are staged or uploaded after the join.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import SimpleNamespace
from typing import Any, Iterable

from kubeforge.compiler import versions
from kubeforge.compiler.artifacts import Artifact, BuildContext, content_digest
from kubeforge.compiler import hostport
from kubeforge.compiler.emit import originals, plan_backup, plan_bundle
from kubeforge.compiler import addon_storage
from kubeforge.compiler.addon_storage import REMOTE_ADDONS
from kubeforge.compiler.emit.cni import REMOTE_CNI
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.plan import (ALWAYS, PHASES, Action, Check, Command, Plan, PlanError,
                                     PlanHost, PreflightIgnore, Service, Step, Upload, probe,
                                     render_text)
from kubeforge.dsl.ast import is_ip

ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBECTL = ("kubectl", "--kubeconfig", ADMIN_CONF)
KUBEADM_DIR = "/etc/kubernetes/kubeadm"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
STAGING_DIR = "/etc/kubernetes/kubeforge/static-pods"
REMOTE_WORKLOADS = "/etc/kubernetes/kubeforge/manifests"
ETCD_PKI = "/etc/kubernetes/pki/etcd"
#: Written by `kubeadm init` itself; init preflight refuses to run again once it exists.
INIT_MARKER = f"{MANIFESTS_DIR}/kube-apiserver.yaml"
#: Written by the kubelet after TLS bootstrap; join preflight refuses to run once it exists.
JOIN_MARKER = "/etc/kubernetes/kubelet.conf"
#: Files kubeforge places before `kubeadm init` and kubeadm then rewrites.
KUBEADM_OWNED = ("/etc/kubernetes/kubelet.conf",)
#: Join preflight (FileAvailable--...) refuses these on any joining node.
JOIN_FORBIDDEN = ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf")
APT_INSTALL = ("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
               "-o Dpkg::Options::=--force-confold")

#: Where each CNI comes from when no bundle provides its manifest (`cni NAME version "..."`
#: overrides the version). Cilium publishes no plain manifest; its CLI renders one.
CNI_SOURCES = {
    "calico": ("v3.28.2",
               "https://raw.githubusercontent.com/projectcalico/calico/{v}/manifests/calico.yaml"),
    "flannel": ("v0.25.7",
                "https://github.com/flannel-io/flannel/releases/download/{v}/kube-flannel.yml"),
    "cilium": ("1.16.3", None),
}

#: Path prefix -> phase, first match wins; anything else lands in os-prepare, before any
#: component could read it.
PHASE_BY_PREFIX: tuple[tuple[tuple[str, ...], str], ...] = (
    (("/etc/kubernetes/pki/",), "pki"),
    ((KUBEADM_DIR + "/",), "kubeadm"),
    ((STAGING_DIR + "/",), "loadbalancer"),  # staged files may land any time; the copy is timed
    ((MANIFESTS_DIR + "/",), "static-pod"),
    ((REMOTE_CNI + "/",), "cni"),
    ((REMOTE_ADDONS + "/",), "addons"),
    ((REMOTE_WORKLOADS + "/",), "workloads"),
    (("/etc/haproxy/", "/etc/keepalived/", "/etc/systemd/system/haproxy",
      "/etc/systemd/system/keepalived"), "loadbalancer"),
    (("/etc/etcd/", "/etc/default/etcd", "/etc/systemd/system/etcd", "/var/lib/etcd",
      *plan_backup.PATHS), "etcd"),
    (("/etc/containerd/", "/etc/crio/", "/etc/crictl.yaml", "/etc/systemd/system/containerd",
      "/etc/systemd/system/crio", "/etc/systemd/system/kubelet", "/etc/default/kubelet",
      "/var/lib/kubelet/", "/etc/cni/", "/opt/cni/", "/usr/local/bin/", "/usr/local/sbin/",
      plan_bundle.IMAGES_DIR + "/"), "runtime"),
    (("/etc/kubernetes/",), "pki"),  # kubeconfigs travel with the certificates they embed
)

RUNTIME_SERVICES = {"containerd": "containerd", "cri-o": "crio"}
RUNTIME_PACKAGES = {"containerd": "containerd", "cri-o": "cri-o"}
RUNTIME_BINARIES = {"containerd": "containerd", "cri-o": "crio"}
K8S_BINARIES = ("kubeadm", "kubelet", "kubectl", "crictl")
#: How to tell that what a module provides is there, loaded or built into the kernel.
KERNEL_FEATURES = {"overlay": "grep -qw overlay /proc/filesystems",
                   "br_netfilter": "test -d /proc/sys/net/bridge"}
#: Programs kubeforge expects to own the ports it checks (ss truncates names to 15 chars).
PORT_OWNERS = ("etcd", "haproxy", "keepalived", "kube-apiserver", "kube-controller",
               "kube-proxy", "kube-scheduler", "kubelet")
MIN_CPUS, MIN_MEMORY_MIB = 2, 1700  # kubeadm's NumCPU and Mem preflight checks


def phase_of(path: str) -> str:
    for prefixes, phase in PHASE_BY_PREFIX:
        if path.startswith(prefixes):
            return phase
    return "os-prepare"


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "-")


def _sh_and(*conditions: str) -> str:
    return " && ".join(conditions)


def _wait(condition: str, seconds: int) -> Command:
    """A command that polls ``condition`` every 5 s until it holds or ``seconds`` pass."""
    return Command(argv=("timeout", str(seconds), "sh", "-c",
                         f"until {condition}; do sleep 5; done"), timeout=seconds + 30)


# ================================================================================ builder


@dataclass
class _Draft:
    host: str
    phase: str
    name: str
    action: Action
    check: Check
    needs: list[str]
    why: str
    chain: bool  # False: kept out of the host's phase chain (runs on a host for another)
    requires: tuple[str, ...] = ()  # programs the step runs that a host may lack (kubeadm)

    @property
    def id(self) -> str:
        return f"{self.host}/{self.phase}/{self.name}"


@dataclass
class _Builder:
    cluster: Cluster
    digest_key: bytes | None = None
    drafts: dict[str, _Draft] = field(default_factory=dict)
    # (host, phase) -> ids in the order added: asked per host and phase, so a scan of every
    # draft per question made big clusters quadratic.
    _ids: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, host: str, phase: str, name: str, action: Action, check: Check = ALWAYS,
            needs: Iterable[str] = (), why: str = "", chain: bool = True,
            requires: tuple[str, ...] = ()) -> str:
        draft = _Draft(host, phase, name, action, check, list(dict.fromkeys(needs)), why, chain,
                       requires)
        if draft.id in self.drafts:
            raise PlanError(f"two plan steps are called {draft.id}")
        self.drafts[draft.id] = draft
        self._ids.setdefault((host, phase), []).append(draft.id)
        return draft.id

    def upload(self, host: str, phase: str, art: Artifact, path: str,
               needs: Iterable[str] = (), mode: int | None = None, secret: bool = False) -> str:
        secret = secret or art.secret
        mode = mode if mode is not None else (0o600 if secret else art.mode)
        digest = content_digest(art.content, secret, self.digest_key)
        action = Upload(path, art.path, digest, mode, art.owner, secret)
        check = Check("sha256", digest)
        if path in KUBEADM_OWNED:
            # Placed once; kubeadm rewrites it afterwards (init's kubelet-finalize phase points
            # kubelet.conf at the kubelet's rotating client certificate), so putting ours back
            # on every apply would undo that.
            check = probe(f"test -f {path}")
        return self.add(host, phase, "upload-" + _slug(path), action, check, needs)

    def ids(self, host: str, phase: str) -> list[str]:
        return list(self._ids.get((host, phase), ()))

    def finish(self, phases: tuple[str, ...] = PHASES) -> Plan:
        self._chain_hosts(phases)
        hosts = [PlanHost(n.name, str(n.address), n.roles) for n in self.cluster.nodes]
        steps = [Step(d.id, d.host, d.phase, d.action, d.check, tuple(d.needs), d.why,
                      requires=d.requires)
                 for d in self.drafts.values()]
        return Plan.ordered(self.cluster.name, hosts, steps, phases)

    def _chain_hosts(self, phases: tuple[str, ...]) -> None:
        """Each host's first steps of a phase need the last steps of its previous phase."""
        for node in self.cluster.nodes:
            previous: list[str] = []
            for phase in phases:
                layer = [i for i in self.ids(node.name, phase) if self.drafts[i].chain]
                if not layer:
                    continue
                inside = set(layer)
                for i in layer:
                    if not inside.intersection(self.drafts[i].needs):
                        self.drafts[i].needs[:0] = [p for p in previous
                                                    if p not in self.drafts[i].needs]
                needed = {n for i in layer for n in self.drafts[i].needs}
                previous = [i for i in layer if i not in needed]


# ================================================================================ inputs


@dataclass(frozen=True)
class _Inputs:
    """What the plan reads besides the IR, with fallbacks for emitters that did not run."""

    files: dict[str, list[Artifact]]  # node -> artifacts placed on it
    workloads: list[Artifact]  # manifests/NN-*.yaml at the build root
    bundle: Any  # compiler.emit.bundle.BundleInput of `install bundle path`, or None
    install: Any
    loadbalancer: Any
    etcd: Any
    labels: dict[str, tuple[tuple[str, str], ...]]
    digest_key: bytes | None = None  # for the keyed digests of secret uploads

    def paths(self, node: str, prefixes: tuple[str, ...]) -> list[str]:
        return [a.host_path for a in self.files.get(node, []) if a.host_path.startswith(prefixes)]


def _inputs(cluster: Cluster, artifacts: Iterable[Artifact], shared: dict[str, Any]) -> _Inputs:
    files: dict[str, list[Artifact]] = {}
    workloads, seen = [], set()
    known = {n.name for n in cluster.nodes}
    for art in artifacts:
        if art.path in seen:  # write_artifacts refuses conflicting duplicates
            continue
        seen.add(art.path)
        if art.node is not None:
            if art.node not in known:
                raise PlanError(f"{art.path} is for node {art.node}, which the cluster lacks")
            files.setdefault(art.node, []).append(art)
        elif re.fullmatch(r"manifests/[^/]+\.ya?ml", art.path):
            workloads.append(art)
    workloads.sort(key=lambda a: a.path)  # NN- prefixes give the apply order

    method = cluster.install.method
    install = shared.get("install") or SimpleNamespace(
        method=method, version=cluster.version, keyring=None, keyring_url=None,
        packages=() if method in ("preinstalled", "bundle") else (
            RUNTIME_PACKAGES[cluster.runtime], "kubeadm", "kubelet", "kubectl"))
    lb = shared.get("loadbalancer")
    if lb is None:
        # Services run wherever a configuration for them landed.
        lb_mode = cluster.loadbalancer
        as_services = lb_mode.deploy_as == "services" \
            and lb_mode.mode in ("keepalived-haproxy", "local-proxy")
        services = tuple(s for s in ("haproxy", "keepalived") if as_services and any(
            a.host_path.startswith(f"/etc/{s}/") for arts in files.values() for a in arts))
        nodes = tuple(n.name for n in cluster.nodes if services and any(
            a.host_path.startswith("/etc/haproxy/") for a in files.get(n.name, [])))
        lb = SimpleNamespace(nodes=nodes, packages=services, services=services, static_pods=())
    etcd = shared.get("etcd") or SimpleNamespace(
        topology=cluster.etcd, nodes=tuple(n.name for n in cluster.etcd_nodes),
        packages=("etcd-server", "etcd-client") if cluster.etcd == "external" else (),
        services=("etcd",) if cluster.etcd == "external" else ())
    state = shared.get("state")
    return _Inputs(files, workloads, shared.get("bundle"), install, lb, etcd,
                   dict(shared.get("node_labels_after_join") or {}),
                   state.digest_key() if state is not None else None)


# ================================================================================ the plan


def runs_kubernetes(node: ClusterNode) -> bool:
    """A kubelet node (what ``_PlanMaker.k8s`` lists): asked per node and step, so not as
    ``node in self.k8s``, which compared the node with every other (quadratic in nodes)."""
    return node.is_control_plane or node.is_worker


class _PlanMaker:
    """Builds the steps phase by phase, so a step can need anything of an earlier phase."""

    def __init__(self, cluster: Cluster, inputs: _Inputs) -> None:
        self.c = cluster
        self.i = inputs
        self.b = _Builder(cluster, inputs.digest_key)
        self._staged_pods: dict[tuple[str, str], Any] | None = None
        first = cluster.first_control_plane
        if first is None:
            raise PlanError("the cluster has no control-plane node to initialise")
        self.first = first
        self.k8s = [n for n in cluster.nodes if runs_kubernetes(n)]
        self.etcd_members = [n for n in cluster.nodes
                             if inputs.etcd.topology == "external" and n.name in inputs.etcd.nodes]
        self.uploads: dict[tuple[str, str], list[str]] = {}  # (host, phase) -> upload ids
        self.deferred: dict[str, list[Artifact]] = {}  # node -> uploads after its kubeadm step
        self.lb_services: list[str] = []
        self.etcd_health: list[str] = []
        self.joins: list[str] = []
        self.labels: list[str] = []
        self.api_ready = ""
        self.proxy_after_join = set(getattr(inputs.loadbalancer, "after_join", ()))

    # -- helpers ----------------------------------------------------------------------------
    def role(self, node: ClusterNode) -> str:
        if node == self.first:
            return "init"
        if node.is_control_plane:
            return "control-plane-join"
        if node.is_worker:
            return "workers-join"
        return "other"

    def kubeadm_phase(self, node: ClusterNode) -> str:
        role = self.role(node)
        return {"init": "control-plane-init", "other": "etcd"}.get(role, role)

    def staged_pods(self) -> dict[tuple[str, str], Any]:
        """Static pods kubeforge stages and moves into place; the same answer for every
        node that asks, so found once."""
        if self._staged_pods is None:
            self._staged_pods = self._find_staged_pods()
        return self._staged_pods

    def _find_staged_pods(self) -> dict[tuple[str, str], Any]:
        pods = {(p.node, p.staged): p for p in self.i.loadbalancer.static_pods}
        for node, arts in self.i.files.items():
            for art in arts:
                staged = art.host_path.startswith(STAGING_DIR + "/")
                if staged and (node, art.host_path) not in pods:
                    when = "after-init" if node == self.first.name else "after-join"
                    target = f"{MANIFESTS_DIR}/{PurePosixPath(art.host_path).name}"
                    pods[(node, art.host_path)] = SimpleNamespace(
                        node=node, staged=art.host_path, target=target, when=when)
        return pods

    def place_uploads(self) -> None:
        """Sort every node file into (node, phase), or after the node's kubeadm step."""
        for node in self.c.nodes:
            role = self.role(node)
            for art in self.i.files.get(node.name, []):
                path = art.host_path
                phase = phase_of(path)
                joining = role in ("control-plane-join", "workers-join")
                if joining and path in JOIN_FORBIDDEN:
                    raise PlanError(
                        f"{art.path}: `kubeadm join` preflight refuses a pre-placed {path} "
                        "(the kubelet writes it after TLS bootstrap); do not emit it for "
                        f"joining node {node.name}")
                if phase == "static-pod":
                    # init only minds its own four manifests; join wants the directory empty.
                    phase = "loadbalancer" if role == "init" else "after-kubeadm"
                if role == "workers-join" and path == "/etc/kubernetes/pki/ca.crt":
                    phase = "after-kubeadm"  # worker join preflight refuses caCertPath
                if phase == "kubeadm":
                    phase = self.kubeadm_phase(node)
                if phase == "loadbalancer" and node.name in self.proxy_after_join:
                    phase = "after-kubeadm"  # it joins without its proxy (loadbalancer emitter)
                if phase == "after-kubeadm":
                    self.deferred.setdefault(node.name, []).append(art)
                else:
                    self.uploads.setdefault((node.name, phase), []).append(
                        self.b.upload(node.name, phase, art, path))
        for art in self.i.workloads:
            # Secret manifests stay 0600 on the host as in the build directory.
            secret = art.secret or re.search(rb"(?m)^kind:\s*Secret\s*$", art.content) is not None
            self.uploads.setdefault((self.first.name, "workloads"), []).append(self.b.upload(
                self.first.name, "workloads", art,
                f"{REMOTE_WORKLOADS}/{PurePosixPath(art.path).name}", secret=secret))

    def path(self, upload_id: str) -> str:
        return self.b.drafts[upload_id].action.path

    def paths(self, upload_ids: Iterable[str]) -> list[str]:
        return [self.path(i) for i in upload_ids]

    def ups(self, node: ClusterNode, phase: str, prefixes: tuple[str, ...] = ("/",)) -> list[str]:
        ids = self.uploads.get((node.name, phase), [])
        return [i for i in ids if self.path(i).startswith(prefixes)]

    def add(self, node: ClusterNode, phase: str, name: str, action: Action, **kw: Any) -> str:
        return self.b.add(node.name, phase, name, action, **kw)

    def install(self, node: ClusterNode, phase: str, packages: Iterable[str],
                needs: list[str], quiet_start: bool = False) -> list[str]:
        """apt-get install of ``packages`` unless the method is `preinstalled`; returns the
        step ids later steps of the phase need."""
        packages = tuple(packages)
        if not packages or self.i.install.method in ("preinstalled", "bundle"):
            return needs
        version = self.i.install.version
        pinned = {"kubeadm", "kubelet", "kubectl"}
        checks = [f"dpkg-query -W -f='${{Version}}' {p} 2>/dev/null | grep -q '^{version}-'"
                  if p in pinned else
                  f"dpkg-query -W -f='${{db:Status-Status}}' {p} 2>/dev/null | grep -qx installed"
                  for p in packages]
        command = f"{APT_INSTALL} {' '.join(packages)}"
        if pinned.intersection(packages):
            why = f"apt prefers {version} as pinned in /etc/apt/preferences.d"
        else:
            why = "distribution packages; the configuration uploaded above is kept"
        if quiet_start:
            # A Type=notify etcd member blocks `systemctl start` until a quorum exists, so
            # the package's postinst must not start it: policy-rc.d (exit 101) forbids that,
            # and the service step starts every member without blocking.
            command = ("trap 'rm -f /usr/sbin/policy-rc.d' EXIT; "
                       "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; "
                       "chmod 0755 /usr/sbin/policy-rc.d; " + command)
            why += "; policy-rc.d keeps the package from starting etcd before all members can"
        return [self.add(node, phase, "install-packages", Command(shell=command, timeout=900),
                         check=probe(_sh_and(*checks)), needs=needs, why=why)]

    def service(self, node: ClusterNode, phase: str, name: str, needs: list[str],
                restart_on: Iterable[str] = (), state: str | None = "started",
                no_block: bool = False, why: str = "") -> str:
        restart_on = tuple(restart_on)
        check = f"systemctl is-enabled --quiet {name}"
        if state == "started":
            check += f" && systemctl is-active --quiet {name}"
        return self.add(node, phase, f"service-{name}",
                        Service(name, True, state, restart_on, no_block), check=probe(check),
                        needs=[*needs, *restart_on], why=why)

    def copy_static_pod(self, node: ClusterNode, phase: str, pod: Any, needs: list[str]) -> str:
        art = next(a for a in self.i.files[node.name] if a.host_path == pod.staged)
        owner, _, group = art.owner.partition(":")
        test = f"cmp -s {pod.staged} {pod.target}"
        why = {"before-init": "static pod the kubelet starts during `kubeadm init`; once init "
                              "has run, its job is done (a later manifest may replace it)",
               "after-init": "replaces the init-time manifest now that admin.conf has RBAC rights",
               "after-join": "copied only now: `kubeadm join` preflight wants /etc/kubernetes/"
                             "manifests empty (DirAvailable--etc-kubernetes-manifests)"
               }[pod.when]
        if pod.when == "before-init":
            test = f"test -f {INIT_MARKER} || {test}"
        return self.add(node, phase, "static-pod-" + PurePosixPath(pod.staged).name,
                        Command(argv=("install", "-D", "-m", f"{art.mode:04o}", "-o", owner,
                                      "-g", group or owner, pod.staged, pod.target)),
                        check=probe(test), needs=needs, why=why)

    # -- phases -----------------------------------------------------------------------------
    def preflight(self, node: ClusterNode) -> None:
        k8s = runs_kubernetes(node)
        method = self.i.install.method
        self.add(node, "preflight", "root", Command(shell='[ "$(id -u)" -eq 0 ]', timeout=10),
                 why="kubeadm, apt and the uploads need root (ansible_become / sudo)")
        binaries = {"awk", "cmp", "grep", "install", "sed", "sha256sum", "ss", "systemctl",
                    "timeout"}
        if k8s:
            binaries |= {"modprobe", "swapoff", "swapon", "sysctl"}
            if method == "preinstalled":
                # kubeadm, kubelet, kubectl and crictl are checked in the phase that runs
                # them (see `kubeadm`), so `apply --until` can stop before that phase on
                # hosts that do not have them yet.
                binaries.add(RUNTIME_BINARIES[self.c.runtime])
            elif method == "bundle":
                binaries |= {"mount", "iptables"}  # the kubelet's and kube-proxy's own needs
            else:
                binaries.add("apt-get")
                if getattr(self.i.install, "keyring_url", None):
                    binaries |= {"curl", "gpg"}
        if node.name in self.i.loadbalancer.nodes and method == "preinstalled":
            binaries |= set(self.i.loadbalancer.services)
        if node in self.etcd_members:
            binaries |= {"etcd", "etcdctl"} if method == "preinstalled" else \
                set() if method == "bundle" else {"apt-get"}
        if method == "preinstalled" and plan_backup.has_policy(self, node):
            binaries.add("etcdctl")  # the backup timer's snapshots
        if node == self.first and self.c.cni == "cilium" and not self.bundled_cni():
            binaries.add("cilium")
        names = " ".join(sorted(binaries))
        self.add(node, "preflight", "binaries", Command(
            shell=f'rc=0; for b in {names}; do command -v "$b" >/dev/null '
                  f'|| {{ echo "missing: $b"; rc=1; }}; done; exit $rc', timeout=10),
            why="fail before changing anything if a program a later step runs is missing")
        if k8s:
            self.cgroup_check(node)
            self.add(node, "preflight", "swap", Command(
                shell="! grep -q '^/dev/zram' /proc/swaps || { echo 'zram swap comes back at "
                      "boot (zram-generator): remove it first'; exit 1; }", timeout=10),
                why="os-prepare turns swap off (kubelet failSwapOn); swap on zram would return "
                    "at the next boot, so it must be removed by hand")
        ports = self.ports(node)
        if ports:
            pattern = "|".join(str(p) for p in ports)
            owners = "|".join(PORT_OWNERS)
            self.add(node, "preflight", "ports", Command(
                shell=f"busy=$(ss -Htlnp | awk '$4 ~ /:({pattern})$/' "
                      f"| grep -vE '\\(\\(\"({owners})\"'); [ -z \"$busy\" ] "
                      f"|| {{ echo \"ports taken by other programs:\"; echo \"$busy\"; exit 1; }}",
                timeout=10),
                why="listeners owned by Kubernetes, etcd or the load balancer are fine, so a "
                    "re-apply passes")
        if node.is_control_plane:
            tests = []
            if not (node.cpus is not None and node.cpus < MIN_CPUS):
                tests.append(f'[ "$(nproc)" -ge {MIN_CPUS} ]')
            if not (node.memory_mib is not None and node.memory_mib < MIN_MEMORY_MIB):
                tests.append(f"awk '/^MemTotal:/ {{ exit ($2 < {MIN_MEMORY_MIB} * 1024) }}' "
                             "/proc/meminfo")
            if tests:
                self.add(node, "preflight", "resources", Command(shell=_sh_and(*tests),
                                                                 timeout=10),
                         why=f"kubeadm requires {MIN_CPUS} CPUs and {MIN_MEMORY_MIB} MiB on a "
                             "control plane (NumCPU, Mem)")

    def ports(self, node: ClusterNode) -> list[int]:
        ports: set[int] = set()
        if node.is_control_plane:
            ports |= {6443, 10250, 10257, 10259}
            if self.c.etcd == "stacked":
                ports |= {2379, 2380}
        elif node.is_worker:
            ports |= {10250, 10256}
        if node in self.etcd_members:
            ports |= {2379, 2380}
        if node.name in self.i.loadbalancer.nodes and self.i.loadbalancer.services:
            ports.add(self.c.loadbalancer.port)
        return sorted(ports)

    def os_prepare(self, node: ClusterNode) -> None:
        ups = self.ups(node, "os-prepare")
        install = self.i.install
        if runs_kubernetes(node) and getattr(install, "keyring_url", None):
            key = self.add(node, "os-prepare", "apt-key", Command(
                shell=f"install -d -m 0755 {PurePosixPath(install.keyring).parent} && "
                      f"curl -fsSL {install.keyring_url} "
                      f"| gpg --dearmor --yes -o {install.keyring}",
                timeout=120), check=probe(f"test -s {install.keyring}"), needs=ups,
                why="the pkgs.k8s.io repository key (the source list was uploaded above)")
            known = f"apt-cache madison kubeadm | grep -q ' {install.version}-'"
            self.add(node, "os-prepare", "apt-update",
                     Command(argv=("apt-get", "update"), timeout=300),
                     check=probe(known), needs=[key])
        if runs_kubernetes(node):
            self.add(node, "os-prepare", "swap-off", Command(
                shell=r"swapoff -a && sed -Ei '/^[^#]\S*\s+\S+\s+swap\s/s/^/# /' /etc/fstab",
                timeout=60),
                check=probe(r'[ -z "$(swapon --noheadings --show)" ] && '
                            r"! grep -Eq '^[^#]\S*\s+\S+\s+swap\s' /etc/fstab"),
                needs=ups, why="the kubelet refuses to start with swap on (failSwapOn); the "
                               "fstab entries are commented out so it stays off after a reboot")
        modules = self.conf_lines(node, "/etc/modules-load.d/")
        if runs_kubernetes(node) and not modules:
            modules = ["overlay", "br_netfilter"]
        loaded = []
        if modules:
            present = [KERNEL_FEATURES.get(m, f"test -d /sys/module/{m}") for m in modules]
            loaded = [self.add(node, "os-prepare", "modprobe", Command(
                shell=" && ".join(f"{{ {test} || modprobe {m}; }}"
                                  for m, test in zip(modules, present, strict=True)),
                timeout=60),
                check=probe(_sh_and(*present)), needs=ups,
                why="load now what /etc/modules-load.d loads at boot; a feature built into "
                    "the kernel (no module file to load) counts as loaded")]
        settings = [tuple(part.strip() for part in line.split("=", 1))
                    for line in self.conf_lines(node, "/etc/sysctl.d/") if "=" in line]
        if settings:
            self.add(node, "os-prepare", "sysctl", Command(argv=("sysctl", "--system")),
                     check=probe(_sh_and(*(f'[ "$(sysctl -n {k})" = {shlex.quote(v)} ]'
                                           for k, v in settings))),
                     needs=[*ups, *loaded],
                     why="apply /etc/sysctl.d now; the bridge settings need br_netfilter loaded")

    def conf_lines(self, node: ClusterNode, prefix: str) -> list[str]:
        """Meaningful lines of the (non-secret) config files under ``prefix`` on ``node``."""
        lines: list[str] = []
        for art in self.i.files.get(node.name, []):
            if art.host_path.startswith(prefix) and not art.secret:
                for line in art.content.decode().splitlines():
                    line = line.split("#", 1)[0].strip()
                    if line and line not in lines:
                        lines.append(line)
        return lines

    def runtime(self, node: ClusterNode) -> None:
        if not runs_kubernetes(node):
            return
        bundle = self.i.bundle
        if bundle is not None:
            plan_bundle.upload_host_files(self, bundle, node, "runtime")
            plan_backup.etcd_tools(self, bundle, node, "runtime")
        needs = self.install(node, "runtime", self.i.install.packages, self.ups(node, "runtime"))
        service = RUNTIME_SERVICES[self.c.runtime]
        config = self.ups(node, "runtime", (f"/etc/{service}/", f"/etc/systemd/system/{service}",
                                            f"/usr/local/bin/{service}", "/usr/local/sbin/runc"))
        started = self.service(node, "runtime", service, needs, config,
                               why="the kubelet and kubeadm talk to it over its CRI socket")
        if bundle is not None:
            plan_bundle.images(self, bundle, node, "runtime", [started])

    def loadbalancer(self, node: ClusterNode) -> None:
        lb = self.i.loadbalancer
        needs = self.ups(node, "loadbalancer")
        if node.name in lb.nodes and lb.services and node.name not in self.proxy_after_join:
            self.lb_services += self.lb_service_steps(
                node, "loadbalancer", needs, needs,
                "the endpoint must answer before `kubeadm init` talks through it")
        for pod in self.staged_pods().values():
            if pod.node == node.name and pod.when == "before-init":
                self.copy_static_pod(node, "loadbalancer", pod,
                                     self.ups(node, "loadbalancer", (pod.staged,)))

    def lb_service_steps(self, node: ClusterNode, phase: str, needs: list[str],
                         uploads: list[str], why: str) -> list[str]:
        """Install the load balancer's packages, then enable and start its services
        (restarted when one of their configuration ``uploads`` changed)."""
        lb = self.i.loadbalancer
        needs = self.install(node, phase, lb.packages, needs)
        return [self.service(node, phase, name, needs,
                             [u for u in uploads if self.path(u).startswith(
                                 (f"/etc/{name}/", f"/etc/systemd/system/{name}"))], why=why)
                for name in lb.services]

    def etcd(self, node: ClusterNode) -> None:
        if node not in self.etcd_members:
            return
        etcd = self.i.etcd
        if self.i.bundle is not None:
            plan_bundle.upload_host_files(self, self.i.bundle, node, "etcd")
        ups = self.ups(node, "etcd")
        needs = self.install(node, "etcd", etcd.packages, ups, quiet_start=True)
        certs = self.ups(node, "pki", (ETCD_PKI + "/",))
        for name in etcd.services:
            needs = [self.service(node, "etcd", name, needs, [*ups, *certs], no_block=True,
                                  why="--no-block: a new member is ready only once a quorum "
                                      "exists, so every member starts without waiting")]
        address = hostport.https_url(node.address, 2379)
        check = etcdctl(address, "endpoint", "health", client=self.etcd_client(node))
        self.etcd_health.append(self.add(
            node, "etcd", "health", _wait(_quiet(check), 300),
            needs=needs, why="waits until this member serves with a quorum"))
        plan_backup.timer(self, node, "etcd", [self.etcd_health[-1]])


    def etcd_client(self, node: ClusterNode) -> str:
        """The client certificate an external member holds: the health-check client when the
        PKI emitter made one, else the peer certificate (it carries clientAuth too)."""
        paths = {a.host_path for a in self.i.files.get(node.name, [])}
        return "healthcheck-client" if f"{ETCD_PKI}/healthcheck-client.crt" in paths else "peer"

    def cgroup_check(self, node: ClusterNode) -> None:
        """The host's cgroup version against the cluster's `cgroups` statement: from 1.35 the
        kubelet refuses cgroup v1 unless told otherwise, so this fails before any change."""
        if self.c.cgroups == "v1" or not versions.release(self.c.version).fail_cgroup_v1:
            return
        self.add(node, "preflight", "cgroup-v2", Command(
            shell='[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "this host uses '
                  f'cgroup v1, which the kubelet of Kubernetes 1.{self.c.minor} refuses; move '
                  'it to cgroup v2, or declare `cgroups v1` in the cluster (deprecated '
                  'upstream)"; exit 1; }', timeout=10),
            why="the kubelet refuses cgroup v1 hosts where failCgroupV1 defaults to true "
                "(versions table: 1.35 on)")

    def preflight_ignores(self, node: ClusterNode) -> tuple[PreflightIgnore, ...]:
        ignores = []
        if self.c.cgroups == "v1":
            ignores.append(PreflightIgnore(
                "SystemVerification", "the cluster declares `cgroups v1`: kubeadm's system "
                                      "verification reports cgroup v1 as an error"))
        if node.is_control_plane and node.cpus is not None and node.cpus < MIN_CPUS:
            ignores.append(PreflightIgnore("NumCPU", f"node {node.name} declares {node.cpus} "
                                                     f"CPU, kubeadm wants {MIN_CPUS}"))
        if node.is_control_plane and node.memory_mib is not None \
                and node.memory_mib < MIN_MEMORY_MIB:
            ignores.append(PreflightIgnore("Mem", f"node {node.name} declares "
                                                  f"{node.memory_mib} MiB, kubeadm wants "
                                                  f"{MIN_MEMORY_MIB}"))
        return tuple(ignores)

    def kubeadm(self, node: ClusterNode, verb: str, marker: str, needs: list[str],
                why: str) -> str:
        phase = self.kubeadm_phase(node)
        configs = self.paths(self.ups(node, phase, (KUBEADM_DIR + "/",)))
        config = next((p for p in configs if p.endswith(f"/{verb}.yaml")),
                      configs[0] if configs else f"{KUBEADM_DIR}/{verb}.yaml")
        ignores = self.preflight_ignores(node)
        if self.i.install.method == "preinstalled":
            v = self.c.version
            needs = [*needs, self.add(node, phase, "kubernetes-binaries", Command(
                shell=_sh_and(*(f"command -v {b} >/dev/null" for b in K8S_BINARIES),
                              f"kubeadm version -o short | grep -qx v{v}",
                              f"kubelet --version | grep -qx 'Kubernetes v{v}'"),
                timeout=10), needs=self.ups(node, phase),
                why=f"`install preinstalled` promises kubeadm and kubelet v{v}; checked here, "
                    "not in preflight, so a run can stop before the kubeadm phases")]
        kubelet = self.ups(node, "runtime", ("/etc/default/kubelet", "/etc/systemd/system/kubelet",
                                             "/var/lib/kubelet/", "/usr/local/bin/kubelet"))
        runtime = [i for i in self.b.ids(node.name, "runtime") if i.endswith("/service-"
                   + RUNTIME_SERVICES[self.c.runtime])]
        needs = [*needs, self.service(
            node, phase, "kubelet", [*needs, *runtime], kubelet, state=None,
            why="enabled for boot right before kubeadm, which starts it once "
                "/var/lib/kubelet/config.yaml exists (until then it restarts in a loop, as "
                "expected); here rather than in runtime so a run can stop before the phases "
                "that need Kubernetes packages")]
        argv = ["kubeadm", verb, "--config", config, *ignore_flags(ignores)]
        return self.add(node, phase, f"kubeadm-{verb}",
                        Command(argv=tuple(argv), timeout=900, retry_safe=False,
                                ignore_preflight_errors=ignores),
                        check=probe(f"test -f {marker}"), needs=[*self.ups(node, phase), *needs],
                        why=why, requires=("kubeadm", "kubelet"))

    def after_kubeadm(self, node: ClusterNode, step: str) -> list[str]:
        """Uploads and static-pod copies that must wait for the node's kubeadm step."""
        phase = self.kubeadm_phase(node)
        done = []
        for art in self.deferred.get(node.name, []):
            done.append(self.b.upload(node.name, phase, art, art.host_path, needs=[step]))
        wanted = "after-init" if node == self.first else "after-join"
        for pod in self.staged_pods().values():
            if pod.node == node.name and pod.when == wanted:
                staged = self.ups(node, "loadbalancer", (pod.staged,))
                done.append(self.copy_static_pod(node, phase, pod, [step, *staged]))
        if node.name in self.proxy_after_join:
            done += self.lb_service_steps(
                node, phase, [step, *done], list(done),
                "the node-local proxy: this control plane joined through the first control "
                "plane's API server; from now on its kubeconfigs' endpoint is this proxy")
        return done

    def label(self, node: ClusterNode, needs: list[str]) -> None:
        labels = self.i.labels.get(node.name)
        if labels:
            argv = (*KUBECTL, "label", "node", node.name, "--overwrite",
                    *(f"{k}={v}" for k, v in labels))
            query = " && ".join(
                f"[ \"$({' '.join(KUBECTL)} get node {node.name} -o "
                f"jsonpath='{{.metadata.labels.{_jsonpath_key(k)}}}')\" = {shlex.quote(v)} ]"
                for k, v in labels)
            self.labels.append(self.b.add(
                self.first.name, self.kubeadm_phase(node), f"label-{node.name}",
                Command(argv=argv), check=probe(query), needs=[*needs, self.api_ready],
                why="labels the kubelet may not set on its own Node (NodeRestriction), "
                    "set through the API once the node has joined", chain=False))

    def control_plane_init(self, node: ClusterNode) -> None:
        if node != self.first:
            return
        cross = [*self.lb_services, *self.etcd_health]
        # A VIP from a static pod (kube-vip, or keepalived as a pod) appears only once init
        # has started the kubelet, so only a service or external endpoint is probed before.
        early_pods = any(p.when == "before-init" for p in self.staged_pods().values())
        if self.c.endpoint_host and not early_pods:
            host, port = self.c.endpoint_host, self.c.endpoint_port
            resolve = "" if is_ip(host) else f"getent hosts {host} >/dev/null || exit 1; "
            cross.append(self.add(node, "control-plane-init", "endpoint-reachable", Command(
                shell=f"{resolve}for i in $(seq 30); do "
                      f"out=$(timeout 5 bash -c ': </dev/tcp/{host}/{port}' 2>&1) && exit 0; "
                      f"case \"$out\" in *refused*) exit 0;; esac; sleep 2; done; "
                      f"echo \"endpoint {self.c.endpoint} neither accepts nor refuses: $out\"; "
                      "exit 1",
                timeout=120), needs=[*self.ups(node, "control-plane-init"), *cross],
                why="reference 4.3: before init the endpoint must accept or refuse a "
                    "connection (load balancer up, no backend yet), not time out"))
        init = self.kubeadm(
            node, "init", INIT_MARKER, cross,
            why="no --upload-certs: every control plane already has the shared CA and "
                "service-account keys, so there is no kubeadm-certs Secret and no 2-hour "
                "window. Ignores no preflight error (unless listed): kubeadm adopts the "
                "uploaded certificates and kubeconfigs, and init only minds its own four "
                "manifests")
        after = self.after_kubeadm(node, init)
        if self.i.etcd.topology == "stacked":
            plan_backup.timer(self, node, "control-plane-init", [init, *after])
        self.api_ready = self.add(
            node, "control-plane-init", "api-ready",
            _wait(f"{' '.join(KUBECTL)} get --raw=/readyz >/dev/null 2>&1", 300),
            needs=[init, *after],
            why="admin.conf points at the endpoint, so this proves the load balancer path "
                "every join uses")
        self.label(node, [self.api_ready])

    def join(self, node: ClusterNode) -> None:
        if self.role(node) not in ("control-plane-join", "workers-join"):
            return
        needs = [self.api_ready]
        if node.is_control_plane:
            # One at a time: kubeadm adds each stacked etcd member as a learner first, and
            # etcd allows one learner at a time ("too many learner members"), so parallel
            # joins fail; an external etcd needs no member change but the order is kept.
            needs += [j for j in self.joins if "/control-plane-join/" in j][-1:]
            why = ("after the previous control-plane join: etcd takes one learner member at "
                   "a time; no certificate key: the shared CA and service-account keys were "
                   "uploaded in pki")
        else:
            why = ("needs only the first control plane's API (not the other joins): the load "
                   "balancer routes to whichever API server is healthy")
        why += (". Ignores no preflight error (unless listed): kubelet.conf is left to TLS "
                "bootstrap, static pods and a worker's ca.crt are placed after the join")
        step = self.kubeadm(node, "join", JOIN_MARKER, needs, why)
        self.joins.append(step)
        self.label(node, [step])
        after = self.after_kubeadm(node, step)
        if node.is_control_plane and self.i.etcd.topology == "stacked":
            plan_backup.timer(self, node, self.kubeadm_phase(node), [step, *after])

    def bundled_cni(self) -> list[str]:
        return self.paths(self.ups(self.first, "cni", (REMOTE_CNI + "/",)))

    def cni(self, node: ClusterNode) -> None:
        if node != self.first or self.c.cni == "none":
            return
        bundled = self.bundled_cni()
        version = self.c.cni_version or CNI_SOURCES[self.c.cni][0]
        url = CNI_SOURCES[self.c.cni][1]
        if bundled or url:
            sources = bundled or [url.format(v=version)]
            why = "server-side apply: the CNI's CRDs exceed client-side apply's annotation limit"
            if not bundled:
                why += (f"; fetched from the project's release {version} (put a manifest "
                        "under cni/ in an install bundle for hosts without internet)")
            for n, source in enumerate(sources):
                apply, unchanged = _server_side_apply(source)
                self.add(node, "cni", f"apply-{self.c.cni}" + (f"-{n}" if n else ""),
                         apply, check=unchanged, why=why)
        else:
            self.add(node, "cni", f"install-{self.c.cni}",
                     Command(shell=f"KUBECONFIG={ADMIN_CONF} cilium install --version {version}",
                             timeout=600),
                     check=probe(f"{' '.join(KUBECTL)} -n kube-system get daemonset cilium"),
                     why="Cilium publishes no plain manifest; its CLI renders and applies one")

    def addons(self, node: ClusterNode) -> None:
        if node != self.first:
            return
        applied = []
        for upload in self.ups(node, "addons", (REMOTE_ADDONS + "/",)):
            path = self.path(upload)
            apply, unchanged = _server_side_apply(path)
            applied.append(self.add(
                node, "addons", "apply-" + PurePosixPath(path).name, apply, check=unchanged,
                needs=[upload],
                why="a declared addon, after the CNI and before the workloads that use it"))
        if self.c.cni == "none":
            return
        if self.c.storage is not None:
            self.add(node, "addons", "storage-ready", Command(
                argv=(*KUBECTL, "-n", addon_storage.NAMESPACE, "rollout", "status",
                      f"deployment/{addon_storage.DEPLOYMENT}", "--timeout=300s"), timeout=330),
                needs=applied, why="claims of the workloads that follow are provisioned only once it runs")
        self.add(node, "addons", "coredns-ready", Command(
            argv=(*KUBECTL, "-n", "kube-system", "rollout", "status", "deployment/coredns",
                  "--timeout=600s"), timeout=630),
            why="CoreDNS (kubeadm's addon) stays Pending until the CNI runs; workloads "
                "need cluster DNS")

    def workloads(self, node: ClusterNode) -> None:
        if node != self.first:
            return
        previous: list[str] = []
        for upload in self.ups(node, "workloads"):
            path = self.path(upload)
            apply, unchanged = _server_side_apply(path)
            previous = [self.add(
                node, "workloads", "apply-" + PurePosixPath(path).name, apply, check=unchanged,
                needs=[upload, *previous],
                why="in file order: namespaces and RBAC before what lives in them")]

    def verify(self, node: ClusterNode) -> None:
        if runs_kubernetes(node):
            self.add(node, "verify", "kubelet-active", Command(
                argv=("systemctl", "is-active", "--quiet", "kubelet"), timeout=10))
        if node == self.first:
            names = [f"node/{n.name}" for n in self.k8s]
            if self.c.cni == "none":
                command = Command(argv=(*KUBECTL, "get", *names), timeout=60)
                why = "every node registered (no CNI: nodes stay NotReady by design)"
            else:
                command = Command(argv=(*KUBECTL, "wait", "--for=condition=Ready", *names,
                                        "--timeout=600s"), timeout=630)
                why = "every declared node joined and Ready"
            self.add(node, "verify", "nodes-ready", command, needs=[*self.joins, *self.labels],
                     why=why)
            if self.i.etcd.topology == "stacked":
                self.add(node, "verify", "etcd-health", Command(argv=(
                    *KUBECTL, "-n", "kube-system", "exec", f"etcd-{node.name}", "--",
                    *etcdctl("https://127.0.0.1:2379", "endpoint", "health", "--cluster")),
                    timeout=60), needs=[j for j in self.joins if "/control-plane-join/" in j],
                    why="every stacked member healthy, checked from inside the etcd pod")
        if self.etcd_members and node == self.etcd_members[0]:
            self.add(node, "verify", "etcd-health", Command(
                argv=etcdctl(hostport.https_url(node.address, 2379), "endpoint", "health", "--cluster",
                             client=self.etcd_client(node)),
                timeout=60), needs=self.etcd_health, why="every external member healthy")

    def build(self) -> Plan:
        self.place_uploads()
        per_phase = {
            "preflight": self.preflight, "os-prepare": self.os_prepare,
            "runtime": self.runtime, "loadbalancer": self.loadbalancer, "etcd": self.etcd,
            "control-plane-init": self.control_plane_init, "control-plane-join": self.join,
            "cni": self.cni, "addons": self.addons, "workloads": self.workloads,
            "verify": self.verify,
        }
        for phase in PHASES:
            for node in self.c.nodes:
                if phase in per_phase:
                    per_phase[phase](node)
        for node in self.c.nodes:
            self.keep_originals(node)
        return self.b.finish()

    def keep_originals(self, node: ClusterNode) -> None:
        """Before the host's first upload, record what was at each path the plan uploads
        (reset gives it back: compiler/emit/originals.py)."""
        mine = (self.b.drafts[i] for phase in PHASES for i in self.b.ids(node.name, phase))
        uploads = [d for d in mine if isinstance(d.action, Upload)]
        if not uploads:
            return
        first = min(PHASES.index(d.phase) for d in uploads)
        if first < PHASES.index("os-prepare"):
            raise PlanError(f"{node.name}: an upload in phase {PHASES[first]} would come "
                            "before its originals are kept")
        command, check = originals.keep_step(d.action.path for d in uploads)
        kept = self.add(node, "os-prepare", "keep-originals", command, check=check,
                        why="what each uploaded path held before, for reset to give back")
        for d in uploads:
            if d.phase == "os-prepare":
                d.needs.insert(0, kept)


def ignore_flags(ignores: tuple[PreflightIgnore, ...]) -> tuple[str, ...]:
    """kubeadm's flag for the preflight errors a node's declaration makes expected."""
    return (f"--ignore-preflight-errors={','.join(i.check for i in ignores)}",) if ignores \
        else ()


def _server_side_apply(source: str) -> tuple[Command, Check]:
    """``kubectl apply --server-side`` of ``source``, skipped when ``kubectl diff`` (exit 0:
    no difference) says the cluster already matches it. The file is the truth: a field
    someone changed by hand (``kubectl scale``, ``rollout undo``) goes back to what it
    declares, as it would with client-side apply, instead of failing on the conflict."""
    args = ("--server-side", "--field-manager=kubeforge", "--force-conflicts", "-f", source)
    return (Command(argv=(*KUBECTL, "apply", *args), timeout=300),
            probe(shlex.join((*KUBECTL, "diff", *args)) + " >/dev/null"))


def etcdctl(endpoints: str, *command: str, client: str = "healthcheck-client") -> tuple[str, ...]:
    """etcdctl authenticated by ``client`` (a cert/key pair in kubeadm's etcd PKI layout)."""
    return ("etcdctl", f"--endpoints={endpoints}", f"--cacert={ETCD_PKI}/ca.crt",
            f"--cert={ETCD_PKI}/{client}.crt", f"--key={ETCD_PKI}/{client}.key", *command)


def _quiet(argv: tuple[str, ...]) -> str:
    return shlex.join(argv) + " >/dev/null 2>&1"


def _jsonpath_key(key: str) -> str:
    return key.replace(".", "\\.")


def build_plan(cluster: Cluster, artifacts: Iterable[Artifact],
               shared: dict[str, Any] | None = None) -> Plan:
    """The bootstrap plan for ``cluster`` given every artifact the build produced."""
    return _PlanMaker(cluster, _inputs(cluster, artifacts, shared or {})).build()


def emit(ctx: BuildContext) -> list[Artifact]:
    plan = build_plan(ctx.cluster, ctx.artifacts, ctx.shared)
    outputs = {"plan.json": plan.to_json(), "plan.txt": render_text(plan)}
    for name, text in outputs.items():
        if "PRIVATE KEY" in text:  # defence in depth: steps never carry file contents
            raise PlanError(f"{name} would contain key material")
    artifacts = [Artifact(name, text.encode()) for name, text in outputs.items()]
    ctx.shared["plan"] = (plan, artifacts[0].content)  # the object plan.json holds: plan_of
    return artifacts
