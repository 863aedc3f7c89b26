"""Emitter: the declared etcd backup policy (`backup { ... }` in `cluster`).

Every etcd member (each control plane with stacked etcd, each etcd host with external etcd)
gets the backup script (``compiler.etcd_scripts``), a oneshot service running it with the
policy's directory and retention, and a timer with the policy's schedule. The plan uploads
them in the etcd phase and enables the timer once the member runs (see
``compiler.emit.plan_backup``); etcdctl itself comes from the bundle (stacked control planes)
or with the etcd hosts' binaries (external).
"""

from __future__ import annotations

from kubeforge.compiler.artifacts import Artifact, BuildContext, node_file
from kubeforge.compiler.etcd_scripts import (BACKUP_SCRIPT, UNIT, backup_script, backup_service,
                                             backup_timer)

SERVICE_FILE = f"/etc/systemd/system/{UNIT}.service"
TIMER_FILE = f"/etc/systemd/system/{UNIT}.timer"


def emit(ctx: BuildContext) -> list[Artifact]:
    cluster = ctx.cluster
    policy = cluster.backup
    if policy is None:
        return []
    artifacts = []
    for node in cluster.etcd_nodes:
        artifacts += [
            node_file(node.name, BACKUP_SCRIPT, backup_script(cluster, node), mode=0o755),
            node_file(node.name, SERVICE_FILE,
                      backup_service(cluster, node, policy.dir, policy.keep)),
            node_file(node.name, TIMER_FILE, backup_timer(cluster, node, policy.schedule)),
        ]
    return artifacts
