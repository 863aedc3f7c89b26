"""Shell scripts for etcd snapshots and restores, per member, from the IR (pure: no SSH).

One backup script serves both the declared policy (its systemd service runs it on a timer)
and `kubeforge etcd backup` (which sends it over SSH): a snapshot of the member's own
endpoint with the health-check client certificate every member holds, written under a
temporary name and renamed when complete, the newest N of this member's snapshots kept, and
one JSON line on stdout (path, size, sha256, revision).

A restore is a sequence of idempotent steps per host, keyed by the snapshot's sha256 and
recorded under :data:`STAGING` on each host, so an interrupted restore converges when it is
run again with the same snapshot: stop (static pod manifests of etcd and the API server moved
aside, or the external etcd service stopped), restore (``etcdutl snapshot restore`` into a
fresh directory with this member's name, peer URL and the whole member list, then the data
directories swapped), start, and finish (staging removed once the cluster is healthy). The
scripts are POSIX sh; they assume what apply put on the hosts (ss, sha256sum, etcdctl).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kubeforge.compiler.emit.etcd import DATA_DIR, ETCD_PKI, client_url, member_flags, peer_url
from kubeforge.compiler.ir import Cluster, ClusterNode

BACKUP_SCRIPT = "/usr/local/sbin/kubeforge-etcd-backup"
UNIT = "kubeforge-etcd-backup"
#: Where a restore keeps its snapshot copy, markers and the moved-aside manifests.
STAGING = "/var/lib/kubeforge/etcd-restore"
#: The data a restore replaced (the newest restore's only).
BEFORE_RESTORE = "/var/lib/kubeforge/etcd-before-restore"
MANIFESTS = "/etc/kubernetes/manifests"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
#: Kubernetes' etcd restore advice: revisions jump ahead and the past is marked compacted, so
#: every watcher (informers, the API servers' caches) relists instead of waiting for
#: revisions it has seen already.
BUMP_REVISION = 1_000_000_000
CLIENT = "healthcheck-client"  # every member holds it (stacked and external)


def tls_args() -> str:
    return (f"--cacert={ETCD_PKI}/ca.crt --cert={ETCD_PKI}/{CLIENT}.crt "
            f"--key={ETCD_PKI}/{CLIENT}.key")


def backup_script(cluster: Cluster, node: ClusterNode) -> str:
    """The script ``kubeforge-etcd-backup DIR KEEP`` of member ``node``."""
    name = node.name
    pattern = f"^etcd-{name}-[0-9]{{8}}T[0-9]{{6}}\\.[0-9]{{9}}Z\\.db$"
    return f"""#!/bin/sh
# kubeforge: an etcd snapshot of member {name} (cluster {cluster.name}) into DIR, keeping
# the KEEP newest of this member's snapshots there. Written by kubeforge; the
# {UNIT} timer runs it, and `kubeforge etcd backup` sends it over SSH.
set -eu
dir=${{1:?usage: kubeforge-etcd-backup DIR KEEP}}
keep=${{2:?usage: kubeforge-etcd-backup DIR KEEP}}
PATH="$PATH:/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
umask 077
install -d -m 0700 "$dir"
stamp=$(date -u +%Y%m%dT%H%M%S.%NZ)
file="$dir/etcd-{name}-$stamp.db"
tmp="$dir/.etcd-{name}-$stamp.db.tmp"
trap 'rm -f "$tmp" "$tmp.part"' EXIT
etcdctl --endpoints={client_url(node)} {tls_args()} snapshot save "$tmp" >&2
if command -v etcdutl >/dev/null 2>&1; then
  status=$(etcdutl snapshot status "$tmp" -w json)
else
  status=$(etcdctl snapshot status "$tmp" -w json)
fi
revision=$(printf '%s\\n' "$status" | sed -n 's/.*"revision": *\\([0-9][0-9]*\\).*/\\1/p')
mv "$tmp" "$file"
# the names sort by time; only this member's snapshots count (a shared DIR is fine)
ls -1 "$dir" | grep -E '{pattern}' | sort -r | tail -n +$((keep + 1)) \\
  | while read -r old; do rm -f "$dir/$old"; done
size=$(stat -c %s "$file")
sum=$(sha256sum "$file" | cut -d' ' -f1)
printf '{{"member": "{name}", "path": "%s", "size": %s, "sha256": "%s", "revision": %s}}\\n' \\
  "$file" "$size" "$sum" "${{revision:-null}}"
"""


def backup_service(cluster: Cluster, node: ClusterNode, directory: str, keep: int) -> str:
    return f"""# Written by kubeforge: one etcd snapshot of member {node.name} (cluster {cluster.name}).
[Unit]
Description=kubeforge etcd snapshot of member {node.name} into {directory} (keeps {keep})
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={BACKUP_SCRIPT} {directory} {keep}
Nice=10
IOSchedulingClass=idle
"""


def backup_timer(cluster: Cluster, node: ClusterNode, schedule: str) -> str:
    return f"""# Written by kubeforge: when {UNIT}.service snapshots member {node.name}.
[Unit]
Description=kubeforge etcd snapshots of member {node.name} ({schedule})

[Timer]
OnCalendar={schedule}
Persistent=true
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
"""


# ================================================================================ restore


@dataclass(frozen=True)
class RestoreHost:
    """The restore's scripts for one host (a member, a control plane, or both)."""

    name: str
    member: bool  # holds an etcd member (stopped, restored, started)
    stop: str
    restore: str  # "" on a host that is not a member
    start: str


def prepare_script(sha256: str) -> str:
    """The staging directory for the restore of snapshot ``sha256``; an interrupted run's
    markers count only for the same snapshot."""
    return (f"set -eu; install -d -m 0700 {STAGING} {STAGING}/manifests; "
            f"if [ \"$(cat {STAGING}/id 2>/dev/null)\" != {sha256} ]; then "
            f"rm -f {STAGING}/restored {STAGING}/snapshot.db; echo {sha256} > {STAGING}/id; fi")


def snapshot_check_script() -> str:
    """Exit 0 if the uploaded snapshot opens as an etcd snapshot (etcdutl reads its status)."""
    return (f"PATH=\"$PATH:/usr/local/bin\"; if command -v etcdutl >/dev/null 2>&1; then "
            f"etcdutl snapshot status {STAGING}/snapshot.db -w json; else "
            f"etcdctl snapshot status {STAGING}/snapshot.db -w json; fi")


def _aside(manifests: tuple[str, ...]) -> list[str]:
    return [f"if [ -f {MANIFESTS}/{m}.yaml ]; then mv -f {MANIFESTS}/{m}.yaml "
            f"{STAGING}/manifests/{m}.yaml; fi" for m in manifests]


def _back(manifests: tuple[str, ...]) -> list[str]:
    return [f"if [ -f {STAGING}/manifests/{m}.yaml ]; then mv -f {STAGING}/manifests/{m}.yaml "
            f"{MANIFESTS}/{m}.yaml; fi; [ -f {MANIFESTS}/{m}.yaml ] || {{ echo \"{m}.yaml is "
            f"neither in {MANIFESTS} nor in {STAGING}/manifests\"; exit 1; }}"
            for m in manifests]


def _wait_ports(ports: tuple[int, ...], seconds: int = 240) -> str:
    pattern = "|".join(str(p) for p in ports)
    # inside the double quotes of `sh -c "..."`: awk's field needs its `$` escaped
    busy = f"ss -Htln | awk '{{print \\$4}}' | grep -Eq ':({pattern})$'"
    return (f"timeout {seconds} sh -c \"while {busy}; do sleep 2; done\" || {{ echo \"still "
            f"listening on one of ports {', '.join(map(str, ports))} after {seconds}s\"; "
            "exit 1; }")


def restore_hosts(cluster: Cluster, sha256: str) -> tuple[RestoreHost, ...]:
    """Every host the restore touches, members first (their etcd starts before any API
    server is given back), in the cluster's order."""
    members = cluster.etcd_nodes
    stacked = cluster.etcd == "stacked"
    others = [n for n in cluster.control_planes if n not in members]
    hosts = []
    for node in (*members, *others):
        member = node in members
        aside: tuple[str, ...] = ()
        if node.is_control_plane:
            aside = ("etcd", "kube-apiserver") if stacked else ("kube-apiserver",)
        ports = ((2379, 2380) if member else ()) + ((6443,) if node.is_control_plane else ())
        stop = ["set -eu", f"install -d -m 0700 {STAGING}/manifests", *_aside(aside)]
        if member and not stacked:
            stop.append("systemctl stop etcd")
        stop.append(_wait_ports(ports))  # the kubelet drops a static pod within ~20 s
        start = ["set -eu", *_back(aside)]
        if member and not stacked:
            start.append("systemctl start --no-block etcd")
        hosts.append(RestoreHost(node.name, member, "\n".join(stop),
                                 _restore(cluster, node, sha256) if member else "",
                                 "\n".join(start)))
    return tuple(hosts)


def _restore(cluster: Cluster, node: ClusterNode, sha256: str) -> str:
    flags = dict(member_flags(cluster, node))
    args = {
        "--name": node.name,
        "--initial-cluster": ",".join(f"{m.name}={peer_url(m)}" for m in cluster.etcd_nodes),
        "--initial-cluster-token": flags.get("initial-cluster-token", "etcd-cluster"),
        "--initial-advertise-peer-urls": peer_url(node),
        "--data-dir": f"{STAGING}/data",
    }
    restore = " ".join(f"{k}={shlex.quote(v)}" for k, v in args.items())
    return f"""set -eu
# One restore at a time on this host: a run killed on this machine may leave its remote half
# running; the next run waits for it instead of restoring into the same directory.
exec 9>{STAGING}.lock
flock -w 900 9 || {{ echo "member {node.name}: another restore still runs here"; exit 1; }}
want={sha256}
if [ "$(cat {STAGING}/restored 2>/dev/null)" = "$want" ]; then
  echo "member {node.name}: restored already"; exit 0
fi
echo "$want  {STAGING}/snapshot.db" | sha256sum -c --quiet
rm -rf {STAGING}/data
if command -v etcdutl >/dev/null 2>&1; then
  etcdutl snapshot restore {STAGING}/snapshot.db {restore} \\
    --bump-revision={BUMP_REVISION} --mark-compacted >&2
else
  etcdctl snapshot restore {STAGING}/snapshot.db {restore} >&2
fi
chmod 0700 {STAGING}/data
# The replaced data is kept once per restore: a re-run after an interruption must not
# overwrite it with a half-swapped directory.
if [ -e {DATA_DIR} ] && [ ! -e {STAGING}/before-restore ]; then
  mv {DATA_DIR} {STAGING}/before-restore
else
  rm -rf {DATA_DIR}
fi
mv {STAGING}/data {DATA_DIR}
echo "$want" > {STAGING}/restored
echo "member {node.name}: restored"
"""


def health_script(cluster: Cluster) -> str:
    """Exit 0 once every member answers healthy (run on the first member)."""
    endpoints = ",".join(client_url(m) for m in cluster.etcd_nodes)
    return (f"PATH=\"$PATH:/usr/local/bin\"; etcdctl --endpoints={endpoints} "
            f"{tls_args()} endpoint health")


def api_ready_script() -> str:
    """Exit 0 once the API answers /readyz through the endpoint (run on a control plane)."""
    return (f"PATH=\"$PATH:/usr/local/bin\"; kubectl --kubeconfig {ADMIN_CONF} "
            "get --raw=/readyz >/dev/null")


def finish_script() -> str:
    """After a healthy restore: the replaced data kept at :data:`BEFORE_RESTORE`, the staging
    directory (snapshot copy, markers) removed, so the next restore starts afresh."""
    return (f"set -eu; if [ -e {STAGING}/before-restore ]; then rm -rf {BEFORE_RESTORE}; "
            f"mv {STAGING}/before-restore {BEFORE_RESTORE}; fi; rm -rf {STAGING}")


def tools_script(restore: bool = False) -> str:
    """Exit 1 naming what is missing when a member cannot snapshot (or ``restore``): a
    restore needs etcdutl, or an etcdctl older than 3.5 (which still restores itself)."""
    need = "etcdctl sha256sum ss" + (" flock" if restore else "")
    script = ("PATH=\"$PATH:/usr/local/bin:/usr/local/sbin\"; missing=''; "
              f"for b in {need}; do command -v $b >/dev/null 2>&1 "
              "|| missing=\"$missing $b\"; done; ")
    if restore:
        script += ("command -v etcdutl >/dev/null 2>&1 || etcdctl version 2>/dev/null "
                   "| grep -Eq '^etcdctl version: 3\\.[0-4]\\.' || missing=\"$missing etcdutl\"; ")
    return script + "[ -z \"$missing\" ] || { echo \"missing:$missing\"; exit 1; }"
