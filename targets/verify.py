"""``kubeforge verify``: the compiled ``verify/`` checks run against an inventory's hosts.

pytest runs in a child process (the generated conftest and test modules are imported fresh,
and xdist workers are processes anyway) with testinfra's paramiko backend. Hosts are reached
through a generated ssh config (0600, in a private temp directory) that names each plan node
with its address, user, key and known_hosts: the generated conftest rejects any host key not
in that file. Before that, every host is reached once the way ``apply`` reaches it (the ssh
target), so an untrusted host is refused with the same message, and trust-on-first-use
records a new key the same way. Results come back through pytest's JUnit XML, whose properties carry the node,
check and phase of every row.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from rich.table import Table
from rich.text import Text

from kubeforge.console import Console
from kubeforge.errors import KubeforgeError
from kubeforge.targets.base import HostSpec, SshOptions, TargetError
from kubeforge.targets.redact import redact

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
STYLE = {PASSED: "green", FAILED: "bold red", SKIPPED: "dim"}


@dataclass(frozen=True)
class CheckResult:
    node: str
    check: str
    phase: str
    status: str
    message: str = ""


def ssh_config(hosts: dict[str, HostSpec], known_hosts: Path) -> str:
    lines = []
    for name, h in hosts.items():
        lines += [f"Host {name}", f"  HostName {h.address}", f"  Port {h.port}",
                  f"  User {h.user}", f"  UserKnownHostsFile {known_hosts.resolve()}",
                  "  StrictHostKeyChecking yes"]
        if h.key_file:
            lines.append(f"  IdentityFile {Path(h.key_file).resolve()}")
    return "\n".join(lines) + "\n"


def pytest_args(suite: Path, hosts: dict[str, HostSpec], config: Path, report: Path,
                until: str | None, phases: Iterable[str], preflight: bool,
                jobs: int) -> list[str]:
    args = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(suite), f"--hosts={','.join(f'paramiko://{n}' for n in hosts)}",
            f"--ssh-config={config}", f"--junitxml={report}", "-o", "junit_family=xunit1"]
    if until:
        args.append(f"--kf-until={until}")
    args += [f"--kf-phase={p}" for p in phases]
    if preflight:
        args.append("--kf-preflight")
    if any(h.needs_sudo for h in hosts.values()):
        args.append("--sudo")  # 0600 keys are only readable as root
    if jobs > 1:
        args += ["-n", str(jobs)]  # one connection per host per worker; worth it from ~3 hosts
    return args


def parse_report(report: Path) -> list[CheckResult]:
    results = []
    for case in ET.parse(report).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        status, message = PASSED, ""
        for tag, kind in (("failure", FAILED), ("error", FAILED), ("skipped", SKIPPED)):
            found = case.find(tag)
            if found is not None:
                status = kind
                message = (found.get("message") or "").splitlines()[0] if found.get(
                    "message") else ""
                break
        results.append(CheckResult(props.get("kf_node", "-"),
                                   props.get("kf_check", case.get("name", "?")),
                                   props.get("kf_phase", "-"), status, redact(message)[:240]))
    return results


def connect_all(hosts: dict[str, HostSpec], options: SshOptions) -> None:
    """Reach every host once as ``apply`` does; raise one TargetError naming each host that
    cannot be reached or trusted."""
    from concurrent.futures import ThreadPoolExecutor

    from kubeforge.targets.ssh import SshTarget

    target = SshTarget(options)

    def reach(host: HostSpec) -> str | None:
        try:
            target.open(host)
        except TargetError as exc:
            return str(exc)
        return None

    try:
        with ThreadPoolExecutor(max_workers=min(8, len(hosts) or 1)) as pool:
            problems = [p for p in pool.map(reach, hosts.values()) if p]
    finally:
        target.close()
    if problems:
        raise TargetError("\n".join(problems))


def run_checks(build_root: Path, hosts: dict[str, HostSpec], options: SshOptions, *,
               until: str | None = None, phases: Iterable[str] = (), preflight: bool = False,
               jobs: int = 0) -> list[CheckResult]:
    suite = (build_root / "verify").resolve()  # pytest runs from a temp directory
    if not (suite / "conftest.py").is_file():
        raise KubeforgeError(f"{suite} holds no generated checks; compile the file first")
    connect_all(hosts, options)
    known_hosts = Path(options.known_hosts)
    jobs = jobs or min(4, len(hosts), os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="kubeforge-verify-") as tmp:
        config, report = Path(tmp) / "ssh_config", Path(tmp) / "report.xml"
        config.write_text(ssh_config(hosts, known_hosts))
        config.chmod(0o600)
        proc = subprocess.run(pytest_args(suite, hosts, config, report, until, phases,
                                          preflight, jobs),
                              capture_output=True, text=True, cwd=tmp)
        if not report.exists():
            raise KubeforgeError("the checks did not run: "
                                 + redact((proc.stdout + proc.stderr).strip())[-2000:])
        # Rows of nodes outside ``hosts`` (verify --limit) are skipped by the suite, as
        # "not among --hosts": they say nothing about the hosts asked for, so leave them out.
        return [r for r in parse_report(report) if r.node in hosts or r.node == "-"]


def render(results: list[CheckResult], console: Console, show_passed: bool = True) -> None:
    """One table per host: every check with its phase and outcome; then the totals."""
    for node in sorted({r.node for r in results}):
        rows = [r for r in sorted((r for r in results if r.node == node), key=lambda r: r.check)
                if r.status != PASSED or show_passed]
        table = Table(title=f"verify {node}", title_justify="left")
        # A check names a path, which must stay whole to be copied: the column is as wide as
        # the longest check, and a check's detail goes on the lines below it, wrapped at spaces
        # within that width (a fourth column would squeeze the paths on an 80-column screen).
        table.add_column("check / detail",
                         min_width=max((len(r.check) for r in rows), default=5))
        table.add_column("phase", no_wrap=True)
        table.add_column("result", no_wrap=True)
        for r in rows:
            cell = Text(r.check)
            if r.message:
                cell.append("\n  " + r.message, style="dim")
            table.add_row(cell, r.phase, Text(r.status, style=STYLE[r.status]))
        console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in (PASSED, FAILED, SKIPPED)}
    console.print(f"{len(results)} checks: {counts[PASSED]} passed, {counts[FAILED]} failed, "
                  f"{counts[SKIPPED]} skipped", highlight=False)


def as_json(results: list[CheckResult]) -> dict:
    return {"ok": not any(r.status == FAILED for r in results),
            "checks": [asdict(r) for r in results]}
