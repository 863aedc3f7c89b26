"""Docker objects of one sandbox: its internal network, its VRRP firewall rule, its hosts.

Every object carries the labels `kubeforge.sandbox` (the sandbox name) and
`kubeforge.sandbox.dir`, so an object of another sandbox (or of someone else) with the same
name is refused instead of being reused or removed.
"""

from __future__ import annotations

import json
import socket
import time

from kubeforge.targets.sandbox_image import NOROUTE
from kubeforge.targets.sandbox_run import SandboxError, out, run

LABEL, DIR_LABEL = "kubeforge.sandbox", "kubeforge.sandbox.dir"

# What a host needs so that containerd, runc and the kubelet work inside it (each found on a
# real sandbox host, see docs/sandbox.md):
# - docker's default seccomp profile blocks keyctl, and runc joins a session keyring;
# - the kubelet's OOM watcher reads /dev/kmsg: the device, and CAP_SYSLOG to open it;
# - runc joins a pod's namespaces through /proc/<pause>/ns, and the pause process runs as
#   65535: opening another user's namespaces takes CAP_SYS_PTRACE;
# - runc gives a privileged pod (kube-proxy, from kubeadm) every device in its cgroup v1
#   devices controller, which a child cgroup may only do if the host's own cgroup allows it:
#   the rule allows the cgroup, no device node is added;
# - containerd's overlayfs snapshotter cannot mount on the host's own overlay root, so its
#   state lives on an anonymous volume (the machine's file system), removed with the host;
# - the network sysctls kubeadm's preflight wants are per network namespace and /proc/sys is
#   read-only inside, so docker sets them when it makes the namespace.
KUBELET_FLAGS = ("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                 "--cap-add", "SYSLOG", "--cap-add", "SYS_PTRACE",
                 "--device-cgroup-rule", "a *:* rwm",
                 "--device", "/dev/kmsg", "--volume", "/var/lib/containerd",
                 "--sysctl", "net.ipv4.ip_forward=1",
                 "--sysctl", "net.ipv4.conf.all.route_localnet=1")

# systemd as PID 1 without --privileged (CAP_SYS_RESOURCE is missing on these machines, so
# --privileged fails) and with a private cgroup namespace: sharing the machine's cgroup tree
# (--cgroupns=host -v /sys/fs/cgroup) would remount it read-only for everyone.
RUN_FLAGS = ("--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--cap-add", "SYS_ADMIN",
             "--cgroupns=private", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
             "--stop-signal", "SIGRTMIN+3", "--env", "container=docker",
             *KUBELET_FLAGS)


def inspect(kind: str, name: str) -> dict | None:
    proc = run(["docker", kind, "inspect", name], check=False, timeout=30)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]


def labels_of(obj: dict) -> dict:
    """Labels of a `docker inspect` result, container or network."""
    return (obj.get("Config") or {}).get("Labels") or obj.get("Labels") or {}


def owned(obj: dict, sandbox: str, directory: str) -> bool:
    labels = labels_of(obj)
    return labels.get(LABEL) == sandbox and labels.get(DIR_LABEL) == directory


def check_owner(obj: dict, sandbox: str, directory: str, what: str) -> None:
    if not owned(obj, sandbox, directory):
        owner = labels_of(obj).get(DIR_LABEL) or "something that is not this sandbox"
        raise SandboxError(f"sandbox: {what} already exists and belongs to {owner}; "
                           "run `kubeforge sandbox down` there or choose another --name")


def ensure_network(name: str, bridge: str, subnet: str, sandbox: str, directory: str) -> str:
    """Create (or reuse) the internal bridge network; `--internal` means no route off the
    machine and no NAT. Returns the network id."""
    existing = inspect("network", name)
    if existing is not None:
        check_owner(existing, sandbox, directory, f"network {name}")
        subnets = [c.get("Subnet") for c in existing["IPAM"]["Config"]]
        if subnet not in subnets:
            raise SandboxError(f"sandbox: network {name} has subnet {subnets}, not {subnet}; "
                               "run `kubeforge sandbox down` first")
        return existing["Id"]
    return out(["docker", "network", "create", "--driver", "bridge", "--internal",
                "--subnet", subnet, "-o", f"com.docker.network.bridge.name={bridge}",
                "--label", f"{LABEL}={sandbox}", "--label", f"{DIR_LABEL}={directory}", name],
               timeout=60)


def vrrp_rule(bridge: str, sandbox: str) -> list[str]:
    """The DOCKER-USER rule letting hosts of the bridge talk to each other freely: docker's
    isolation chain otherwise drops VRRP multicast (224.0.0.18) and every keepalived node
    elects itself MASTER."""
    return ["DOCKER-USER", "-i", bridge, "-o", bridge, "-m", "comment", "--comment",
            f"kubeforge-sandbox {sandbox}", "-j", "ACCEPT"]


def rule_present(rule: list[str]) -> bool:
    return run(["iptables", "-C", *rule], check=False, timeout=15).returncode == 0


def add_rule(rule: list[str]) -> None:
    if not rule_present(rule):
        run(["iptables", "-I", rule[0], "1", *rule[1:]], timeout=15)


def delete_rule(rule: list[str]) -> bool:
    if not rule_present(rule):
        return False
    run(["iptables", "-D", *rule], timeout=15)
    return True


def create_host(container: str, hostname: str, network: str, address: str, image: str,
                sandbox: str, directory: str, authorized_keys_tar: bytes) -> None:
    """Create the host container, copy the client key in, then boot it. The key goes in before
    the first boot so sshd never runs without it."""
    run(["docker", "create", "--name", container, "--hostname", hostname,
         "--network", network, "--ip", address, "--network-alias", hostname,
         "--label", f"{LABEL}={sandbox}", "--label", f"{DIR_LABEL}={directory}",
         *RUN_FLAGS, image], timeout=60)
    install_key(container, authorized_keys_tar)
    run(["docker", "start", container], timeout=60)


def install_key(container: str, authorized_keys_tar: bytes) -> None:
    run(["docker", "cp", "-", f"{container}:/root/"], input=authorized_keys_tar, timeout=60)


def remove_container(container: str) -> None:
    run(["docker", "rm", "-f", "-v", container], timeout=60)


def sshd_answers(address: str, port: int = 22) -> bool:
    """An SSH banner comes back. The 1 s connect timeout matters: a connect to an address
    whose host is not up yet otherwise blocks for minutes."""
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            conn.settimeout(2)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(addresses: list[str], timeout: float) -> list[str]:
    """Poll until every address answers; returns those that did not within ``timeout``."""
    pending = list(addresses)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [a for a in pending if not sshd_answers(a)]
        if pending:
            time.sleep(0.3)
    return pending


def drop_default_route(container: str) -> None:
    """Docker adds a default route via the bridge even on an internal network; the image's
    boot unit removes it, but sshd can answer before that unit has run."""
    run(["docker", "exec", container, NOROUTE], timeout=30)


def host_keys(container: str) -> list[str]:
    """The host's public keys, read from its own filesystem (never from the network)."""
    text = out(["docker", "exec", container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"],
               timeout=30)
    keys = [line for line in text.splitlines() if line.strip()]
    if not keys:
        raise SandboxError(f"sandbox: {container} has no SSH host keys")
    return keys
