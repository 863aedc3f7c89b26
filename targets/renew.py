"""`kubeforge certs renew`, the host side: bring each node's certificate files to the build
and restart exactly the components that read a file newer than their own start, one node at
a time, each node's API server and etcd healthy before the next is touched.

What to restart is read from the host itself, not remembered: a component whose input file
was modified after the component started runs with the old certificate. So a renewal killed
between an upload and a restart is finished by the next run (the file is newer than the
container), a node already done is left alone, and a run with nothing renewed does nothing.

Static pods (kube-apiserver, kube-controller-manager, kube-scheduler, stacked etcd) read
their certificates and kubeconfigs once, at start: their container is stopped gracefully
with crictl and the kubelet starts it again from the unchanged manifest. External etcd
members are the systemd unit ``etcd``. Uploads are the plan's own upload steps (atomic,
0600 keys), recorded in the apply state, so the next ``apply`` finds them done.
"""

from __future__ import annotations

import datetime as dt
import shlex
import time
from dataclasses import dataclass, field

from kubeforge.compiler.hostport import https_url
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.plan import Step, Upload
from kubeforge.compiler.pki import APISERVER_BIND_PORT
from kubeforge.targets.base import CHANGED, FAILED, TargetError
from kubeforge.targets.execute import StepRunner

PKI = "/etc/kubernetes/pki"
ETCD_PKI = f"{PKI}/etcd"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
STATIC_POD, SYSTEMD = "static-pod", "systemd"
#: How long a restarted component or a node's health may take on a loaded host.
READY_TIMEOUT = 300


def _pair(*names: str) -> tuple[str, ...]:
    return tuple(f"{n}.{ext}" for n in names for ext in ("crt", "key"))


@dataclass(frozen=True)
class Component:
    name: str  # the container name (static pods) or the systemd unit
    kind: str  # STATIC_POD | SYSTEMD
    reads: tuple[str, ...]  # the certificate files it reads at start


def components_for(cluster: Cluster, node: ClusterNode) -> tuple[Component, ...]:
    """What runs on ``node`` and reads renewable files, in restart order: etcd first (the
    API server is its client), then the API server, then its clients."""
    out = []
    if node in cluster.etcd_nodes:
        kind = STATIC_POD if cluster.etcd == "stacked" else SYSTEMD
        out.append(Component("etcd", kind, _pair(f"{ETCD_PKI}/server", f"{ETCD_PKI}/peer")))
    if node.is_control_plane:
        out.append(Component("kube-apiserver", STATIC_POD, _pair(
            *(f"{PKI}/{n}" for n in ("apiserver", "apiserver-kubelet-client",
                                     "front-proxy-client", "apiserver-etcd-client")))))
        for name, conf in (("kube-controller-manager", "controller-manager"),
                           ("kube-scheduler", "scheduler")):
            out.append(Component(name, STATIC_POD, (f"/etc/kubernetes/{conf}.conf",)))
    return tuple(out)


def readers(cluster: Cluster, node: ClusterNode, paths) -> tuple[Component, ...]:
    """The components of ``node`` that read one of ``paths``."""
    wanted = set(paths)
    return tuple(c for c in components_for(cluster, node) if wanted.intersection(c.reads))


# ================================================================================ host state


@dataclass(frozen=True)
class HostStatus:
    started: dict[str, tuple[str, float]]  # running component -> (container id or "", epoch)
    mtimes: dict[str, float]  # file -> modification time (epoch), files that exist

    def stale(self, components: tuple[Component, ...]) -> tuple[Component, ...]:
        """Running components with an input file modified after they started."""
        return tuple(c for c in components if c.name in self.started
                     and any(self.mtimes.get(p, 0.0) > self.started[c.name][1] for p in c.reads))


def status_script(components: tuple[Component, ...]) -> str:
    """Prints ``C name id epoch`` per running component and ``F path epoch`` per file."""
    lines = []
    for c in components:
        n = shlex.quote(c.name)
        if c.kind == STATIC_POD:
            lines.append(
                f"id=$(crictl ps -q --name {shlex.quote('^' + c.name + '$')} --state running "
                "2>/dev/null | head -n1); if [ -n \"$id\" ]; then "
                "t=$(crictl inspect -o go-template --template '{{.status.startedAt}}' \"$id\") "
                f"&& echo \"C {n} $id $(date -d \"$t\" +%s.%N)\"; fi")
        else:
            lines.append(
                f"if systemctl is-active --quiet {n}; then t=$(systemctl show -p "
                f"ExecMainStartTimestamp --value {n}) && "
                f"echo \"C {n} - $(date -d \"$t\" +%s.%N)\"; fi")
    for path in sorted({p for c in components for p in c.reads}):
        q = shlex.quote(path)
        lines.append(f"[ -e {q} ] && echo \"F {q} $(stat -c %.9Y {q})\"")
    lines.append("true")
    return "\n".join(lines)


def parse_status(text: str) -> HostStatus:
    started, mtimes = {}, {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "C":
            unit = parts[2] == "-"
            # systemd shows whole seconds: a file written in the second the unit started
            # would look newer than it, and be restarted for nothing on every run.
            started[parts[1]] = ("" if unit else parts[2], float(parts[3]) + (1.0 if unit else 0))
        elif len(parts) == 3 and parts[0] == "F":
            mtimes[parts[1]] = float(parts[2])
    return HostStatus(started, mtimes)


# ================================================================================ scripts


def _until(condition: str, what: str, seconds: int = READY_TIMEOUT) -> str:
    return (f"end=$(( $(date +%s) + {seconds} )); until {condition}; do "
            f"[ $(date +%s) -lt $end ] || {{ echo {shlex.quote(what)} not within {seconds}s >&2; "
            "exit 1; }; sleep 2; done")


def restart_script(component: Component, container: str) -> str:
    """Restart ``component`` and wait until it runs again (a new container, or the unit)."""
    n = shlex.quote(component.name)
    if component.kind == SYSTEMD:
        return f"set -e\nsystemctl restart {n}\n" + _until(
            f"systemctl is-active --quiet {n}", f"{component.name} active")
    running = (f"new=$(crictl ps -q --name {shlex.quote('^' + component.name + '$')} "
               "--state running 2>/dev/null | head -n1)")
    # A graceful stop: the API server finishes the requests it has (the kubelet's own grace
    # for static pods is 30 s); the kubelet then starts the container again.
    return "\n".join([f"old={shlex.quote(container)}",
                      'crictl stop --timeout 30 "$old" >/dev/null || true',
                      _until(f'{running} && [ -n "$new" ] && [ "$new" != "$old" ]',
                             f"a new {component.name} container")])


def _etcdctl(endpoint: str) -> str:
    return shlex.join(("etcdctl", f"--endpoints={endpoint}", f"--cacert={ETCD_PKI}/ca.crt",
                       f"--cert={ETCD_PKI}/healthcheck-client.crt",
                       f"--key={ETCD_PKI}/healthcheck-client.key", "endpoint", "health",
                       "--cluster"))


def health_script(cluster: Cluster, node: ClusterNode) -> str:
    """Waits for the node's own API server's /readyz and every etcd member's health."""
    checks = []
    if node in cluster.etcd_nodes:
        if cluster.etcd == "stacked":
            checks.append(_until(
                "id=$(crictl ps -q --name '^etcd$' --state running | head -n1) && [ -n \"$id\" ] "
                f"&& crictl exec \"$id\" {_etcdctl('https://127.0.0.1:2379')} >/dev/null 2>&1",
                "etcd healthy"))
        else:
            checks.append(_until(f"{_etcdctl(https_url(node.address, 2379))} >/dev/null 2>&1",
                                 "etcd healthy"))
    if node.is_control_plane:
        server = https_url(node.address, APISERVER_BIND_PORT)
        checks.append(_until(
            f"[ \"$(kubectl --kubeconfig {ADMIN_CONF} --server {server} get --raw=/readyz "
            "2>/dev/null)\" = ok ]", f"{node.name}'s API server ready"))
    return "set -e\n" + "\n".join(checks) if checks else "true"


# ================================================================================ one host


@dataclass
class HostResult:
    host: str
    uploaded: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    def as_dict(self) -> dict:
        return {"host": self.host, "uploaded": self.uploaded, "restarted": self.restarted,
                "seconds": round(self.seconds, 1), **({"error": self.error} if self.error else {})}


def cert_uploads(steps, host: str, paths: set[str]) -> list[Step]:
    """The plan's uploads of ``paths`` to ``host``, certificates before their keys' readers."""
    return [s for s in steps if s.host == host and isinstance(s.action, Upload)
            and s.action.path in paths]


def renew_host(cluster: Cluster, node: ClusterNode, runner: StepRunner, steps,
               paths: set[str], log=lambda message: None) -> HostResult:
    """Upload ``node``'s renewable files that differ from the build, restart the stale
    components, and wait for the node's health if anything was restarted."""
    result, start = HostResult(node.name), time.monotonic()
    try:
        for step in cert_uploads(steps, node.name, paths):
            outcome = runner.run(step)
            if outcome.status == FAILED:
                raise TargetError(f"{step.id}: {outcome.message}")
            if outcome.status == CHANGED:
                result.uploaded.append(step.action.path)
        session = runner.sessions.get(node.name)
        components = components_for(cluster, node)
        out = session.run(status_script(components), timeout=60)
        if out.exit_code:
            raise TargetError(f"{node.name}: cannot read its components' state: "
                              f"{out.stderr.decode(errors='replace').strip()[:300]}")
        status = parse_status(out.stdout.decode(errors="replace"))
        for component in status.stale(components):
            log(f"{node.name}: restarting {component.name}")
            container = status.started[component.name][0]
            out = session.run(restart_script(component, container), timeout=READY_TIMEOUT + 60)
            if out.exit_code:
                raise TargetError(f"{node.name}: {component.name} did not come back: "
                                  f"{out.stderr.decode(errors='replace').strip()[:300]}")
            result.restarted.append(component.name)
        if result.restarted or result.uploaded:
            out = session.run(health_script(cluster, node), timeout=2 * READY_TIMEOUT + 60)
            if out.exit_code:
                raise TargetError(f"{node.name}: not healthy after the renewal: "
                                  f"{out.stderr.decode(errors='replace').strip()[:300]}")
    except TargetError as exc:
        result.error = str(exc)
    result.seconds = time.monotonic() - start
    return result


def stale_warnings(cluster: Cluster, sessions) -> list[str]:
    """For `plan --probe`: components running with certificates older than their files (an
    `apply` uploaded re-issued leaves, or a renewal was interrupted). Read-only."""
    out = []
    for node in order(cluster):
        components = components_for(cluster, node)
        try:
            result = sessions.get(node.name).run(status_script(components), timeout=60)
        except TargetError:
            continue  # the plan's own probe reports unreachable hosts
        stale = parse_status(result.stdout.decode(errors="replace")).stale(components)
        if result.exit_code == 0 and stale:
            out.append(f"{node.name}: {', '.join(c.name for c in stale)} started before its "
                       "certificate files changed and still uses the old ones; run "
                       "`kubeforge certs renew FILE -i INV` to restart exactly those")
    return out


def order(cluster: Cluster) -> tuple[ClusterNode, ...]:
    """Control planes first (in file order), then etcd-only members; workers hold none of
    the files."""
    rest = tuple(n for n in cluster.etcd_nodes if not n.is_control_plane)
    return cluster.control_planes + rest


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
