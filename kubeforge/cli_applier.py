"""kubectl on the control plane that applies the workloads, over SSH with its host key
checked, with the admin kubeconfig that never leaves it (`rollout`, `kubeconfig
serviceaccount`)."""

from __future__ import annotations

import shlex

from kubeforge.cli_deploy import _prepare, _ssh
from kubeforge.errors import UsageError

ADMIN = "/etc/kubernetes/admin.conf"


def open_applier(file, inventory, build_dir, state_dir, known_hosts, trust, jump, jump_key):
    """(ssh target, session, host name, deployment) of the host whose plan applies the
    workloads; the caller closes the target."""
    dep = _prepare(file, inventory, build_dir, state_dir)
    applier = next((s.host for s in dep.plan.steps if s.phase == "workloads"), None)
    if applier is None:
        raise UsageError(f"{file}: its plan applies no workloads (no control plane with a CNI)")
    ssh = _ssh(known_hosts, trust, jump, jump_key)
    return ssh, ssh.open(dep.hosts[applier]), applier, dep


def kubectl(session, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``kubectl --kubeconfig ADMIN ARGS`` on the host."""
    script = shlex.join(("kubectl", "--kubeconfig", ADMIN, *args))
    out = session.run(script, timeout=timeout)
    return out.exit_code, out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")


def on_applier(file, inventory, build_dir, state_dir, known_hosts, trust, jump, jump_key, body):
    """``body(session, applier, deployment)`` on the applier, the connection closed after."""
    ssh, session, applier, dep = open_applier(file, inventory, build_dir, state_dir,
                                              known_hosts, trust, jump, jump_key)
    try:
        return body(session, applier, dep)
    finally:
        ssh.close()
