"""The SSH target: one paramiko connection per host, reused for every step on it.

Host keys are verified against a known_hosts file and a mismatch is refused; a missing key is
refused too unless trust-on-first-use was asked for, which records it. A jump host is reached
first and each target connection is tunnelled through a ``direct-tcpip`` channel of it
(ssh's ProxyJump). Every command runs under ``sh`` (through ``sudo -n`` for a non-root user
with become) and under the remote ``timeout`` program when it exists, so a command that
outlives its step timeout is stopped on the host, not only abandoned by us.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import select
import shlex
import threading
import time

import paramiko

# paramiko logs a failed handshake (a port that answers but is not sshd) with its traceback;
# with no handler of the program's own, Python's last-resort handler would print it under our
# one-line error. The errors reach the user as TargetError messages instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

from kubeforge.compiler import hostport
from kubeforge.targets import known_hosts
from kubeforge.targets.base import (CommandOutput, ConnectionLost, HostSpec, SshOptions, StepTimeout, TargetError)

#: Extra seconds we wait beyond a step's timeout for the remote ``timeout`` to report.
GRACE = 10.0
#: How long output may still arrive after the exit status (see ``run``).
EOF_GRACE = 2.0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<unpadded base64>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown key: refuse, or record it when trust-on-first-use was asked for."""

    def __init__(self, options: SshOptions, lock: threading.Lock, label: str) -> None:
        self.options = options
        self.lock = lock
        self.label = label

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        path = self.options.known_hosts
        if not self.options.trust_on_first_use:
            raise TargetError(
                f"{self.label}: host key {key.get_name()} {fingerprint(key)} is not in {path}; "
                "add it (ssh-keyscan) or pass --trust-on-first-use to record it")
        with self.lock:
            known_hosts.append(path, hostname, key)  # paramiko names it [host]:port already
        client.get_host_keys().add(hostname, key.get_name(), key)


class SshSession:
    def __init__(self, host: HostSpec, client: paramiko.SSHClient,
                 jump: paramiko.SSHClient | None) -> None:
        self.host = host
        self._client = client
        self._jump = jump

    def _wrap(self, script: str, timeout: float) -> str:
        inner = shlex.quote(script)
        wrapped = (f"if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 {int(timeout)}"
                   f" sh -c {inner}; else exec sh -c {inner}; fi")
        if self.host.needs_sudo:
            # -n: never prompt (a prompt would hang until the timeout); -H: root's HOME.
            return (f"sudo -n -H -u {shlex.quote(self.host.become_user)} -- "
                    f"sh -c {shlex.quote(wrapped)}")
        return f"sh -c {shlex.quote(wrapped)}"

    def run(self, script: str, *, timeout: float, stdin: bytes | None = None) -> CommandOutput:
        start = time.monotonic()
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost(f"{self.host.name}: the connection is closed")
        try:
            chan = transport.open_session(timeout=10)
            chan.exec_command(self._wrap(script, timeout))
            if stdin is not None:
                # A memoryview: paramiko slices what is left after every packet, and slicing
                # bytes copies them (quadratic: 1 MB/s for a 40 MB binary, 50 MB/s like this).
                chan.sendall(memoryview(stdin))
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            exited: float | None = None
            deadline = start + timeout + GRACE
            while True:
                if time.monotonic() > deadline:
                    chan.close()
                    raise StepTimeout(f"{self.host.name}: no result after {timeout:.0f}s")
                select.select([chan], [], [], 0.5)
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and not chan.recv_ready() \
                        and not chan.recv_stderr_ready():
                    # sshd sends the exit status when the command ends, which can be before
                    # the last of its output (still in the pipe) went out: the output is
                    # complete at EOF. A background child that keeps the pipe open never
                    # sends EOF, so it gets a short grace, not the step's whole timeout.
                    if chan.eof_received or chan.closed:
                        break
                    if exited is None:
                        exited = time.monotonic()
                    elif time.monotonic() - exited > EOF_GRACE:
                        break
                if chan.closed and not chan.exit_status_ready():
                    raise ConnectionLost(f"{self.host.name}: the channel closed mid-command")
                if not transport.is_active():
                    raise ConnectionLost(f"{self.host.name}: the connection dropped "
                                         "mid-command")
            code = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"{self.host.name}: {exc or type(exc).__name__}") from exc
        # 124 is timeout(1) giving up; 137 is its follow-up KILL.
        if code in (124, 137) and time.monotonic() - start >= timeout - 1:
            raise StepTimeout(f"{self.host.name}: stopped after its {timeout:.0f}s timeout")
        return CommandOutput(code, bytes(out), bytes(err), time.monotonic() - start)

    def sftp(self) -> paramiko.SFTPClient:
        """An SFTP channel on this connection, as the login user (see targets.transfer)."""
        try:
            return self._client.open_sftp()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"{self.host.name}: no SFTP channel: "
                                 f"{exc or type(exc).__name__}") from exc

    def close(self) -> None:
        self._client.close()
        if self._jump is not None:
            self._jump.close()


class SshTarget:
    name = "ssh"

    def __init__(self, options: SshOptions) -> None:
        self.options = options
        self._lock = threading.Lock()  # known_hosts writes
        self._sessions: list[SshSession] = []

    def _client(self, label: str) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        path = self.options.known_hosts
        if path.exists():
            try:
                client.load_host_keys(str(path))
            except (OSError, paramiko.SSHException) as exc:
                raise TargetError(f"cannot read known_hosts {path}: {exc}") from None
            except paramiko.hostkeys.InvalidHostKey as exc:
                # paramiko reads no @cert-authority/@revoked lines; say so rather than crash.
                line = next((n for n, text in enumerate(path.read_text().splitlines(), 1)
                             if text.strip() == exc.line), "?")
                raise TargetError(f"known_hosts {path} line {line}: paramiko cannot read "
                                  f"`{exc.line[:60]}` (markers such as @cert-authority are not "
                                  "supported); give kubeforge its own file with --known-hosts"
                                  ) from None
        client.set_missing_host_key_policy(_HostKeyPolicy(self.options, self._lock, label))
        return client

    def _connect(self, client: paramiko.SSHClient, label: str, address: str, port: int,
                 user: str, key_file: str | None, sock: object = None) -> None:
        try:
            client.connect(address, port=port, username=user, key_filename=key_file,
                           look_for_keys=key_file is None, allow_agent=key_file is None,
                           timeout=self.options.connect_timeout,
                           banner_timeout=self.options.connect_timeout,
                           auth_timeout=self.options.connect_timeout, sock=sock)
        except paramiko.BadHostKeyException as exc:
            raise TargetError(
                f"{label}: host key mismatch for {known_hosts.known_name(address, port)}: it offers "
                f"{exc.key.get_name()} {fingerprint(exc.key)} but {self.options.known_hosts} "
                f"expects {fingerprint(exc.expected_key)}. Refusing to connect: the host was "
                "reinstalled or someone is in the way; check, then remove the old line "
                "(ssh-keygen -R)") from None
        except paramiko.AuthenticationException as exc:
            raise TargetError(f"{label}: authentication as {user} failed: {exc}") from None
        except TargetError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TargetError(f"{label}: cannot connect to {hostport.join(address, port)}: "
                              f"{exc or type(exc).__name__}") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)  # notice a dead peer between long steps

    def _open_jump(self, key_file: str | None) -> paramiko.SSHClient:
        jump = self.options.jump
        assert jump is not None
        label = f"jump host {jump.address}"
        client = self._client(label)
        try:
            self._connect(client, label, jump.address, jump.port, jump.user,
                          self.options.jump_key_file or key_file)
        except BaseException:
            client.close()
            raise
        return client

    def check_jump(self, key_file: str | None) -> None:
        """Reach the jump host alone, with this target's host key rules: a transport that
        tunnels through it by other means (the ansible target's ProxyCommand, whose ssh
        cannot report back) gets a refusal in these words before it starts."""
        if self.options.jump is not None:
            self._open_jump(key_file).close()

    def open(self, host: HostSpec) -> SshSession:
        jump_client = None
        sock = None
        jump = self.options.jump
        if jump is not None:
            jump_client = self._open_jump(host.key_file)
            try:
                sock = jump_client.get_transport().open_channel(  # type: ignore[union-attr]
                    "direct-tcpip", (host.address, host.port), ("127.0.0.1", 0),
                    timeout=self.options.connect_timeout)
            except (paramiko.SSHException, OSError) as exc:
                jump_client.close()
                raise TargetError(f"{host.name}: jump host {jump.address} cannot reach "
                                  f"{hostport.join(host.address, host.port)}: {exc}") from None
        client = self._client(host.name)
        try:
            self._connect(client, host.name, host.address, host.port, host.user, host.key_file,
                          sock)
        except BaseException:
            client.close()
            if jump_client is not None:
                jump_client.close()
            raise
        session = SshSession(host, client, jump_client)
        with self._lock:
            self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

