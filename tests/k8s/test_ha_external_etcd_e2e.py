"""examples/ha-external-etcd.kf for real: three etcd hosts running the bundle's etcd as a
systemd service (Debian's 3.4 on the same hosts is below what kubeadm 1.37 accepts, so the
bundle's must be the one that runs), three control planes joined to it behind the keepalived +
haproxy VIP, a worker, and the guestbook served; one `kubeforge apply` from bare sandbox hosts.

Own sandbox ``kfext`` on 10.81.0.0/24.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.k8s.ha_cluster import HaCluster, example_source, http_get

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PREFIX = "10.81.0."
ETCD = ("etcd1", "etcd2", "etcd3")
REPORT: dict = {}


@pytest.fixture(scope="module")
def ext(bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("ha-ext")
    cluster = HaCluster(root, "ha-ext", example_source("ha-external-etcd.kf", PREFIX, bundle),
                        "kfext", bundle)
    try:
        cluster.up()
        yield cluster
    finally:
        print(f"\nexternal etcd report: {json.dumps(REPORT)}")
        cluster.down()


def test_one_apply_from_bare_hosts(ext):
    started = time.monotonic()
    proc = ext.on_hosts("apply")
    REPORT["apply_s"] = round(time.monotonic() - started, 1)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]


def test_the_bundles_etcd_runs_three_healthy_members(ext):
    # The health-check client when kubeforge issued one, else the peer certificate (which
    # carries clientAuth too), as the plan's own health step chooses.
    pki = "/etc/kubernetes/pki/etcd"
    client = (f"c={pki}/healthcheck-client; [ -f $c.crt ] || c={pki}/peer; "
              f"/usr/local/bin/etcdctl --endpoints=https://{ext.address('etcd1')}:2379 "
              f"--cacert={pki}/ca.crt --cert=$c.crt --key=$c.key")
    code, out = ext.ssh("etcd1", f"{client} endpoint status --cluster -w json")
    assert code == 0, out
    status = json.loads(out)
    assert len(status) == 3
    assert {s["Status"]["version"] for s in status} == {"3.7.0"}
    code, out = ext.ssh("etcd1", f"{client} member list -w json")
    assert sorted(m["name"] for m in json.loads(out)["members"]) == list(ETCD)
    for host in ETCD:  # the service runs the bundle's binary, not Debian's /usr/bin/etcd
        code, exe = ext.ssh(host, "readlink /proc/$(systemctl show -p MainPID --value etcd)/exe")
        assert exe.strip() == "/usr/local/bin/etcd", (host, exe)
    # The API servers store in it: an object written through the VIP is a key there.
    ext.kubectl("-n", "default", "create", "configmap", "kf-external", "--from-literal=a=b")
    code, out = ext.ssh("etcd2", f"{client} get /registry/configmaps/default/kf-external "
                                 "--keys-only")
    assert out.strip() == "/registry/configmaps/default/kf-external", out


def test_nodes_ready_and_the_guestbook_served(ext):
    ready = ext.wait("four nodes Ready", lambda: (r := ext.nodes_ready()) and len(r) == 4
                     and all(r.values()) and r)
    assert set(ready) == {"cp1", "cp2", "cp3", "worker1"}  # etcd hosts run no kubelet
    for cp in ("cp1", "cp2", "cp3"):
        proc = ext.kubectl("--server", f"https://{ext.address(cp)}:6443", "get", "--raw",
                           "/readyz")
        assert proc.stdout.strip() == "ok"
    for name in ("redis-master", "redis-slave", "frontend"):
        ext.kubectl("-n", "default", "rollout", "status", f"deployment/{name}",
                    "--timeout=600s", timeout=630)
    base = f"http://{ext.address('worker1')}:30080/guestbook.php"
    # The first answer may take a moment after the rollout: kube-proxy programs the NodePort
    # and the frontend resolves redis-master on its own schedule.
    ext.wait("the entry written", lambda: http_get(
        f"{base}?cmd=set&key=messages&value=external")[0] == 200, 120, 1)
    ext.wait("the entry read back", lambda: http_get(
        f"http://{ext.address('cp2')}:30080/guestbook.php?cmd=get&key=messages")[2]
        == '{"data": "external"}', 60, 1)
