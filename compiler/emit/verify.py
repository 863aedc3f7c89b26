"""Emitter (after the plan): ``verify/``, pytest-testinfra checks of what the deploy promised.

Every check row names the plan phase that establishes it, so ``kubeforge verify --until P``
(or ``pytest --kf-until=P``) skips what a partial apply has not done yet. Rows come from the
plan (uploads with mode, owner and hash; services; preflight commands) and from the
artifacts the plan moves (certificate SANs and expiry, sysctl and module files), so the
checks and the deploy cannot drift apart. The files are plain pytest modules with their data
as literal tables, one per role, runnable with ``pytest --hosts=... verify/``.
"""

from __future__ import annotations

import pprint
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from cryptography import x509

from kubeforge.compiler import hostport
from kubeforge.compiler.artifacts import KEYED, Artifact, BuildContext
from kubeforge.compiler.emit.ansible import plan_of
from kubeforge.compiler.emit.plan import KERNEL_FEATURES
from kubeforge.compiler.emit.render import render_template
from kubeforge.compiler.ir import Cluster, ClusterNode
from kubeforge.compiler.plan import Command, Plan, Service, Upload

ROOT = "verify"
ETCD_PKI = "/etc/kubernetes/pki/etcd"
ROLE_FILES = ("node", "control_plane", "worker", "etcd", "loadbalancer")
TITLES = {"node": "every node", "control_plane": "the control planes", "worker": "the workers",
          "etcd": "etcd", "loadbalancer": "the API load balancer",
          "preflight": "a host before any deploy (--kf-preflight)"}
#: Ports the control plane and workers listen on once kubeadm ran (apiserver, kubelet,
#: controller-manager, scheduler).
CONTROL_PLANE_PORTS = (6443, 10250, 10257, 10259)
WORKER_PORTS = (10250,)


class _Octal(int):
    """A file mode that reads as ``0o600`` in the generated source."""

    def __repr__(self) -> str:
        return f"0o{self:o}"


@dataclass
class _Tables:
    """Rows per role file and table name; each row starts with (phase, node)."""

    rows: dict[str, dict[str, list[tuple[Any, ...]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, role: str, table: str, *row: Any) -> None:
        self.rows[role][table].append(row)


def _role(node: ClusterNode, phase: str) -> str:
    """Which role file holds a host's check of ``phase``."""
    if phase == "loadbalancer":
        return "loadbalancer"
    if phase == "etcd":
        return "etcd"
    if phase in ("os-prepare", "runtime", "preflight"):
        return "node"
    if node.is_control_plane:
        return "control_plane"
    if node.is_etcd:
        return "etcd"
    return "worker"


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names = [*ext.get_values_for_type(x509.DNSName),
             *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))]
    return tuple(sorted(names))


def _settings(content: bytes) -> list[str]:
    lines = []
    for line in content.decode().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def _uploads(plan: Plan, nodes: dict[str, ClusterNode], sources: dict[str, Artifact],
             t: _Tables) -> None:
    for step in plan.uploads():
        up = step.action
        assert isinstance(up, Upload)
        node = nodes[step.host]
        owner, _, group = up.owner.partition(":")
        role = _role(node, step.phase)
        table = "KUBEADM_CONFIGS" if up.path.startswith("/etc/kubernetes/kubeadm/") else "FILES"
        # A file placed once and then kubeadm's (kubelet.conf) is checked for presence,
        # mode and owner, not content, exactly as apply checks it. A secret's keyed digest
        # cannot be checked on the host: the row names the build's copy instead.
        digest = None if step.check.kind != "sha256" else \
            f"build:{up.source}" if up.sha256.startswith(KEYED) else up.sha256
        t.add(role, table, step.phase, step.host, up.path, _Octal(up.mode), owner,
              group or owner, digest)
        art = sources.get(up.source)
        if art is None:
            continue
        if up.path.endswith(".crt"):
            cert = x509.load_pem_x509_certificate(art.content)
            t.add(role, "CERTIFICATES", step.phase, step.host, up.path, _sans(cert),
                  cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
        elif up.path.startswith("/etc/sysctl.d/") and not up.secret:
            for line in _settings(art.content):
                key, _, value = line.partition("=")
                t.add("node", "SYSCTLS", step.phase, step.host, key.strip(), value.strip())
        elif up.path.startswith("/etc/modules-load.d/") and not up.secret:
            for module in _settings(art.content):
                # The plan's own test: a feature built into the kernel has no /sys/module
                # entry (br_netfilter, overlay on many kernels) and still counts as loaded.
                t.add("node", "MODULES", step.phase, step.host, module,
                      KERNEL_FEATURES.get(module, f"test -d /sys/module/{module}"))


def _services(plan: Plan, nodes: dict[str, ClusterNode], t: _Tables) -> None:
    for step in plan.steps:
        svc = step.action
        if isinstance(svc, Service):
            t.add(_role(nodes[step.host], step.phase), "SERVICES", step.phase, step.host,
                  svc.name, svc.enabled, svc.state == "started")


def _phase_of(plan: Plan, host: str, suffix: str, default: str) -> str:
    for step in plan.steps:
        if step.host == host and step.id.endswith(suffix):
            return step.phase
    return default


def _ports_and_cluster(cluster: Cluster, plan: Plan, t: _Tables) -> dict[str, Any]:
    """Listening ports, the VIP and etcd membership; returns template settings."""
    lb = cluster.loadbalancer
    hosts = {h.name for h in plan.hosts}
    haproxy = {s.host: s.phase for s in plan.steps if s.id.endswith("/service-haproxy")}
    lb_hosts = sorted(haproxy)
    for host in lb_hosts:
        # A joining control plane's node-local proxy starts in its join phase.
        t.add("loadbalancer", "PORTS", haproxy[host], host, lb.port)
    vip = str(lb.vip) if lb.vip is not None and lb_hosts else None
    external = cluster.etcd == "external"
    members = [n.name for n in cluster.etcd_nodes if n.name in hosts]
    for name in members if external else ():
        for port in (2379, 2380):
            t.add("etcd", "PORTS", "etcd", name, port)
    for node in cluster.nodes:
        if node.name not in hosts:
            continue
        if node.is_control_plane:
            phase = _phase_of(plan, node.name, "/kubeadm-init", "control-plane-join")
            if not node == cluster.first_control_plane:
                phase = "control-plane-join"
            for port in CONTROL_PLANE_PORTS:
                t.add("control_plane", "PORTS", phase, node.name, port)
        elif node.is_worker:
            for port in WORKER_PORTS:
                t.add("worker", "PORTS", "workers-join", node.name, port)
    etcd_phase = "etcd" if external else "control-plane-join"
    uploads = {(s.host, s.action.path) for s in plan.uploads()}
    for name in members:
        address = next(n.address for n in cluster.nodes if n.name == name)
        endpoint = hostport.https_url(address, 2379)
        # The client certificate the member holds, as the plan's own health step picks it.
        client = "healthcheck-client" if (name, f"{ETCD_PKI}/healthcheck-client.crt") \
            in uploads else "peer"
        if not external:
            endpoint = "https://127.0.0.1:2379"
        t.add("etcd", "ETCD_MEMBERS", etcd_phase, name, endpoint, client,
              "host" if external else "pod", len(members))
    return {"vip": vip, "vip_port": lb.port, "lb_hosts": lb_hosts, "etcd_pki": ETCD_PKI,
            "vip_endpoint": hostport.join(vip, lb.port) if vip else None}


def _preflight(cluster: Cluster, plan: Plan, t: _Tables) -> None:
    for step in plan.steps_in_phase("preflight"):
        if isinstance(step.action, Command):
            t.add("preflight", "PLAN_CHECKS", "preflight", step.host,
                  step.id.rsplit("/", 1)[1], step.action.text)
    for host in plan.hosts:
        t.add("preflight", "NODES", "preflight", host.name, cluster.os)


def _literal(rows: Iterable[tuple[Any, ...]]) -> str:
    """A table as Python source, one row per line, for people to read and diff."""
    body = "".join(f"    {_row(row)},\n" for row in rows)
    return "[\n" + body + "]" if body else "[]"


_PLAIN = (str, int, bool, type(None))


def _row(row: tuple[Any, ...]) -> str:
    """``pprint.pformat(row, width=200)``: a row of plain values that fits is its repr, which
    is what pformat writes then; pformat itself took seconds over 1,000 nodes' rows."""
    if type(row) is tuple and all(type(v) in _PLAIN for v in row):
        text = repr(row)
        if len(text) <= 200:
            return text
    return pprint.pformat(row, width=200)


def render(cluster: Cluster, plan: Plan, artifacts: Iterable[Artifact]) -> dict[str, str]:
    nodes = {n.name: n for n in cluster.nodes}
    sources = {a.path: a for a in artifacts}
    t = _Tables()
    _uploads(plan, nodes, sources, t)
    _services(plan, nodes, t)
    settings = _ports_and_cluster(cluster, plan, t)
    _preflight(cluster, plan, t)
    preparing = {s.host for s in plan.steps_in_phase("os-prepare")}
    for host in plan.hosts:
        if host.name in preparing:
            t.add("node", "SWAP_OFF", "os-prepare", host.name)
    common = {"cluster": cluster.name, "phases": list(plan.phases), **settings}
    out = {"conftest.py": render_template("verify/conftest.py.j2", **common)}
    for role in (*ROLE_FILES, "preflight"):
        tables = {name: _literal(rows) for name, rows in t.rows.get(role, {}).items()}
        if tables or (role == "loadbalancer" and settings["vip"]):
            out[f"test_{role}.py"] = render_template(
                "verify/test_role.py.j2", tables=tables, role=role, title=TITLES[role],
                **common)
    return out


def emit(ctx: BuildContext) -> list[Artifact]:
    files = render(ctx.cluster, plan_of(ctx), ctx.artifacts)
    return [Artifact(f"{ROOT}/{name}", text.encode()) for name, text in files.items()]
