"""From running Vagrant machines to an Ansible inventory and a known_hosts file.

``vagrant ssh-config`` gives each machine's user, key and ssh endpoint, but turns host-key
checking off; the keys in known_hosts are read from each machine's own
``/etc/ssh/ssh_host_*_key.pub`` instead, so ``plan``, ``apply`` and ``verify`` connect with
host-key checking on. For docker machines they are read through the docker daemon (``docker
exec``), a local channel that needs no host key. VirtualBox and libvirt machines are only
reachable over ``vagrant ssh``, which checks no host key: reading the keys that way is trust
on first use, so it is done only when asked for (``--trust-on-first-use``).

Which address the inventory uses: with the docker provider the declared address itself
(port 22), since Vagrant's network for it is a bridge on this very machine; deploying to the
declared addresses keeps the inventory identical in shape to one for real hosts. VirtualBox
and libvirt machines are reached where ``vagrant ssh-config`` says (a forwarded port on
127.0.0.1, or the management network), which works whatever the laptop's host-only setup is.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko
import yaml

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.inventory import inventory_groups
from kubeforge.compiler.ir import Cluster
from kubeforge.targets import known_hosts
from kubeforge.targets.base import ansible_host_key_vars
from kubeforge.targets.vagrant import QUERY_TIMEOUT, Machine, VagrantError, vagrant

HOST_KEY_FILES = "cat /etc/ssh/ssh_host_*_key.pub"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    key_file: str

    @property
    def known_name(self) -> str:
        """How OpenSSH and paramiko name the host in known_hosts."""
        return known_hosts.known_name(self.host, self.port)


def ssh_endpoints(text: str, names: list[str]) -> dict[str, Endpoint]:
    """Each machine's endpoint from ``vagrant ssh-config`` output."""
    config = paramiko.SSHConfig.from_text(text)
    found = {}
    for name in names:
        entry = config.lookup(name)
        if "hostname" not in entry or entry["hostname"] == name or not entry.get("identityfile"):
            raise VagrantError(f"`vagrant ssh-config` says nothing usable about {name}")
        found[name] = Endpoint(entry["hostname"], int(entry.get("port", 22)),
                               entry.get("user", "vagrant"), entry["identityfile"][0])
    return found


def parse_host_keys(name: str, text: str) -> list[str]:
    """``type base64`` lines, each checked to be a public key paramiko can use."""
    keys = []
    for line in text.replace("\r", "").splitlines():
        words = line.split()
        if len(words) < 2 or not words[0].startswith(("ssh-", "ecdsa-")):
            continue
        try:
            known_hosts.public_key(words[0], words[1])
        except known_hosts.HostKeyError as err:
            raise VagrantError(f"{name}: {err}") from None
        keys.append(f"{words[0]} {words[1]}")
    if not keys:
        raise VagrantError(f"{name}: no SSH host keys in /etc/ssh/ssh_host_*_key.pub")
    return keys


def container_id(root: Path, name: str) -> str:
    """The docker container of machine ``name`` (Vagrant keeps its id per machine)."""
    try:
        return (root / ".vagrant" / "machines" / name / "docker" / "id").read_text().strip()
    except OSError:
        raise VagrantError(f"{name}: Vagrant records no docker container for it in {root}; "
                           "run `kubeforge vagrant up` first") from None


def host_keys(root: Path, machines: list[Machine],
              trust_on_first_use: bool = False) -> dict[str, list[str]]:
    """Every machine's public host keys, read from its filesystem: through docker for docker
    machines, else over ``vagrant ssh`` (unverified, so only with ``trust_on_first_use``).
    In parallel, since each ``vagrant ssh`` pays Vagrant's start-up of a few seconds."""
    from kubeforge.targets.sandbox_run import out

    unverified = [m.name for m in machines if m.provider != "docker"]
    if unverified and not trust_on_first_use:
        raise VagrantError(
            f"the host keys of {', '.join(unverified)} can only be read over `vagrant ssh`, "
            "which checks no host key (trust on first use); pass --trust-on-first-use to "
            "read and record them that way")

    def read(machine: Machine) -> list[str]:
        if machine.provider == "docker":
            text = out(["docker", "exec", container_id(root, machine.name), "sh", "-c",
                        HOST_KEY_FILES], timeout=QUERY_TIMEOUT)
        else:
            text = vagrant(root, "ssh", machine.name, "-c", HOST_KEY_FILES,
                           timeout=QUERY_TIMEOUT)
        return parse_host_keys(machine.name, text)

    with ThreadPoolExecutor(max_workers=min(8, len(machines) or 1)) as pool:
        return dict(zip([m.name for m in machines], pool.map(read, machines)))


def endpoints_for(cluster: Cluster, machines: list[Machine],
                  ssh: dict[str, Endpoint]) -> dict[str, Endpoint]:
    """The endpoint the inventory uses per node (see the module docstring)."""
    by_name = {m.name: m for m in machines}
    chosen = {}
    for node in cluster.nodes:
        endpoint = ssh[node.name]
        if by_name[node.name].provider == "docker":
            endpoint = Endpoint(str(node.address), 22, endpoint.user, endpoint.key_file)
        chosen[node.name] = endpoint
    return chosen


def known_hosts_text(endpoints: dict[str, Endpoint], keys: dict[str, list[str]]) -> str:
    return known_hosts.entries_text(
        (endpoints[name].known_name, known_hosts.public_key(*key.split()[:2]))
        for name in endpoints for key in keys[name])


def inventory_text(cluster: Cluster, endpoints: dict[str, Endpoint], known_hosts: Path) -> str:
    """Ansible's YAML form: connection variables per host under ``all.hosts``, membership in
    the kubeforge groups by role, and ssh options so plain ansible checks host keys too."""
    hosts = {}
    for node in cluster.nodes:
        e = endpoints[node.name]
        hosts[node.name] = {"ansible_host": e.host, "ansible_port": e.port, "ansible_user": e.user,
                            "ansible_ssh_private_key_file": e.key_file}
        if e.user != "root":
            hosts[node.name]["ansible_become"] = True
    children = inventory_groups([(n.name, n.roles, None) for n in cluster.nodes])
    doc = {"all": {
        "vars": ansible_host_key_vars(known_hosts),
        "hosts": hosts,
        "children": children,
    }}
    header = (f"# Vagrant machines of cluster {cluster.name}, written by `kubeforge vagrant "
              f"inventory`.\n# Host keys: {known_hosts}\n")
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def write_inventory(root: Path, cluster: Cluster, machines: list[Machine], inventory: Path,
                    known_hosts: Path, trust_on_first_use: bool = False) -> dict[str, Endpoint]:
    """Query the running machines and write both files; returns the endpoints used."""
    names = [n.name for n in cluster.nodes]
    keys = host_keys(root, machines, trust_on_first_use)
    ssh = ssh_endpoints(vagrant(root, "ssh-config", timeout=QUERY_TIMEOUT), names)
    endpoints = endpoints_for(cluster, machines, ssh)
    write_atomic(known_hosts, known_hosts_text(endpoints, keys).encode(), 0o644)
    write_atomic(inventory, inventory_text(cluster, endpoints, known_hosts.absolute()).encode(),
                 0o644)
    return endpoints
