"""`kubeforge etcd backup` and `restore` over SSH: the scripts of ``compiler.etcd_scripts``
run on the members, snapshots move with ``targets.transfer``.

A backup tries the members in order and keeps the first snapshot that one of them takes (a
member that is down or without quorum fails its snapshot; the next one is asked). A restore
checks everything it can before it stops anything (tools on every member, the snapshot
uploaded to each member and readable there), then stops, restores, starts and waits, each
step idempotent on the host, so running it again after an interruption converges.
"""

from __future__ import annotations

import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kubeforge.compiler import etcd_scripts as S
from kubeforge.compiler.ir import Cluster
from kubeforge.targets import transfer
from kubeforge.targets.base import HostSpec, TargetError

#: Where `kubeforge etcd backup` lets a member write its snapshot before the fetch.
FETCH_DIR = "/var/lib/kubeforge/etcd-backup"
#: bbolt's magic number (little-endian, in the first meta page): an etcd snapshot has it.
BOLT_MAGIC = bytes.fromhex("edda0ced")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Snapshot:
    member: str
    path: Path
    size: int
    sha256: str
    revision: int | None
    seconds: float

    def as_dict(self) -> dict:
        return {"member": self.member, "path": str(self.path), "size": self.size,
                "sha256": self.sha256, "revision": self.revision, "seconds": self.seconds}


@dataclass
class Hosts:
    """Sessions to the cluster's hosts, opened on first use and closed together."""

    target: object  # a Target: .open(HostSpec) -> Session, .close()
    specs: dict[str, HostSpec]
    sessions: dict = field(default_factory=dict)

    def session(self, name: str):
        if name not in self.sessions:
            self.sessions[name] = self.target.open(self.specs[name])
        return self.sessions[name]

    def run(self, name: str, script: str, timeout: float = 300, what: str = "") -> str:
        """stdout of ``script`` on ``name``; a failure names the host, the step and why."""
        out = self.session(name).run(script, timeout=timeout)
        if out.exit_code:
            why = (out.stderr or out.stdout).decode(errors="replace").strip().splitlines()
            raise TargetError(f"{name}: {what or 'command'} failed (exit {out.exit_code})"
                              + (f": {' / '.join(why[-3:])}" if why else ""))
        return out.stdout.decode(errors="replace")

    def each(self, names: list[str], fn: Callable[[str], object]) -> None:
        """``fn(name)`` on every host at once; every failure is reported together."""
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = {name: pool.submit(fn, name) for name in names}
        errors = []
        for name, future in futures.items():
            exc = future.exception()
            if exc is not None:
                if not isinstance(exc, TargetError):
                    raise exc
                errors.append(str(exc))
        if errors:
            raise TargetError("; ".join(errors))

    def close(self) -> None:
        self.target.close()


# ================================================================================ backup


def backup(cluster: Cluster, hosts: Hosts, out_dir: Path, say: Say,
           only: frozenset[str] = frozenset()) -> Snapshot:
    """A snapshot taken now on the first member (of ``only``, when given) that can, fetched
    into ``out_dir``."""
    members = [n for n in cluster.etcd_nodes if not only or n.name in only]
    if not members:
        from kubeforge.errors import UsageError
        raise UsageError(f"--limit {', '.join(sorted(only))}: no etcd member among them "
                         f"(members: {', '.join(n.name for n in cluster.etcd_nodes)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = []
    for node in members:
        started = time.monotonic()
        try:
            hosts.run(node.name, S.tools_script(), 30, "the etcd tools check")
            out = hosts.session(node.name).run(
                f"sh -s -- {FETCH_DIR} 1", timeout=1800,
                stdin=S.backup_script(cluster, node).encode())
            if out.exit_code:
                why = out.stderr.decode(errors="replace").strip().splitlines()
                raise TargetError(f"{node.name}: snapshot failed: {' / '.join(why[-3:])}")
            info = json.loads(out.stdout.decode().strip().splitlines()[-1])
            remote = info["path"]
            local = out_dir / f"{cluster.name}-{remote.rpartition('/')[2]}"
            transfer.fetch(hosts.session(node.name), remote, local, info["sha256"])
            hosts.run(node.name, f"rm -f {shlex.quote(remote)}", 60,
                      "removing the fetched snapshot")
        except (TargetError, ValueError, KeyError, IndexError) as exc:
            problems.append(str(exc) if isinstance(exc, TargetError)
                            else f"{node.name}: unreadable snapshot report: {exc}")
            say(f"{problems[-1]}; trying the next member")
            continue
        return Snapshot(node.name, local, int(info["size"]), info["sha256"],
                        info.get("revision"), round(time.monotonic() - started, 1))
    raise TargetError("no etcd member could take a snapshot: " + "; ".join(problems))


# ================================================================================ restore


def check_snapshot_file(path: Path) -> str:
    """The sha256 of a local snapshot; a file that is no bbolt database is refused before
    any host is touched."""
    from kubeforge.errors import UsageError

    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise UsageError(f"snapshot {path}: {exc.strerror}") from None
    if head[16:20] != BOLT_MAGIC:
        raise UsageError(f"snapshot {path} is not an etcd snapshot (no bbolt header); "
                         "take one with `kubeforge etcd backup`")
    return transfer.sha256_file(path)


def restore(cluster: Cluster, hosts: Hosts, snapshot: Path, say: Say,
            timeout: float = 900) -> dict:
    """Restore every member from ``snapshot``; returns the seconds each stage took."""
    sha = check_snapshot_file(snapshot)
    plan = {h.name: h for h in S.restore_hosts(cluster, sha)}
    members = [h.name for h in plan.values() if h.member]
    everyone = list(plan)
    times: dict[str, float] = {}
    clock = time.monotonic()

    def stage(name: str) -> None:
        nonlocal clock
        times[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()
        say(f"{name}: done in {times[name]}s")

    hosts.each(members, lambda n: hosts.run(n, S.tools_script(restore=True), 30,
                                            "the etcd tools check"))
    hosts.each(everyone, lambda n: hosts.run(n, S.prepare_script(sha), 60, "prepare"))

    def upload(name: str) -> None:
        remote = f"{S.STAGING}/snapshot.db"
        if transfer.remote_sha256(hosts.session(name), remote) != sha:
            transfer.send(hosts.session(name), snapshot, remote, sha)
        hosts.run(name, S.snapshot_check_script(), 300, "reading the uploaded snapshot")
    hosts.each(members, upload)
    stage("upload")
    # Nothing was changed until here: from now on the cluster is down until `start`.
    hosts.each(everyone, lambda n: hosts.run(n, plan[n].stop, 300, "stopping etcd and the "
                                                                   "API server"))
    stage("stop")
    hosts.each(members, lambda n: say(hosts.run(n, plan[n].restore, 900, "restore").strip()))
    stage("restore")
    hosts.each(members, lambda n: hosts.run(n, plan[n].start, 120, "starting etcd"))
    hosts.each([n for n in everyone if n not in members],
               lambda n: hosts.run(n, plan[n].start, 120, "starting the API server"))
    stage("start")
    first_member, first_cp = members[0], cluster.control_planes[0].name
    _poll(hosts, first_member, S.health_script(cluster), timeout,
          f"all {len(members)} etcd members healthy")
    stage("etcd-healthy")
    _poll(hosts, first_cp, S.api_ready_script(), timeout, "the API server ready")
    stage("api-ready")
    hosts.each(everyone, lambda n: hosts.run(n, S.finish_script(), 300, "cleaning up"))
    return times


def _poll(hosts: Hosts, name: str, script: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = hosts.session(name).run(script, timeout=60)
        if out.exit_code == 0:
            return
        last = (out.stderr or out.stdout).decode(errors="replace").strip()
        time.sleep(5)
    raise TargetError(f"{name}: {what}: not within {timeout:.0f}s (last: {last[-300:]}); "
                      "run `kubeforge etcd restore` again with the same snapshot to go on")
