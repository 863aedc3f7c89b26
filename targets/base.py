"""What every target shares: hosts to reach, the session protocol, options and step results.

A target only has to run a shell script on a host (with optional stdin) and report the exit
code and output: uploads, probes and services are all expressed as scripts by
``targets.actions``, so a new target (ansible, local containers) implements ``Target.open``
and ``Session.run`` and gets the scheduler, state, resume and progress for free.
"""

from __future__ import annotations

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
