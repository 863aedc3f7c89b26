"""The files a sandbox hands to its users: the client key pair, known_hosts and the inventory.

Everything is written atomically with its final mode (``write_atomic``), so a reader never
sees a key file that is briefly world-readable or a half-written known_hosts.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubeforge.compiler.artifacts import write_atomic
from kubeforge.targets import known_hosts

KEY_NAME = "id_ed25519"


def client_key(directory: Path) -> tuple[Path, str]:
    """The sandbox's ed25519 client key (created once, then reused) and its public line."""
    private = directory / KEY_NAME
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        write_atomic(private, key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.OpenSSH,
                                                serialization.NoEncryption()), 0o600)
    key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} kubeforge-sandbox\n"
    write_atomic(directory / f"{KEY_NAME}.pub", line.encode(), 0o644)
    return private, line


def authorized_keys_tar(public_line: str) -> bytes:
    """A tar stream of /root/.ssh/authorized_keys (root-owned, 0700 dir, 0600 file), the form
    `docker cp -` takes; sshd's StrictModes refuses anything looser."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(".ssh")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(folder)
        data = public_line.encode()
        entry = tarfile.TarInfo(".ssh/authorized_keys")
        entry.mode, entry.size = 0o600, len(data)
        tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def known_hosts_text(host_keys: dict[str, list[str]]) -> str:
    """known_hosts lines, address first, from each host's own public key files."""
    return known_hosts.entries_text((address, known_hosts.public_key(*key.split()[:2]))
                                    for address, keys in host_keys.items() for key in keys)


def inventory_text(hosts, key_path: Path, known_hosts: Path | None = None) -> str:
    """An Ansible YAML inventory: every host under `all.hosts` with the standard connection
    variables, so strict loaders accept it. Hosts brought up from a cluster file are also in
    the groups of their roles (`control_plane`, `workers`, `etcd`, `loadbalancers`, as every
    inventory kubeforge writes), which is what `kubeforge apply` wants; `up -n` hosts have no
    roles, so no groups. The hosts' keys are in the known_hosts file next to it, which plain
    ansible is told to check too."""
    from kubeforge.compiler.inventory import inventory_groups
    from kubeforge.targets.base import ansible_host_key_vars

    inventory: dict = {"all": {
        "hosts": {h.name: {"ansible_host": h.address, "ansible_port": h.port,
                           "ansible_user": h.user,
                           "ansible_ssh_private_key_file": str(key_path)} for h in hosts},
    }}
    if known_hosts is not None:
        inventory["all"]["vars"] = ansible_host_key_vars(known_hosts)
    children = inventory_groups([(h.name, h.roles, None) for h in hosts])
    if children:
        inventory["all"]["children"] = children
    return "# Written by `kubeforge sandbox up`; rewritten on every up.\n" + yaml.safe_dump(
        inventory, sort_keys=False)
