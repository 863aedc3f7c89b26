"""etcd member configuration, and real TLS etcd clusters started from the compiled files."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cluster_helpers import (
    CONTROL_PLANES,
    ETCD_NODES,
    Built,
    compile_cluster,
    make_cluster,
    node,
    parse_env_file,
    rebase,
    require_binary,
)
from kubeforge.compiler.emit.etcd import ENV_FILE, UNIT_FILE

PKI = "/etc/kubernetes/pki/etcd"


def env_of(built: Built, member: str) -> dict[str, str]:
    return parse_env_file((built.root / "etcd" / f"{member}.env").read_text())


# ---------------------------------------------------------------------------- configuration


def test_stacked_members_carry_kubeadms_flags(tmp_path):
    """Reference 1.5: the flags kubeadm puts into each member's static pod."""
    built = compile_cluster(make_cluster(), tmp_path)
    first = env_of(built, "cp1")
    assert first == {
        "ETCD_NAME": "cp1",
        "ETCD_DATA_DIR": "/var/lib/etcd",
        "ETCD_LISTEN_CLIENT_URLS": "https://127.0.0.1:2379,https://10.0.0.11:2379",
        "ETCD_ADVERTISE_CLIENT_URLS": "https://10.0.0.11:2379",
        "ETCD_LISTEN_PEER_URLS": "https://10.0.0.11:2380",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": "https://10.0.0.11:2380",
        "ETCD_INITIAL_CLUSTER": "cp1=https://10.0.0.11:2380",
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_LISTEN_METRICS_URLS": "http://127.0.0.1:2381",
        "ETCD_CERT_FILE": f"{PKI}/server.crt",
        "ETCD_KEY_FILE": f"{PKI}/server.key",
        "ETCD_TRUSTED_CA_FILE": f"{PKI}/ca.crt",
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_CERT_FILE": f"{PKI}/peer.crt",
        "ETCD_PEER_KEY_FILE": f"{PKI}/peer.key",
        "ETCD_PEER_TRUSTED_CA_FILE": f"{PKI}/ca.crt",
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        "ETCD_SNAPSHOT_COUNT": "10000",
    }
    third = env_of(built, "cp3")
    assert third["ETCD_INITIAL_CLUSTER"] == (
        "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380")
    assert third["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    # kubeadm makes the static pod: nothing etcd-specific lands on the nodes
    assert not any(a.host_path in (ENV_FILE, UNIT_FILE) for a in built.ctx.artifacts)
    assert built.ctx.shared["etcd"].nodes == ("cp1", "cp2", "cp3")


def test_external_members_get_env_file_and_unit(tmp_path):
    built = compile_cluster(make_cluster(etcd="external"), tmp_path)
    everyone = ",".join(f"{n.name}=https://{n.address}:2380" for n in ETCD_NODES)
    for n in ETCD_NODES:
        env = parse_env_file(built.text(n.name, ENV_FILE))
        assert env == env_of(built, n.name)
        assert env["ETCD_INITIAL_CLUSTER"] == everyone
        assert env["ETCD_INITIAL_CLUSTER_STATE"] == "new"
        assert env["ETCD_INITIAL_CLUSTER_TOKEN"] == "lab-etcd"
        assert env["ETCD_LISTEN_CLIENT_URLS"] == f"https://{n.address}:2379"
        assert env["ETCD_CLIENT_CERT_AUTH"] == env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
        unit = built.text(n.name, UNIT_FILE)
        assert "EnvironmentFile=/etc/default/etcd" in unit
        assert "ExecStart=/usr/bin/etcd\n" in unit
        for f in ("ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"):
            assert built.path(n.name, f"{PKI}/{f}").exists()
        # the etcd CA key stays in the state directory
        assert not built.path(n.name, f"{PKI}/ca.key").exists()
    for cp in CONTROL_PLANES:
        assert ENV_FILE not in built.node_paths(cp.name)
    plan = built.ctx.shared["etcd"]
    assert plan.services == ("etcd",) and "etcd-server" in plan.packages


def test_unit_file_is_valid_systemd_syntax(tmp_path):
    analyze = require_binary("systemd-analyze")
    built = compile_cluster(make_cluster(etcd="external"), tmp_path)
    unit = built.path("etcd1", UNIT_FILE)
    # `verify` checks sections and keys; a missing /usr/bin/etcd is the only tolerated finding
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    problems = [line for line in result.stderr.splitlines()
                if line.strip() and "/usr/bin/etcd" not in line and "etcd.service" not in line]
    assert problems == [], result.stderr


# ---------------------------------------------------------------------------- real etcd


class Members:
    """etcd processes started from compiled member files; stopped and reaped on exit."""

    def __init__(self, built: Built, workdir: Path) -> None:
        self.built, self.workdir = built, workdir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, member: str, env_text: str) -> None:
        data = self.workdir / "data" / member
        data.mkdir(parents=True, mode=0o700)
        node_root = self.built.root / "nodes" / member
        env = {k: rebase(v, node_root, {"/var/lib/etcd": data})
               for k, v in parse_env_file(env_text).items()}
        log = self.workdir / f"{member}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([require_binary("etcd")], stdout=out, stderr=subprocess.STDOUT,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin"), **env})
        self.procs.append((member, proc, log))

    def logs(self) -> str:
        return "\n".join(f"--- {m}\n{log.read_text()[-3000:]}" for m, _, log in self.procs)

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            proc.terminate()
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def running(built: Built, workdir: Path):
    members = Members(built, workdir)
    try:
        yield members
    finally:
        members.stop()


def etcdctl(built: Built, node_name: str, endpoints: list[str], *args: str,
            client: str | None = "etcd/healthcheck-client",
            timeout: float = 30) -> subprocess.CompletedProcess:
    """etcdctl with a node's compiled etcd CA and client certificate (``client`` under
    /etc/kubernetes/pki; None for none), retried until it succeeds or ``timeout`` passes."""
    pki = built.path(node_name, "/etc/kubernetes/pki")
    cmd = [require_binary("etcdctl"), "--endpoints", ",".join(endpoints),
           "--cacert", str(pki / "etcd" / "ca.crt"), "--dial-timeout", "2s",
           "--command-timeout", "5s"]
    if client:
        cmd += ["--cert", str(pki / f"{client}.crt"), "--key", str(pki / f"{client}.key")]
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run([*cmd, *args], capture_output=True, text=True, check=False,
                                env={"PATH": os.environ.get("PATH", ""), "ETCDCTL_API": "3"})
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def loopback_addresses(preferred: str, ports=(2379, 2380)) -> list[str]:
    """Three loopback addresses ``<net>.11/.12/.13`` whose etcd ports are free: the preferred
    127.x.y network, else another one (a parallel test run may hold the first)."""
    nets = [preferred] + [f"127.{random.randint(1, 254)}.{random.randint(0, 254)}"
                          for _ in range(20)]
    for net in nets:
        addresses = [f"{net}.{i}" for i in (11, 12, 13)]
        if all(_port_free(a, p) for a in addresses for p in ports):
            return addresses
    pytest.skip("no free loopback addresses for etcd")


@pytest.mark.e2e
def test_external_etcd_cluster_runs_from_compiled_files(tmp_path):
    require_binary("etcd")
    require_binary("etcdctl")
    etcd_nodes = [node(f"etcd{i}", a, "etcd")
                  for i, a in enumerate(loopback_addresses("127.0.0"), 1)]
    cps = [node(f"cp{i}", f"127.0.0.2{i}", "control-plane") for i in (1, 2, 3)]
    cluster = make_cluster(etcd="external", lb_mode="external", nodes=(*cps, *etcd_nodes))
    built = compile_cluster(cluster, tmp_path)
    endpoints = [f"https://{n.address}:2379" for n in etcd_nodes]
    with running(built, tmp_path) as members:
        for n in etcd_nodes:
            members.start(n.name, built.text(n.name, ENV_FILE))
        health = etcdctl(built, "etcd1", endpoints, "endpoint", "health")
        assert health.returncode == 0, health.stderr + members.logs()
        healthy = [line for line in health.stdout.splitlines() + health.stderr.splitlines()
                   if "is healthy" in line]
        assert len(healthy) == 3, health.stdout + health.stderr
        listing = etcdctl(built, "etcd2", endpoints[:1], "member", "list")
        assert sorted(line.split(", ")[2] for line in listing.stdout.splitlines()) == [
            "etcd1", "etcd2", "etcd3"]
        # the API server's client certificate works too (what kube-apiserver will use)
        put = etcdctl(built, "cp1", endpoints[2:], "put", "/registry/probe", "ok",
                      client="apiserver-etcd-client")
        assert put.returncode == 0, put.stderr
        # and a client without a certificate is refused (client-cert-auth)
        anonymous = etcdctl(built, "cp1", endpoints[:1], "get", "/registry/probe", client=None,
                            timeout=0)
        assert anonymous.returncode != 0


@pytest.mark.e2e
def test_stacked_first_member_runs_from_reference_flags(tmp_path):
    """The first control plane's member exactly as kubeadm starts it (alone, also on
    127.0.0.1); the others cannot share 127.0.0.1:2379 on one machine, and the external test
    covers a full cluster with the same TLS flags."""
    require_binary("etcd")
    if not (_port_free("127.0.0.1", 2379) and _port_free("127.0.0.1", 2381)):
        pytest.skip("127.0.0.1:2379/2381 are taken by another etcd on this machine")
    addresses = loopback_addresses("127.0.1")
    cps = tuple(node(f"cp{i}", a, "control-plane") for i, a in enumerate(addresses, 1))
    built = compile_cluster(make_cluster(lb_mode="external", nodes=cps), tmp_path)
    with running(built, tmp_path) as members:
        members.start("cp1", (built.root / "etcd" / "cp1.env").read_text())
        for endpoint in ("https://127.0.0.1:2379", f"https://{addresses[0]}:2379"):
            health = etcdctl(built, "cp1", [endpoint], "endpoint", "health")
            assert health.returncode == 0, health.stderr + members.logs()
