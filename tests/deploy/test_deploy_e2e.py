"""End to end on the sandbox hosts: external etcd on node1-3, keepalived+haproxy on node1-2,
the control plane on node4 (no Kubernetes packages on sandbox hosts, so runs stop before
kubeadm with --until etcd; most tests leave node4 out with --limit), node5 added later as a
worker.

The tests share one deployed cluster and run in file order.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from tests.conftest import HOST_CGROUPS
from tests.deploy.host_shell import HostShell

pytestmark = pytest.mark.e2e

LIMIT = "node1,node2,node3"
PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _kf(hosts, vip: str) -> str:
    net = ".".join(hosts[0].address.split(".")[:3]) + ".0/24"
    return f"""cluster sbx {{
  kubernetes "1.37.2"
  cgroups {HOST_CGROUPS}
  endpoint "{vip}:8443"
  network {{ pods 10.244.0.0/16  services 10.96.0.0/12  nodes {net} }}
  etcd external
  install preinstalled
  loadbalancer keepalived-haproxy {{ vip {vip}  interface "eth0"  port 8443 }}
  pki {{ algorithm ecdsa-p256 }}
  nodes from "inventory.yaml"
}}
"""


def _inventory(hosts, key: Path, worker: bool = False) -> str:
    a = {h.name: h.address for h in hosts}
    lines = ["all:", "  vars:", "    ansible_user: root",
             f"    ansible_ssh_private_key_file: {key}", "  children:",
             "    etcd:", "      hosts:"]
    lines += [f"        {n}: {{ansible_host: {a[n]}}}" for n in ("node1", "node2", "node3")]
    lines += ["    loadbalancers:", "      hosts:", "        node1: {}", "        node2: {}",
              "    control_plane:", "      hosts:", f"        node4: {{ansible_host: {a['node4']}}}"]
    if worker:
        lines += ["    workers:", "      hosts:", f"        node5: {{ansible_host: {a['node5']}}}"]
    return "\n".join(lines) + "\n"


class Cluster:
    def __init__(self, box, root: Path) -> None:
        self.box = box
        self.root = root
        self.hosts = {h.name: h for h in box.hosts()}
        self.vip = ".".join(self.hosts["node1"].address.split(".")[:3]) + ".100"
        self.kf = root / "sbx.kf"
        self.inv = root / "inventory.yaml"
        self.kf.write_text(_kf(list(self.hosts.values()), self.vip))
        self.inv.write_text(_inventory(list(self.hosts.values()), box.key_path))
        self.build = root / "build" / "sbx"
        self.state = root / ".kubeforge" / "sbx"
        self.outputs: list[str] = []
        self.ssh = HostShell(box)

    def cli(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "kubeforge", *args, str(self.kf), "-i", str(self.inv),
               "--known-hosts", str(self.box.known_hosts)]
        # A deadline for a hang, not a timing assert: beside .ci/run's cluster lane (a bundle
        # build, a cluster) an ansible apply of five hosts took more than 300 s.
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=1200)
        self.outputs += [proc.stdout, proc.stderr]
        if check is not None:
            assert proc.returncode == check, proc.stdout + proc.stderr
        return proc

    def apply(self, *extra: str, check: int | None = 0) -> subprocess.CompletedProcess:
        return self.cli("apply", "--until", "etcd", "--limit", LIMIT, *extra, check=check)


    def etcdctl(self, *args: str, endpoints: str | None = None) -> subprocess.CompletedProcess:
        pki = self.build / "nodes/node1/etc/kubernetes/pki/etcd"
        eps = endpoints or ",".join(f"https://{self.hosts[n].address}:2379"
                                    for n in ("node1", "node2", "node3"))
        return subprocess.run(
            ["etcdctl", f"--endpoints={eps}", f"--cacert={pki}/ca.crt",
             f"--cert={pki}/healthcheck-client.crt", f"--key={pki}/healthcheck-client.key",
             "--dial-timeout=3s", "--command-timeout=5s", *args],
            capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def cluster(sandbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    c = Cluster(sandbox, root)
    # Start from clean hosts: an earlier session may have deployed here.
    for name in ("node1", "node2", "node3", "node4", "node5"):
        c.ssh(name, "systemctl disable --now etcd haproxy keepalived 2>/dev/null; "
                    "rm -rf /var/lib/etcd/member /etc/kubernetes /etc/default/etcd "
                    "/etc/systemd/system/etcd.service; pkill -f kf-backend; true")
    yield c
    c.ssh.close()


def test_tampered_host_key_is_refused(cluster, tmp_path):
    key = paramiko.Ed25519Key.from_private_key_file(str(cluster.box.key_path))  # any other key
    address = cluster.hosts["node1"].address
    # node1's real keys replaced by one it does not hold: what a man in the middle looks like.
    lines = [line for line in cluster.box.known_hosts.read_text().splitlines()
             if line.split(" ", 1)[0] != address]
    lines.append(f"{address} ssh-ed25519 {key.get_base64()}")
    tampered = tmp_path / "known_hosts"
    tampered.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "kubeforge", "apply", str(cluster.kf), "-i",
                           str(cluster.inv), "--known-hosts", str(tampered), "--limit", "node1",
                           "--until", "preflight"], cwd=cluster.root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert "node1: host key mismatch" in proc.stderr and "SHA256:" in proc.stderr
    assert "Refusing to connect" in proc.stderr


def test_killed_apply_resumes_and_leaves_no_partial_file(cluster):
    cmd = [sys.executable, "-m", "kubeforge", "apply", str(cluster.kf), "-i", str(cluster.inv),
           "--known-hosts", str(cluster.box.known_hosts), "--until", "etcd", "--limit", LIMIT]
    proc = subprocess.Popen(cmd, cwd=cluster.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    state = cluster.state / "apply-state.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it in the middle of the uploads
        if state.exists() and len(json.loads(state.read_text())["steps"]) > 15:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    cluster.outputs += [out, err]
    done = json.loads(state.read_text())["steps"]
    assert 15 < len(done) < 52, "the kill should land mid-run"
    proc = cluster.apply()
    assert "FAILED" not in proc.stderr
    for name in ("node1", "node2", "node3"):
        code, found = cluster.ssh(name, "find /etc /var/lib -name '*.kftmp' 2>/dev/null")
        assert found.strip() == "", f"{name} keeps temp files: {found}"


def test_files_owners_and_modes(cluster):
    from kubeforge.compiler.plan import Plan, Upload

    plan = Plan.from_json((cluster.build / "plan.json").read_text())
    for name in ("node1", "node2", "node3"):
        uploads = [s.action for s in plan.for_host(name) if isinstance(s.action, Upload)]
        script = "; ".join(f"stat -c '%n %a %U:%G' {u.path}; sha256sum {u.path}" for u in uploads)
        _, out = cluster.ssh(name, script)
        for u in uploads:
            assert f"{u.path} {u.mode:o} {u.owner}" in out
            # plan.json keys the digests of secrets; the build's copy is what landed.
            digest = hashlib.sha256((cluster.build / u.source).read_bytes()).hexdigest()
            assert f"{digest}  {u.path}" in out
            assert u.secret or u.sha256 == digest
            if u.path.endswith(".key"):
                assert u.mode == 0o600


def test_etcd_is_healthy_over_tls_and_writable_with_a_member_down(cluster):
    health = cluster.etcdctl("endpoint", "health", "--cluster")
    assert health.returncode == 0, health.stderr
    assert health.stderr.count("is healthy") + health.stdout.count("is healthy") == 3
    members = cluster.etcdctl("member", "list")
    assert members.stdout.count("started") == 3
    cluster.ssh("node3", "systemctl stop etcd")
    try:
        two = ",".join(f"https://{cluster.hosts[n].address}:2379" for n in ("node1", "node2"))
        put = cluster.etcdctl("put", "kubeforge-e2e", "still-writable", endpoints=two)
        assert put.returncode == 0 and "OK" in put.stdout, put.stderr
        got = cluster.etcdctl("get", "kubeforge-e2e", "--print-value-only", endpoints=two)
        assert got.stdout.strip() == "still-writable"
    finally:
        cluster.ssh("node3", "systemctl start etcd")


BACKEND = r"""
import http.server, ssl, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("0.0.0.0", 6443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain("/tmp/kf-backend.pem")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"""


def _self_signed() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kf-backend")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())).decode()


def _vip_holder(cluster) -> str | None:
    for name in ("node1", "node2"):
        _, out = cluster.ssh(name, "ip -o -4 addr show dev eth0")
        if f" {cluster.vip}/" in out:
            return name
    return None


def test_vip_forwards_to_the_backend_and_moves_when_the_master_stops(cluster):
    pem = _self_signed()
    cluster.ssh("node4", f"cat > /tmp/kf-backend.pem <<'EOF'\n{pem}EOF\n"
                         f"cat > /tmp/kf-backend.py <<'EOF'\n{BACKEND}EOF\n"
                         "(setsid python3 /tmp/kf-backend.py >/dev/null 2>&1 &)")
    try:
        body, deadline = "", time.monotonic() + 40  # haproxy: rise 2 x inter 5s
        while time.monotonic() < deadline and body != "node4":
            _, body = cluster.ssh("node3", f"curl -sk --max-time 2 https://{cluster.vip}:8443/")
            time.sleep(1)
        assert body == "node4", "the VIP did not forward to the declared backend"
        master = _vip_holder(cluster)
        assert master in ("node1", "node2")
        other = "node2" if master == "node1" else "node1"
        cluster.ssh(master, "systemctl stop keepalived")
        start = time.monotonic()
        while time.monotonic() - start < 15 and _vip_holder(cluster) != other:
            time.sleep(0.2)
        moved = time.monotonic() - start
        assert _vip_holder(cluster) == other and moved < 10, f"VIP moved in {moved:.1f}s"
    finally:
        cluster.ssh("node4", "pkill -f kf-backend.py; true")
    # apply notices the stopped service and starts it again: a real change.
    proc = cluster.apply()
    assert f"changed   {master}/loadbalancer/service-keepalived" in proc.stderr


def test_unchanged_reapply_reports_zero_changes(cluster):
    proc = cluster.apply()
    assert "no changes" in proc.stderr and "changed " not in proc.stderr
    plan = json.loads(cluster.cli("plan", "--json", "--until", "etcd", "--limit", LIMIT).stdout)
    assert plan["changes"] == 0


def test_plan_probe_through_a_jump_host(cluster):
    proc = cluster.cli("plan", "--probe", "--json", "--until", "etcd", "--limit", LIMIT,
                       "--jump", f"root@{cluster.hosts['node6'].address}",
                       "--jump-key", str(cluster.box.key_path))
    report = json.loads(proc.stdout)
    assert report["probed"] and report["changes"] == 0 and report["blocked"] == 0


def test_hosts_without_kubeadm_fail_clearly(cluster):
    # Up to etcd the control plane needs no Kubernetes packages: node4 converges too.
    cluster.cli("apply", "--until", "etcd", check=0)
    proc = cluster.cli("apply", "--until", "control-plane-init", check=1)
    assert "kubeadm is not installed on node4" in proc.stderr
    assert "FAILED host node4  step node4/control-plane-init/kubernetes-binaries" in proc.stderr
    changed = re.findall(r"^changed\s+(\S+?)/(\S+?)/", proc.stderr, re.M)
    # Every host was already converged up to etcd; only node4's kubeadm phase did anything.
    assert set(changed) <= {("node4", "control-plane-init")}, proc.stderr


def test_adding_a_worker_runs_only_its_steps(cluster):
    cluster.inv.write_text(_inventory(list(cluster.hosts.values()), cluster.box.key_path,
                                      worker=True))
    plan = json.loads(cluster.cli("plan", "--json", "--until", "etcd").stdout)
    pending = {h for h, phases in plan["hosts"].items()
               if any(p["change"] for p in phases.values())}
    assert pending == {"node5"}
    proc = cluster.cli("apply", "--until", "etcd", "--limit", LIMIT + ",node5", check=0)
    ran = re.findall(r"^(?:changed|FAILED)\s+(?:host )?(\S+?)[/ ]", proc.stderr, re.M)
    assert ran and set(ran) == {"node5"}, proc.stderr


def test_no_key_material_in_any_output_or_log(cluster):
    token = (cluster.state / "bootstrap-token").read_text().split()[0]
    plan_text = cluster.cli("plan", "--until", "verify").stdout
    blobs = [*cluster.outputs, plan_text, (cluster.state / "apply.log").read_text(),
             (cluster.state / "timings.json").read_text(),
             (cluster.build / "plan.txt").read_text(), (cluster.build / "plan.json").read_text()]
    for blob in blobs:
        assert not PEM.search(blob)
        assert token not in blob


def test_reset_undoes_the_apply(cluster):
    cluster.inv.write_text(_inventory(list(cluster.hosts.values()), cluster.box.key_path))
    proc = cluster.cli("reset", "--yes", "--limit", LIMIT)
    assert "iptables rules were left alone" in proc.stderr  # a status line, not the result
    for name in ("node1", "node2", "node3"):
        code, out = cluster.ssh(name, "ls /etc/kubernetes/pki/etcd 2>/dev/null; "
                                      "systemctl is-active etcd haproxy keepalived; "
                                      "ls /var/lib/etcd/member 2>&1")
        assert ".key" not in out and "\nactive" not in out and "No such file" in out
    # The package's haproxy.cfg that apply replaced on the load balancers is back, byte for
    # byte (dpkg's record of the conffile is the oracle); keepalived ships no config, so
    # the one apply placed is gone; so is the record of the originals.
    for name in ("node1", "node2"):
        code, out = cluster.ssh(name, "dpkg-query -W -f='${Conffiles}\\n' haproxy "
                                      "| awk '$1 == \"/etc/haproxy/haproxy.cfg\" {print $2}'; "
                                      "md5sum < /etc/haproxy/haproxy.cfg | cut -c1-32; "
                                      "ls /etc/keepalived/keepalived.conf /var/lib/kubeforge/originals 2>&1")
        packaged, now, *rest = out.split("\n")
        assert code != 0 and len(packaged) == 32 and packaged == now, out
        assert "\n".join(rest).count("No such file") == 2, out


def test_become_runs_as_root_for_a_sudo_user(cluster):
    from kubeforge.targets.base import HostSpec, SshOptions
    from kubeforge.targets.ssh import SshTarget

    code, _ = cluster.ssh("node6", "id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy; "
                                   "install -d -m 0700 -o deploy -g deploy ~deploy/.ssh; "
                                   "install -m 0600 -o deploy -g deploy /root/.ssh/authorized_keys "
                                   "~deploy/.ssh/authorized_keys; "
                                   "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy")
    assert code == 0
    target = SshTarget(SshOptions(cluster.box.known_hosts))
    address = cluster.hosts["node6"].address
    try:
        plain = target.open(HostSpec("node6", address, user="deploy",
                                     key_file=str(cluster.box.key_path)))
        assert plain.run("id -un", timeout=10).stdout.strip() == b"deploy"
        root = target.open(HostSpec("node6", address, user="deploy",
                                    key_file=str(cluster.box.key_path), become=True))
        out = root.run("id -un; cat > /tmp/kf-become; stat -c %U /tmp/kf-become", timeout=10,
                       stdin=b"through sudo\n")
        assert out.exit_code == 0 and out.stdout.split() == [b"root", b"root"]
    finally:
        target.close()


def test_cut_ssh_connections_mid_apply_then_converge(cluster):
    """After the reset: cut node1's SSH connections while the apply uploads to it (the run
    reconnects or fails those steps), then a re-run converges with no temp file left."""
    cmd = [sys.executable, "-m", "kubeforge", "apply", str(cluster.kf), "-i", str(cluster.inv),
           "--known-hosts", str(cluster.box.known_hosts), "--until", "etcd", "--limit", LIMIT]
    proc = subprocess.Popen(cmd, cwd=cluster.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    container = cluster.hosts["node1"].container
    cut = 0
    while proc.poll() is None and cut < 3:
        time.sleep(0.7)
        cut += subprocess.run(["docker", "exec", container, "pkill", "-f", "sshd: root@notty"],
                              capture_output=True).returncode == 0
    out, err = proc.communicate(timeout=300)
    cluster.outputs += [out, err]
    cluster.ssh.forget("node1")  # the cut took the test's own session to node1 too
    assert cut >= 1, "no connection was cut"
    proc = cluster.apply()
    assert "FAILED" not in proc.stderr
    assert "no changes" in cluster.apply().stderr
    for name in ("node1", "node2", "node3"):
        _, found = cluster.ssh(name, "find /etc /var/lib -name '*.kftmp' 2>/dev/null")
        assert found.strip() == ""
    assert cluster.etcdctl("endpoint", "health", "--cluster").returncode == 0
