"""A real SSH server (paramiko's) on 127.0.0.1 for tests of the SSH target's protocol handling:
it accepts any public key and hands each ``exec`` request to a test's function, which answers
on the channel in whatever order the test needs (sshd's own order is not always the obvious
one)."""

from __future__ import annotations

import socket
import threading
from typing import Callable

import paramiko

#: Answers one command: gets the session channel and the command line.
Exec = Callable[[paramiko.Channel, bytes], None]


class _Accept(paramiko.ServerInterface):
    def __init__(self, on_exec: Exec | None) -> None:
        self.on_exec = on_exec

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        if kind == "session" and self.on_exec is not None:
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        if self.on_exec is None:
            return False
        threading.Thread(target=self.on_exec, args=(channel, command), daemon=True).start()
        return True


class SshServer:
    """Accepts connections on a free local port until closed."""

    def __init__(self, host_key: paramiko.PKey, on_exec: Exec | None = None) -> None:
        self.host_key = host_key
        self.on_exec = on_exec
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_Accept(self.on_exec))
            except (paramiko.SSHException, EOFError, OSError):
                pass  # the client hung up (a refused key, a test ending): next one

    def close(self) -> None:
        self.sock.close()
        for t in self.transports:
            t.close()
