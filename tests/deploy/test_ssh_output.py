"""The SSH target reads a command's whole output. sshd sends the exit status as soon as the
command ends, and what the command wrote last can still be in its pipe then: the output is
complete only at EOF. (A batch of upload checks lost its last answer this way on a real
sandbox host.) A paramiko server on a local port answers in exactly that order."""

from __future__ import annotations

import time

import paramiko
import pytest

from kubeforge.targets.base import HostSpec, SshOptions
from kubeforge.targets.ssh import SshTarget
from tests.deploy.ssh_server import SshServer
from tests.deploy.test_known_hosts import client_key_path


def _session(tmp_path, on_exec):
    server = SshServer(paramiko.Ed25519Key.from_private_key_file(str(client_key_path("host"))),
                       on_exec)
    target = SshTarget(SshOptions(known_hosts=tmp_path / "known_hosts", trust_on_first_use=True))
    session = target.open(HostSpec("n1", "127.0.0.1", server.port, "root",
                                   str(client_key_path("client"))))
    return server, target, session


@pytest.fixture
def answer(tmp_path):
    opened = []

    def run(on_exec, **kwargs):
        server, target, session = _session(tmp_path, on_exec)
        opened.append((server, target))
        return session.run("true", **kwargs)

    yield run
    for server, target in opened:
        target.close()
        server.close()


def test_output_after_the_exit_status_is_kept(answer):
    def late(chan, command):
        chan.sendall(b"first\n")
        chan.send_exit_status(0)
        time.sleep(0.8)  # longer than the client's wait between reads
        chan.sendall(b"kf-check 0\n")
        chan.sendall_stderr(b"and a warning\n")
        chan.shutdown_write()
        chan.close()

    out = answer(late, timeout=30)
    assert (out.exit_code, out.stdout, out.stderr) == (0, b"first\nkf-check 0\n",
                                                       b"and a warning\n")


def test_a_pipe_held_open_after_the_exit_does_not_hold_the_step(answer):
    """Like a daemon started by the command that keeps its stdout: no EOF for longer than the
    step's timeout. The step still ends with its exit status and what came before, instead
    of timing out."""
    def held(chan, command):
        chan.sendall(b"started\n")
        chan.send_exit_status(3)
        time.sleep(30)
        chan.close()

    out = answer(held, timeout=1)
    assert (out.exit_code, out.stdout) == (3, b"started\n")
