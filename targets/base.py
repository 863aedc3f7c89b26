"""What every target shares: hosts to reach, the session protocol, options and step results.

A target only has to run a shell script on a host (with optional stdin) and report the exit
code and output: uploads, probes and services are all expressed as scripts by
``targets.actions``, so a new target (ansible, local containers) implements ``Target.open``
and ``Session.run`` and gets the scheduler, state, resume and progress for free.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubeforge.compiler import hostport
from kubeforge.compiler.inventory import InventoryHost
from kubeforge.errors import KubeforgeError

# Step outcomes. ``changed`` altered the host; ``unchanged`` was skipped by its check;
# ``ok`` is an always-run step (a read-only check or wait) that passed; ``skipped`` never ran
# because something it needs failed or was not applied.
CHANGED, UNCHANGED, OK, FAILED, SKIPPED = "changed", "unchanged", "ok", "failed", "skipped"


class TargetError(KubeforgeError):
    """A host cannot be reached or trusted (connection refused, host key mismatch, auth)."""


class StepTimeout(TargetError):
    """A command ran past its timeout; the remote side was told to stop it."""


class ConnectionLost(TargetError):
    """The connection dropped while a command ran: the step may be retried on a new one."""


@dataclass(frozen=True)
class HostSpec:
    """How to reach one host: the inventory's connection variables, resolved."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    become: bool = False
    become_user: str = "root"

    @property
    def needs_sudo(self) -> bool:
        return self.become and self.user != self.become_user

    @classmethod
    def from_inventory(cls, host: InventoryHost) -> "HostSpec":
        s = host.settings()
        key = s.get("key_file")
        return cls(name=host.name, address=host.address, port=int(s.get("port", 22)),
                   user=str(s.get("user", "root")),
                   key_file=str(Path(str(key)).expanduser()) if key else None,
                   become=bool(s.get("become", False)),
                   become_user=str(s.get("become_user", "root")))


@dataclass(frozen=True)
class CommandOutput:
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float


class Session(Protocol):
    """One reusable connection to one host."""

    host: HostSpec

    def run(self, script: str, *, timeout: float, stdin: bytes | None = None) -> CommandOutput:
        """Run ``script`` with ``sh`` as the become user; raise StepTimeout/ConnectionLost."""

    def close(self) -> None: ...


class Target(Protocol):
    name: str

    def open(self, host: HostSpec) -> Session:
        """Connect to ``host``; raise TargetError with a message a person can act on."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class JumpHost:
    user: str
    address: str
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> "JumpHost":
        """``[user@]host[:port]``, as ssh's ProxyJump takes it (``[ipv6]:port``)."""
        user, _, rest = text.rpartition("@")
        try:
            host, port = hostport.parse(rest)
        except hostport.HostPortError as exc:
            raise ValueError(f"jump host `{text}`: {exc}") from None
        return cls(user or "root", host, port or 22)


@dataclass(frozen=True)
class SshOptions:
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    trust_on_first_use: bool = False
    jump: JumpHost | None = None
    jump_key_file: str | None = None
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class StepResult:
    step_id: str
    host: str
    phase: str
    status: str
    seconds: float = 0.0
    attempts: int = 0
    exit_code: int | None = None
    message: str = ""
    stderr_tail: tuple[str, ...] = ()
    stdout_tail: tuple[str, ...] = ()
    started: float = 0.0  # wall clock, for the timings file


#: Ansible's default ssh_args, which an inventory's ``ansible_ssh_args`` replaces.
ANSIBLE_SSH_ARGS = ("-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s")


def host_key_options(options: SshOptions) -> list[str]:
    """OpenSSH options that check host keys against exactly ``options.known_hosts`` (no
    global file, no hashing, so the ssh target reads what ssh records), refusing unknown
    keys unless trust-on-first-use was asked for (``accept-new`` records them)."""
    known = str(Path(options.known_hosts).resolve())
    if " " in known:
        known = f'"{known}"'  # ssh reads a space as the start of a second file
    return ["-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking="
                  + ("accept-new" if options.trust_on_first_use else "yes"),
            "-o", "HashKnownHosts=no", "-o", "CheckHostIP=no"]


def ansible_host_key_vars(known_hosts: Path) -> dict[str, object]:
    """Inventory variables that make plain ansible check host keys against ``known_hosts``
    as kubeforge does: ``ansible_ssh_args`` comes first on ssh's command line (OpenSSH keeps
    the first value of an option) and ``ansible_host_key_checking`` keeps Ansible from
    adding ``StrictHostKeyChecking=no`` (ansible-runner's default) at all."""
    return {"ansible_host_key_checking": True,
            "ansible_ssh_args": shlex.join([*ANSIBLE_SSH_ARGS,
                                            *host_key_options(SshOptions(known_hosts))])}
