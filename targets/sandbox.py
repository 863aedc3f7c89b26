"""Sandbox hosts: local systemd hosts with real sshd to deploy onto, as a product feature.

``Sandbox(dir).up(n)`` starts ``node1..nodeN`` as docker containers on a private internal
bridge network (addresses .11, .12, ... of the subnet); ``Sandbox.for_cluster(dir, cluster)``
and ``up_cluster(cluster)`` start exactly the nodes a cluster file declares instead, with their
names and addresses, on the subnet that holds them. Each host has its own filesystem,
hostname, systemd as PID 1 and its own SSH host keys. ``dir`` receives the client key, a
known_hosts with every host's real key, an Ansible YAML inventory (grouped by role when the
hosts come from a cluster, so ``apply`` takes it as it is) and ``state.json``: the exact list
of what it created, which is all ``down()`` removes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.ir import Cluster
from kubeforge.targets import sandbox_daemon as daemon
from kubeforge.targets import sandbox_docker as docker
from kubeforge.targets import sandbox_kernel as kernel
from kubeforge.targets.sandbox_files import (
    authorized_keys_tar,
    client_key,
    inventory_text,
    known_hosts_text,
)
from kubeforge.targets.sandbox_image import ensure_image, image_exists, image_tag
from kubeforge.targets.sandbox_run import SandboxError, have, locked, run

DEFAULT_DIR = Path(".kubeforge/sandbox")
DEFAULT_SUBNET = "10.77.0.0/24"
DEFAULT_NAME = "kubeforge"
FIRST_HOST = 11  # node1 is .11: low addresses stay free for gateways and VIPs
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class SandboxHost:
    name: str
    address: str
    port: int
    user: str
    key_path: Path
    container: str
    roles: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**asdict(self), "key_path": str(self.key_path), "roles": list(self.roles)}


@dataclass(frozen=True)
class Wanted:
    """A host ``up`` is to bring up: its hostname, address and (from a cluster) roles."""

    name: str
    address: str
    roles: tuple[str, ...] = ()


def cluster_subnet(cluster: Cluster) -> str:
    """The sandbox subnet for ``cluster``: its declared ``network { nodes ... }``, else the
    /24 of its first control plane (the language's default, which its checks already hold
    every node to), refusing addresses a container cannot take there (network, gateway,
    broadcast)."""
    if cluster.node_cidr is not None:
        net = ipaddress.ip_network(cluster.node_cidr)
    else:
        first = next((n for n in cluster.nodes if n.is_control_plane), cluster.nodes[0])
        net = ipaddress.ip_network(f"{first.address}/24", strict=False)
    if net.version != 4:
        raise SandboxError(f"sandbox: cluster {cluster.name} uses IPv6 node addresses; "
                           "sandbox hosts are IPv4 only")
    reserved = {net.network_address, net.network_address + 1, net.broadcast_address}
    for node in cluster.nodes:
        if node.address in reserved:
            raise SandboxError(f"sandbox: node {node.name} has {node.address}, which {net} "
                               "keeps for its network, gateway or broadcast address")
    return str(net)


class Sandbox:
    """One sandbox: a directory of files plus the docker objects recorded in its state.json.
    ``subnet`` and ``name`` default to what state.json recorded, else the defaults."""

    def __init__(self, directory: Path | str = DEFAULT_DIR, *, subnet: str | None = None,
                 name: str | None = None):
        self.dir = Path(directory).absolute()
        state = self._load()
        self.name = name or state.get("name") or DEFAULT_NAME
        self.subnet = str(ipaddress.ip_network(subnet or state.get("subnet") or DEFAULT_SUBNET))
        if state.get("containers") and (state["name"], state["subnet"]) != (self.name, self.subnet):
            raise SandboxError(f"sandbox: {self.dir} already runs `{state['name']}` on "
                               f"{state['subnet']}; run `kubeforge sandbox down` first")
        self.network = f"{self.name}-sandbox"
        # Linux caps interface names at 15 characters, so the bridge is named by a hash.
        self.bridge = "kf-" + hashlib.sha256(self.name.encode()).hexdigest()[:10]

    # ----- files -----------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    @property
    def key_path(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yaml"

    def _load(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise SandboxError(f"sandbox: {self.dir / 'state.json'} is not valid JSON ({err})") from None

    def _save(self, state: dict) -> None:
        write_atomic(self.state_path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode(), 0o600)

    def hosts(self) -> list[SandboxHost]:
        return self.hosts_from(self._load())

    def hosts_from(self, state: dict) -> list[SandboxHost]:
        return [SandboxHost(h["name"], h["address"], 22, "root", self.key_path, h["container"],
                            tuple(h.get("roles", ())))
                for h in state.get("hosts", [])]

    @classmethod
    def for_cluster(cls, directory: Path | str, cluster: Cluster, *,
                    name: str | None = None) -> "Sandbox":
        """The sandbox in ``directory`` on the subnet that holds ``cluster``'s nodes."""
        return cls(directory, subnet=cluster_subnet(cluster), name=name)

    def address(self, index: int) -> str:
        net = ipaddress.ip_network(self.subnet)
        address = net.network_address + FIRST_HOST + index - 1
        if address not in net or address == net.broadcast_address:
            raise SandboxError(f"sandbox: subnet {self.subnet} has no room for host {index}")
        return str(address)

    # ----- up --------------------------------------------------------------------------
    def up(self, n: int = 3) -> list[SandboxHost]:
        """Start (or reuse and repair) hosts node1..nodeN; returns them once sshd answers."""
        if n < 1:
            raise SandboxError("sandbox: need at least one host")
        return self._locked_up([Wanted(f"node{i}", self.address(i)) for i in range(1, n + 1)])

    def up_cluster(self, cluster: Cluster) -> list[SandboxHost]:
        """Start (or reuse and repair) exactly the nodes ``cluster`` declares, by name, at
        their addresses and with their roles (the inventory's groups)."""
        if str(ipaddress.ip_network(self.subnet)) != cluster_subnet(cluster):
            raise SandboxError(f"sandbox: cluster {cluster.name} needs subnet "
                               f"{cluster_subnet(cluster)}, this sandbox uses {self.subnet}")
        return self._locked_up([Wanted(n.name, str(n.address), n.roles) for n in cluster.nodes])

    def _locked_up(self, wanted: list[Wanted]) -> list[SandboxHost]:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)  # it holds the private key
        with locked(f"sandbox-{self.name}"):
            return self._up(wanted)

    def _up(self, hosts: list[Wanted]) -> list[SandboxHost]:
        started = time.monotonic()
        state = self._load() or {"name": self.name, "subnet": self.subnet, "containers": [],
                                 "iptables": [], "network": None, "hosts": []}
        state.update(name=self.name, subnet=self.subnet)
        previous = state.get("dockerd") or {}
        info = daemon.acquire(str(self.dir), self.dir / "dockerd.log")
        if previous.get("started") and previous.get("pid") == info["pid"]:
            info = previous  # this sandbox started that very daemon earlier
        state["dockerd"] = info
        self._save(state)
        # Recorded before any host starts: a host's kubelet needs these from its first boot.
        state["kernel"] = {**state.get("kernel", {}), **kernel.acquire(str(self.dir))}
        self._save(state)

        if not image_exists(image_tag()):
            daemon.ensure_tools(("mmdebstrap",))
        image, build_seconds = ensure_image(self.dir / "image-build.log")
        state["image"] = image
        if build_seconds is not None:
            state["image_build_seconds"] = round(build_seconds, 1)

        directory = str(self.dir)
        state["network"] = {"name": self.network, "bridge": self.bridge, "subnet": self.subnet}
        self._save(state)
        docker.ensure_network(self.network, self.bridge, self.subnet, self.name, directory)
        rule = docker.vrrp_rule(self.bridge, self.name)
        docker.add_rule(rule)
        if rule not in state["iptables"]:
            state["iptables"].append(rule)
        self._save(state)

        wanted = [(h.name, f"{self.name}-{h.name}", h.address) for h in hosts]
        for container in [c for c in state["containers"] if c not in {w[1] for w in wanted}]:
            docker.remove_container(container)  # `up -n 3` after `up -n 6`: exactly 3 remain
            state["containers"].remove(container)
        _, public_line = client_key(self.dir)
        keys_tar = authorized_keys_tar(public_line)
        for hostname, container, address in wanted:
            self._ensure_host(state, hostname, container, address, image, keys_tar)
        self._wait_ready(state, wanted, image, keys_tar)

        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = list(pool.map(lambda w: docker.host_keys(w[1]), wanted))
        write_atomic(self.known_hosts, known_hosts_text(
            {address: k for (_, _, address), k in zip(wanted, keys)}).encode(), 0o644)
        state["hosts"] = [{"name": h.name, "container": c, "address": h.address,
                           "roles": list(h.roles)} for h, (_, c, _) in zip(hosts, wanted)]
        up = self.hosts_from(state)
        write_atomic(self.inventory,
                     inventory_text(up, self.key_path, self.known_hosts).encode(), 0o644)
        state["up_seconds"] = round(time.monotonic() - started, 1)
        self._save(state)
        return up

    def _ensure_host(self, state: dict, hostname: str, container: str, address: str,
                     image: str, keys_tar: bytes) -> None:
        existing = docker.inspect("container", container)
        if existing is not None:
            docker.check_owner(existing, self.name,
                               str(self.dir), f"container {container}")
            networks = existing["NetworkSettings"]["Networks"]
            ours = networks.get(self.network, {}).get("IPAMConfig") or {}
            if existing["Config"]["Image"] == image and ours.get("IPv4Address") == address:
                docker.install_key(container, keys_tar)  # repair: the key may be stale
                if not existing["State"]["Running"]:
                    run(["docker", "start", container], timeout=60)
                return
            docker.remove_container(container)  # an older image or address: rebuild the host
        if container not in state["containers"]:
            state["containers"].append(container)
            self._save(state)  # recorded before it exists, so a crash cannot leak it
        docker.create_host(container, hostname, self.network, address, image, self.name,
                           str(self.dir), keys_tar)

    def _wait_ready(self, state: dict, wanted: list, image: str, keys_tar: bytes) -> None:
        """Wait for every sshd; a host that does not answer is recreated once."""
        pending = docker.wait_for_sshd([a for _, _, a in wanted], READY_TIMEOUT)
        for hostname, container, address in [w for w in wanted if w[2] in pending]:
            docker.remove_container(container)
            docker.create_host(container, hostname, self.network, address, image, self.name,
                               str(self.dir), keys_tar)
        if pending and docker.wait_for_sshd(pending, READY_TIMEOUT):
            raise SandboxError(f"sandbox: sshd did not answer on {', '.join(pending)} within "
                               f"{READY_TIMEOUT:.0f} s; see `docker logs <container>`")
        for _, container, _ in wanted:
            docker.drop_default_route(container)

    # ----- status and down -------------------------------------------------------------
    def status(self) -> list[dict]:
        rows = []
        answering = daemon.daemon_answers()
        for host in self.hosts():
            running = False
            if answering:
                found = docker.inspect("container", host.container)
                running = bool(found and found["State"]["Running"])
            rows.append({**host.as_dict(), "running": running,
                         "sshd": running and docker.sshd_answers(host.address, host.port)})
        return rows

    def _owned(self, kind: str, name: str) -> bool:
        """It exists and carries this sandbox's labels (a same-named object of someone else
        is never removed)."""
        found = docker.inspect(kind, name)
        return found is not None and docker.owned(found, self.name, str(self.dir))

    def down(self) -> list[str]:
        """Remove exactly what state.json records; returns one line per action."""
        with locked(f"sandbox-{self.name}"):
            state = self._load()
            if not state:
                return [f"nothing recorded in {self.state_path}"]
            done = []
            answering = daemon.daemon_answers()
            for container in list(state.get("containers", [])):
                if answering and self._owned("container", container):
                    docker.remove_container(container)
                    done.append(f"removed container {container}")
                state["containers"].remove(container)
                self._save(state)
            network = state.get("network")
            if network and answering and self._owned("network", network["name"]):
                run(["docker", "network", "rm", network["name"]], timeout=60)
                done.append(f"removed network {network['name']}")
            for rule in state.get("iptables", []):
                if have("iptables") and docker.delete_rule(rule):
                    done.append(f"removed iptables rule {' '.join(rule)}")
            if state.get("dockerd"):
                done.append(daemon.release(str(self.dir)))
            if "kernel" in state:
                done.append(kernel.release(str(self.dir)))
            for path in (self.known_hosts, self.inventory, self.state_path):
                path.unlink(missing_ok=True)
            return done
