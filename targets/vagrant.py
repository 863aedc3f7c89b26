"""Vagrant machines from the compiled ``Vagrantfile``: bring them up, query them, destroy them.

Vagrant only provisions. The cluster work is the same SSH plan as for any host, so ``up``
ends where ``kubeforge vagrant inventory`` (:mod:`kubeforge.targets.vagrant_inventory`)
takes over. Every ``vagrant`` call runs in the build root (where the ``Vagrantfile`` and
Vagrant's ``.vagrant/`` live) with a timeout, and its output goes to a callback for progress.

The docker provider (machines without virtualisation) reuses the sandbox's pieces: the
daemon it starts (:mod:`~kubeforge.targets.sandbox_daemon`), its systemd + sshd image
(:mod:`~kubeforge.targets.sandbox_image`) and its client key files. That daemon runs with
``--bridge=none``, and Vagrant's docker provider reaches ssh only through a published port of
the container's first network, so each cluster gets a plain bridge network of its own for
eth0 (``kubeforge-vagrant-<cluster>``); the declared address is on eth1, on the network
Vagrant makes for the ``private_network``, as with VirtualBox and libvirt.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubeforge.compiler.artifacts import write_atomic
from kubeforge.compiler.ir import Cluster
from kubeforge.errors import KubeforgeError

PROVIDERS = ("virtualbox", "libvirt", "docker")
UP_TIMEOUT = 1800.0  # a first `up` downloads boxes
DESTROY_TIMEOUT = 600.0
QUERY_TIMEOUT = 120.0
#: kubeforge's files inside Vagrant's directory: the docker provider's key and our record.
OWN_DIR = Path(".vagrant") / "kubeforge"
NETWORK_LABEL = "kubeforge.vagrant.dir"

Lines = Callable[[str], None]


class VagrantError(KubeforgeError):
    """A vagrant command failed or the machines are not in the state a command needs."""


class VagrantMissing(VagrantError):
    """vagrant itself or the chosen provider is not installed."""


@dataclass(frozen=True)
class Machine:
    name: str
    provider: str
    state: str  # running | not_created | poweroff | stopped | ...


def require_vagrant() -> str:
    path = shutil.which("vagrant")
    if path is None:
        raise VagrantMissing("vagrant is not installed; install it with: apt-get install vagrant "
                             "(Debian/Ubuntu) or from https://developer.hashicorp.com/vagrant")
    return path


def vagrant(root: Path, *args: str, timeout: float, env: dict[str, str] | None = None,
            on_line: Lines | None = None) -> str:
    """Run ``vagrant ARGS`` in ``root``; returns stdout. Output lines go to ``on_line`` as they
    come, since an ``up`` can take minutes. A timeout kills the whole process group: vagrant
    runs ssh and docker children that would otherwise outlive it."""
    cmd = [require_vagrant(), *args]
    proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            env={**os.environ, "VAGRANT_NO_COLOR": "1", **(env or {})},
                            start_new_session=True)
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    reader.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip())
        proc.wait()
        reader.join()
    finally:
        timer.cancel()
    if expired.is_set():
        raise VagrantError(f"`vagrant {' '.join(args)}` did not finish within {timeout:.0f} s "
                           f"(in {root})")
    if proc.returncode != 0:
        detail = "".join(errors).strip() or "".join(lines[-15:]).strip()
        raise VagrantError(f"`vagrant {' '.join(args)}` failed (exit {proc.returncode}) in "
                           f"{root}:\n{detail}")
    return "".join(lines)


def require_provider(provider: str) -> None:
    """Name what to install when ``provider`` cannot work here. The docker provider's daemon
    and image are the sandbox's business (it installs Debian's docker.io when it can)."""
    if provider == "virtualbox" and shutil.which("VBoxManage") is None:
        raise VagrantMissing(
            "provider virtualbox: VBoxManage not found; install VirtualBox "
            "(https://www.virtualbox.org/wiki/Linux_Downloads), or use --provider libvirt "
            "(apt-get install vagrant-libvirt libvirt-daemon-system) or --provider docker")
    if provider == "libvirt":
        plugins = vagrant(Path.cwd(), "plugin", "list", timeout=QUERY_TIMEOUT)
        if "vagrant-libvirt" not in plugins:
            raise VagrantMissing(
                "provider libvirt: the vagrant-libvirt plugin is not installed; install it "
                "with: apt-get install vagrant-libvirt libvirt-daemon-system "
                "(or: vagrant plugin install vagrant-libvirt)")
        if shutil.which("virsh") is None:
            raise VagrantMissing("provider libvirt: libvirt is not installed; install it with: "
                                 "apt-get install libvirt-daemon-system")


def created(root: Path) -> dict[str, str]:
    """Machine -> provider for the machines Vagrant has created (it keeps an ``id`` file per
    machine under ``.vagrant/machines/<machine>/<provider>/`` until destroyed)."""
    return {path.parent.parent.name: path.parent.name
            for path in sorted((root / ".vagrant" / "machines").glob("*/*/id"))}


def _provider_env(machines: dict[str, str]) -> dict[str, str]:
    """For machines not created, Vagrant asks the default provider about them (libvirt when
    its plugin is installed, even with no libvirt daemon); make that the provider in use."""
    providers = sorted(set(machines.values()))
    return {"VAGRANT_DEFAULT_PROVIDER": providers[0]} if len(providers) == 1 else {}


def status(root: Path) -> list[Machine]:
    """Every machine of the Vagrantfile with its provider and state."""
    fields: dict[str, dict[str, str]] = {}
    text = vagrant(root, "status", "--machine-readable", timeout=QUERY_TIMEOUT,
                   env=_provider_env(created(root)))
    for line in text.splitlines():
        parts = line.split(",", 3)  # timestamp,target,type,data
        if len(parts) == 4 and parts[1] and parts[2] in ("provider-name", "state"):
            fields.setdefault(parts[1], {})[parts[2]] = parts[3]
    return [Machine(name, f.get("provider-name", "?"), f.get("state", "?"))
            for name, f in fields.items()]


def require_running(root: Path, cluster: Cluster) -> list[Machine]:
    """The cluster's machines, all running; else an error naming those that are not."""
    require_vagrant()
    if not created(root):
        raise VagrantError(f"no Vagrant machines in {root}; run `kubeforge vagrant up` first")
    machines = {m.name: m for m in status(root)}
    idle = [f"{n.name} ({machines[n.name].state if n.name in machines else 'unknown'})"
            for n in cluster.nodes if machines.get(n.name, Machine(n.name, "?", "?")).state
            != "running"]
    if idle:
        raise VagrantError(f"machines not running: {', '.join(idle)}; run "
                           "`kubeforge vagrant up` first")
    return [machines[n.name] for n in cluster.nodes]


# ============================================================================== docker


def _record_path(root: Path) -> Path:
    return root / OWN_DIR / "state.json"


def _load_record(root: Path) -> dict:
    try:
        return json.loads(_record_path(root).read_text())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise VagrantError(f"{_record_path(root)} is not valid JSON ({err})") from None


def _save_record(root: Path, record: dict) -> None:
    write_atomic(_record_path(root), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(),
                 0o600)


def network_name(cluster: Cluster) -> str:
    return f"kubeforge-vagrant-{cluster.name}"


def _check_subnets(cluster: Cluster) -> None:
    """Vagrant silently joins any docker network that contains a declared address, so a
    sandbox or another project on the same subnet would get our machines; refuse instead."""
    from kubeforge.targets.sandbox_docker import inspect
    from kubeforge.targets.sandbox_run import out

    for name in out(["docker", "network", "ls", "--format", "{{.Name}}"], timeout=30).split():
        if name.startswith("vagrant_network"):
            continue
        found = inspect("network", name) or {}
        for config in (found.get("IPAM") or {}).get("Config") or []:
            subnet = ipaddress.ip_network(config.get("Subnet") or "0.0.0.0/32", strict=False)
            taken = [n.name for n in cluster.nodes if n.address in subnet]
            if taken and subnet.prefixlen > 0:
                raise VagrantError(
                    f"docker network {name} already uses {subnet}, which holds the address of "
                    f"{', '.join(taken)}; remove it or declare another `network {{ nodes ... }}`")


def _ensure_network(name: str, root: Path) -> None:
    """A plain bridge network for eth0 (published ssh port). Not --internal: docker publishes
    no ports on internal networks, and the daemon's --ip-masq=false already keeps it local."""
    from kubeforge.targets.sandbox_docker import inspect, labels_of
    from kubeforge.targets.sandbox_run import run

    existing = inspect("network", name)
    if existing is not None:
        if labels_of(existing).get(NETWORK_LABEL) != str(root):
            raise VagrantError(f"docker network {name} exists and belongs to "
                               f"{labels_of(existing).get(NETWORK_LABEL) or 'someone else'}; "
                               "run `kubeforge vagrant destroy` there first")
        return
    run(["docker", "network", "create", "--driver", "bridge", "--label",
         f"{NETWORK_LABEL}={root}", name], timeout=60)


def prepare_docker(root: Path, cluster: Cluster, say: Lines) -> dict[str, str]:
    """Daemon, image, key and eth0 network for the docker provider; returns the environment
    the Vagrantfile reads. What was acquired is recorded first, so destroy can release it."""
    from kubeforge.targets import sandbox_daemon as daemon
    from kubeforge.targets.sandbox_files import client_key
    from kubeforge.targets.sandbox_image import ensure_image, image_exists, image_tag

    own = root / OWN_DIR
    own.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = _load_record(root)
    info = daemon.acquire(str(root), own / "dockerd.log")
    record.update(provider="docker", dockerd=True)
    _save_record(root, record)
    say("dockerd started" if info["started"] else "dockerd answers")
    if not image_exists(image_tag()):
        daemon.ensure_tools(("mmdebstrap",))
        say("building the host image with mmdebstrap (about half a minute, once)")
    image, _ = ensure_image(own / "image-build.log")
    client_key(own)  # the Vagrantfile's DOCKER_SSH_KEY
    _check_subnets(cluster)
    network = network_name(cluster)
    record["network"] = network
    _save_record(root, record)
    _ensure_network(network, root)
    return {"KUBEFORGE_DOCKER_IMAGE": image, "KUBEFORGE_DOCKER_NETWORK": network}


def release_docker(root: Path) -> list[str]:
    """Undo :func:`prepare_docker` after the machines are gone; one line per action."""
    from kubeforge.targets import sandbox_daemon as daemon
    from kubeforge.targets.sandbox_docker import inspect, labels_of
    from kubeforge.targets.sandbox_run import run

    record = _load_record(root)
    done = []
    network = record.get("network")
    if network and daemon.daemon_answers():
        found = inspect("network", network)
        if found is not None and labels_of(found).get(NETWORK_LABEL) == str(root):
            run(["docker", "network", "rm", network], timeout=60)
            done.append(f"removed network {network}")
    if record.get("dockerd"):
        done.append(daemon.release(str(root)))
    _record_path(root).unlink(missing_ok=True)
    return done


# ============================================================================== up, destroy


def up(root: Path, cluster: Cluster, provider: str, on_line: Lines) -> list[Machine]:
    """Create and boot every machine; returns them once Vagrant reports them running."""
    require_vagrant()
    if provider not in PROVIDERS:
        raise VagrantError(f"unknown provider {provider}; use one of {', '.join(PROVIDERS)}")
    require_provider(provider)
    env = prepare_docker(root, cluster, on_line) if provider == "docker" else {}
    vagrant(root, "up", "--provider", provider, timeout=UP_TIMEOUT, env=env, on_line=on_line)
    return require_running(root, cluster)


def destroy(root: Path, on_line: Lines) -> list[str]:
    """Destroy every machine of the Vagrantfile in ``root`` and what ``up`` set up for them."""
    require_vagrant()
    machines = created(root)
    if not (root / "Vagrantfile").exists() or not machines:
        return [f"no Vagrant machines in {root}", *release_docker(root)]
    vagrant(root, "destroy", "--force", timeout=DESTROY_TIMEOUT, on_line=on_line,
            env=_provider_env(machines))
    return [f"destroyed {', '.join(sorted(machines))}", *release_docker(root)]
