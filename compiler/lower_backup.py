"""Lower `backup { schedule "daily"  keep 7  dir "/var/backups/etcd" }` (inside `cluster`).

The values end up in a systemd timer and service and in a shell script, so they are checked
strictly here: a schedule or directory with a line break or a quote would otherwise inject
unit directives or shell words.
"""

from __future__ import annotations

import posixpath
import re

from kubeforge.compiler.context import Lowerer
from kubeforge.compiler.ir_cluster import EtcdBackup, Install
from kubeforge.dsl.ast import Node
from kubeforge.dsl.diagnostics import did_you_mean

#: systemd.time(7)'s calendar shorthands.
SHORTHANDS = ("minutely", "hourly", "daily", "weekly", "monthly", "quarterly",
              "semiannually", "yearly", "annually")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Monday", "Tuesday",
            "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CALENDAR_CHARS = re.compile(r"[A-Za-z0-9*,./:~ -]+")
_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
#: Where a backup must not live: what a restore replaces, and what the kernel owns.
_FORBIDDEN_DIRS = ("/var/lib/etcd", "/var/lib/kubeforge/etcd-restore", "/etc/kubernetes",
                   "/proc", "/sys", "/dev", "/run")
MAX_KEEP = 10000


def lower_backup(lw: Lowerer, stmt: Node | None, topology: str, install: Install
                 ) -> EtcdBackup | None:
    if stmt is None:
        return None
    body = tuple(stmt.body or ())
    lw.unique_stmts(body, "the backup block")
    backup = EtcdBackup(span=stmt.span)
    schedule, keep, directory = backup.schedule, backup.keep, backup.dir
    for item in body:
        value = item.value()
        if item.kind == "schedule":
            schedule = _schedule(lw, value) or schedule
        elif item.kind == "backup_keep":
            keep = int(value.text)
            if not 1 <= keep <= MAX_KEEP:
                lw.error("E105", f"`keep {keep}`: keep 1 to {MAX_KEEP} snapshots", value.span,
                         "the number of newest snapshots each member keeps, e.g. `keep 7`")
        elif item.kind == "backup_dir":
            directory = _directory(lw, value) or directory
    if topology == "stacked" and install.method == "packages":
        lw.error("E115", "`backup` with `etcd stacked` needs etcdctl on the control planes, "
                         "which `install packages` does not provide (etcd runs from an image)",
                 stmt.span, "use `install bundle path \"...\"` (it ships etcdctl and etcdutl "
                            "to the control planes) or `install preinstalled` with both on "
                            "the hosts")
    return EtcdBackup(schedule, keep, directory, stmt.span)


def _schedule(lw: Lowerer, value) -> str | None:
    text = str(value.py).strip()
    example = 'e.g. `schedule "daily"`, `schedule "*-*-* 02:30:00"` or `schedule "Mon 03:00"`'
    if re.fullmatch(r"[A-Za-z]+", text):
        if text in SHORTHANDS:
            return text
        lw.error("E105", f"unknown schedule `{text}`", value.span,
                 did_you_mean(text, list(SHORTHANDS)) or
                 "a systemd calendar shorthand (" + ", ".join(SHORTHANDS[:5]) + ", ...)")
        return None
    if not text or not _CALENDAR_CHARS.fullmatch(text) \
            or not re.search(r"[0-9*]", text):
        lw.error("E105", f"schedule `{value.py}` is not a systemd calendar expression",
                 value.span, "a shorthand or `[weekday] date time` (systemd.time(7)), " + example)
        return None
    for word in re.findall(r"[A-Za-z]+", text):
        if word not in WEEKDAYS:
            lw.error("E105", f"schedule `{text}`: `{word}` is not a weekday", value.span,
                     did_you_mean(word, list(WEEKDAYS)) or example)
            return None
    return text


def _directory(lw: Lowerer, value) -> str | None:
    text = str(value.py)
    if not _PATH.fullmatch(text):
        lw.error("E105", f"backup dir `{text}` must be an absolute path of letters, digits "
                         "and `._@+-/`", value.span, 'e.g. `dir "/var/backups/etcd"`')
        return None
    path = posixpath.normpath(text)
    if path == "/":
        lw.error("E105", "backup dir `/`: snapshots need a directory of their own",
                 value.span, 'e.g. `dir "/var/backups/etcd"`')
        return None
    for forbidden in _FORBIDDEN_DIRS:
        if path == forbidden or path.startswith(forbidden + "/"):
            what = "a restore replaces it" if "etcd" in forbidden else "it is not for data"
            lw.error("E105", f"backup dir `{text}` overlaps {forbidden} ({what})", value.span,
                     'keep snapshots apart, e.g. `dir "/var/backups/etcd"`')
            return None
    return path
