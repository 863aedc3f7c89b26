"""Run shell scripts on sandbox hosts as root, one reused SSH connection per host, with the
sandbox's own known_hosts (so a test never trusts a host key it was not given)."""

from __future__ import annotations

import paramiko


class HostShell:
    def __init__(self, box) -> None:
        self.box = box
        self.addresses = {h.name: h.address for h in box.hosts()}
        self._clients: dict[str, paramiko.SSHClient] = {}

    def __call__(self, host: str, script: str) -> tuple[int, str]:
        """Exit status and stdout of ``script`` on ``host``."""
        if host not in self._clients:
            client = paramiko.SSHClient()
            client.load_host_keys(str(self.box.known_hosts))
            client.connect(self.addresses[host], username="root",
                           key_filename=str(self.box.key_path), look_for_keys=False,
                           allow_agent=False, timeout=10)
            self._clients[host] = client
        _, out, _ = self._clients[host].exec_command(script, timeout=60)
        text = out.read().decode()
        return out.channel.recv_exit_status(), text

    def forget(self, host: str) -> None:
        """Drop ``host``'s connection (after a test cut it); the next call reconnects."""
        client = self._clients.pop(host, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
