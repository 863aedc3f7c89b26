"""Machine-wide kernel settings the kubelet needs inside sandbox hosts, set and put back.

A sandbox host shares the machine's kernel. The kubelet's container manager insists on a few
kernel settings (``vm.overcommit_memory=1``, ``kernel.panic=10``, ``kernel.panic_on_oops=1``)
and fails to start when it cannot set them, which it cannot from inside a container where
``/proc/sys`` is read-only; these settings are not namespaced, so they can only be set on the
machine. Several kubelets and systemds on one machine also exhaust the default inotify
instance limit. Every sandbox of the machine shares one record: the first to arrive saves the
machine's values and sets the kubelet's, the last to leave restores what was saved.
"""

from __future__ import annotations

import json
from pathlib import Path

from kubeforge.targets.sandbox_run import RUN_DIR, locked

RECORD = RUN_DIR / "kernel.json"
PROC_SYS = Path("/proc/sys")

#: What the kubelet sets itself when it may (pkg/kubelet/cm/container_manager_linux.go,
#: setupKernelTunables): it refuses to start unless these hold.
KUBELET_SYSCTLS = {"vm.overcommit_memory": "1", "vm.panic_on_oom": "0", "kernel.panic": "10",
                   "kernel.panic_on_oops": "1"}
#: Raised, never lowered: each host's systemd, containerd and kubelet hold inotify instances.
MINIMUMS = {"fs.inotify.max_user_instances": 1024, "fs.inotify.max_user_watches": 524288}


def _path(name: str) -> Path:
    return PROC_SYS / name.replace(".", "/")


def read(name: str) -> str | None:
    try:
        return _path(name).read_text().strip()
    except OSError:
        return None


def wanted() -> dict[str, str]:
    """The values sandbox hosts need, given the machine's current ones."""
    values = dict(KUBELET_SYSCTLS)
    for name, minimum in MINIMUMS.items():
        current = read(name)
        if current is not None and int(current) < minimum:
            values[name] = str(minimum)
    return values


def _write(name: str, value: str) -> None:
    if read(name) not in (None, value):
        _path(name).write_text(value + "\n")


def _load() -> dict:
    try:
        return json.loads(RECORD.read_text())
    except (OSError, ValueError):
        return {"users": [], "before": {}}


def _save(record: dict) -> None:
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    if record["users"]:
        RECORD.write_text(json.dumps(record, indent=2, sort_keys=True))
    else:
        RECORD.unlink(missing_ok=True)


def acquire(user: str) -> dict[str, dict[str, str | None]]:
    """Set what the kubelet needs; returns {name: {"before": .., "after": ..}} of the values
    this call changed (empty when another sandbox already set them)."""
    with locked("kernel"):
        record = _load()
        changed = {}
        for name, value in wanted().items():
            before = read(name)
            if before is None or before == value:
                continue
            record["before"].setdefault(name, before)
            _write(name, value)
            changed[name] = {"before": before, "after": value}
        if user not in record["users"]:
            record["users"].append(user)
        _save(record)
        return changed


def release(user: str) -> str:
    """Leave; the last sandbox out restores the machine's values. One line says what happened."""
    with locked("kernel"):
        record = _load()
        if user not in record["users"]:
            return "kernel settings: not set by this sandbox"
        record["users"].remove(user)
        if record["users"]:
            _save(record)
            return f"kernel settings: still used by {len(record['users'])} other sandbox(es)"
        for name, value in record["before"].items():
            _write(name, value)
        restored = len(record["before"])
        record["before"] = {}
        _save(record)
        return f"kernel settings: {restored} restored"
