"""The docker daemon behind the sandbox: found running, or started by kubeforge and later
stopped by it, with the machine settings it changed put back.

The machines kubeforge is tested on have no init system to run dockerd, so kubeforge starts
Debian's dockerd itself. Several sandboxes (a developer's and a test session's) may share that
one daemon; a machine-wide record lists them, and the daemon is stopped only when the last
kubeforge sandbox leaves and no container of anyone else remains.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from kubeforge.targets.sandbox_run import (
    RUN_DIR,
    MissingToolError,
    SandboxError,
    have,
    locked,
    run,
)

RECORD = RUN_DIR / "dockerd.json"
PIDFILE = RUN_DIR / "dockerd.pid"
SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
           "net.bridge.bridge-nf-call-ip6tables")
TABLES = ("filter", "nat")
INSTALL_HINT = "install them with: apt-get install -y docker.io mmdebstrap"


def daemon_answers() -> bool:
    if not have("docker"):
        return False
    proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=15)
    return proc.returncode == 0


def ensure_tools(programs: tuple[str, ...]) -> None:
    """Install Debian's docker.io and mmdebstrap when a needed program is missing."""
    if all(have(p) for p in programs):
        return
    if os.geteuid() != 0 or not have("apt-get"):
        raise MissingToolError(f"sandbox: {', '.join(p for p in programs if not have(p))} "
                               f"missing; {INSTALL_HINT}")
    # Packages must not start their daemons (there is no init here); a policy-rc.d that
    # refuses every start does that, and is removed again if we created it.
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        proc = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io",
                    "mmdebstrap"], check=False, timeout=600, env={"DEBIAN_FRONTEND": "noninteractive"})
    finally:
        if created:
            policy.unlink()
    missing = [p for p in programs if not have(p)]
    if proc.returncode != 0 or missing:
        raise MissingToolError(f"sandbox: {', '.join(missing) or 'docker.io'} could not be "
                               f"installed (apt-get exit {proc.returncode}); {INSTALL_HINT}")


def machine_settings() -> dict:
    """What dockerd is known to change: forwarding sysctls, the FORWARD policy, its chains."""
    sysctls = {}
    for name in SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        if path.exists():
            sysctls[name] = path.read_text().strip()
    policy = run(["iptables", "-S", "FORWARD"], timeout=15).stdout.decode().splitlines()[0].split()[-1]
    chains = {t: sorted(_chains(t)) for t in TABLES}
    return {"sysctl": sysctls, "forward_policy": policy, "chains": chains}


def _chains(table: str) -> set[str]:
    lines = run(["iptables", "-t", table, "-S"], timeout=15).stdout.decode().splitlines()
    return {line.split()[1] for line in lines if line.startswith("-N ")}


def changed(before: dict, after: dict) -> dict:
    """The settings whose value differs, as {name: {"before": .., "after": ..}}."""
    diff = {k: {"before": v, "after": after["sysctl"].get(k)}
            for k, v in before["sysctl"].items() if after["sysctl"].get(k) != v}
    if before["forward_policy"] != after["forward_policy"]:
        diff["iptables FORWARD policy"] = {"before": before["forward_policy"],
                                           "after": after["forward_policy"]}
    return diff


def _alive(pid: int) -> bool:
    """A running dockerd has this pid (a reused pid or an unreaped zombie does not count)."""
    try:  # reap it first if it is our own child (`up` and `down` in one test process)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return comm == "dockerd" and state != "Z"


def _load() -> dict | None:
    try:
        record = json.loads(RECORD.read_text())
    except (OSError, ValueError):
        return None
    return record if _alive(record.get("pid", -1)) else None


def _save(record: dict | None) -> None:
    if record is None:
        RECORD.unlink(missing_ok=True)
    else:
        RECORD.write_text(json.dumps(record, indent=2, sort_keys=True))


def _start(log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        # No docker0 and no NAT: sandbox hosts live on their own internal network only.
        proc = subprocess.Popen(["dockerd", "--bridge=none", "--ip-masq=false",
                                 f"--pidfile={PIDFILE}"], stdin=subprocess.DEVNULL,
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (log.read_text(errors="replace").strip().splitlines() or ["?"])[-1]
            raise SandboxError(f"sandbox: dockerd exited with {proc.returncode} (log {log}): {tail}")
        if daemon_answers():
            return proc.pid
        time.sleep(0.3)
    _stop(proc.pid)
    raise SandboxError(f"sandbox: dockerd did not answer within 60 s (log {log})")


def acquire(user: str, log: Path) -> dict:
    """Make sure a docker daemon answers; returns what this sandbox should record about it."""
    with locked("dockerd"):
        record = _load()
        if daemon_answers():
            if record is not None and user not in record["users"]:
                record["users"].append(user)
                _save(record)
            return {"started": False, "pid": record["pid"] if record else None,
                    "managed_by_kubeforge": record is not None, "log": record and record["log"]}
        ensure_tools(("dockerd", "docker", "mmdebstrap"))
        before = machine_settings()
        pid = _start(log)
        record = {"pid": pid, "users": [user], "before": before, "log": str(log),
                  "changed": changed(before, machine_settings())}
        _save(record)
        return {"started": True, "pid": pid, "managed_by_kubeforge": True, "log": str(log),
                "changed": record["changed"]}


def release(user: str) -> str:
    """Leave the daemon; stop it and restore the machine if this was its last kubeforge user.
    Returns one line saying what happened."""
    with locked("dockerd"):
        record = _load()
        if record is None or user not in record["users"]:
            return "dockerd: not started by kubeforge, left running"
        record["users"].remove(user)
        if record["users"]:
            _save(record)
            return f"dockerd: still used by {len(record['users'])} other sandbox(es), left running"
        foreign = run(["docker", "ps", "-aq"], check=False, timeout=30).stdout.split()
        if foreign:
            _save(record)
            return f"dockerd: {len(foreign)} other container(s) exist, left running"
        _stop(record["pid"])
        _restore(record["before"])
        _save(None)
        return f"dockerd: stopped (pid {record['pid']}), forwarding settings restored"


def _stop(pid: int) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def _restore(before: dict) -> None:
    """Put back the sysctls and FORWARD policy, and remove the chains the daemon made."""
    for name, value in before["sysctl"].items():
        path = Path("/proc/sys") / name.replace(".", "/")
        if path.exists() and path.read_text().strip() != value:
            path.write_text(value + "\n")
    run(["iptables", "-P", "FORWARD", before["forward_policy"]], timeout=15)
    for table in TABLES:
        created = _chains(table) - set(before["chains"][table])
        for line in run(["iptables", "-t", table, "-S"], timeout=15).stdout.decode().splitlines():
            words = shlex.split(line)
            if words[0] == "-A" and "-j" in words and words[words.index("-j") + 1] in created \
                    and words[1] not in created:
                run(["iptables", "-t", table, "-D", *words[1:]], timeout=15)
        for chain in created:
            run(["iptables", "-t", table, "-F", chain], timeout=15)
        for chain in created:
            run(["iptables", "-t", table, "-X", chain], timeout=15)
