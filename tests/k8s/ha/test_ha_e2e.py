"""The HA cluster for real: examples/ha-guestbook.kf (three stacked control planes behind the
keepalived + haproxy VIP, two workers, the classic guestbook from examples/apps/guestbook.kf)
plus examples/apps/multi-team.kf's teams, applied with one `kubeforge apply` to bare sandbox
hosts that `kubeforge sandbox up FILE` made from the file; then what a user relies on: every
node Ready, 3 etcd members and 3 API servers, kubectl through the VIP, the guestbook served
over its NodePort and across its pods, the VIP holder stopped and killed (the API back through
the VIP, a write with 2 of 3 members, the host rejoining), a pod replaced, a scale and a
rolling update from the file (only the workload steps run; the declared limits hold at every
sampled moment), `kubeforge rollout undo`, and every cell of `kubeforge rbac matrix` against
the real authorizer with the credentials kubeforge issues.

Own sandbox ``kfha`` on 10.80.0.0/24 (conftest.py), shared with the day-2 tests that follow.
Measured times go to ``ha-report.json`` in the test's directory (printed at the end) and are
what bench/cluster.py reports; nothing here asserts a duration beyond a deadline.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.k8s.bundle_fixture import PREVIOUS
from tests.k8s.ha_cluster import HaCluster, changed_steps, http_get
from tests.k8s.ha.lab import CONTROL_PLANES, NODEPORT, REPORT, VIP, WORKERS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def guestbook_url(ha: HaCluster, host: str, query: str = "") -> str:
    return f"http://{ha.address(host)}:{NODEPORT}/guestbook.php{query}"


def frontend_pods(ha: HaCluster) -> list[dict]:
    return ha.ready_pods("default", "app=guestbook,tier=frontend")


def test_one_apply_from_bare_hosts(ha):
    started = time.monotonic()
    proc = ha.on_hosts("apply")
    REPORT["apply_s"] = round(time.monotonic() - started, 1)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    assert "steps in" in proc.stderr


def test_every_node_ready_through_the_vip(ha):
    config = yaml.safe_load(ha.admin_conf.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://{VIP}:8443"
    ready = ha.wait("all five nodes Ready", lambda: (r := ha.nodes_ready())
                    and len(r) == 5 and all(r.values()) and r)
    assert set(ready) == {*CONTROL_PLANES, *WORKERS}
    for node in ha.json("get", "nodes")["items"]:
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{PREVIOUS}"


def test_three_etcd_members_and_three_api_servers(ha):
    etcdctl = ("-n", "kube-system", "exec", "etcd-cp1", "--", "etcdctl",
               "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
               "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
               "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")
    members = json.loads(ha.kubectl(*etcdctl, "member", "list", "-w", "json").stdout)["members"]
    assert sorted(m["name"] for m in members) == list(CONTROL_PLANES)
    assert not any(m.get("isLearner") for m in members)
    health = json.loads(ha.kubectl(*etcdctl, "endpoint", "health", "--cluster",
                                   "-w", "json").stdout)
    assert len(health) == 3 and all(h["health"] for h in health), health
    for cp in CONTROL_PLANES:  # each API server directly, not through the VIP
        proc = ha.kubectl("--server", f"https://{ha.address(cp)}:6443", "get", "--raw", "/readyz")
        assert proc.stdout.strip() == "ok", (cp, proc.stdout)


def test_guestbook_served_over_its_nodeport_and_across_pods(ha):
    for name in ("redis-master", "redis-slave", "frontend"):
        ha.kubectl("-n", "default", "rollout", "status", f"deployment/{name}", "--timeout=600s",
                   timeout=630)
    # From outside the cluster (this machine): written through one node, read through others
    # (the replicas replicate from the master, so the read may lag a moment).
    # The first answer may take a moment after the rollout: kube-proxy programs the NodePort
    # and the frontend resolves redis-master on its own schedule.
    body = ha.wait("the entry written through worker1", lambda: (a := http_get(guestbook_url(
        ha, "worker1", "?cmd=set&key=messages&value=hello-ha")))[0] == 200 and a[2], 120, 1)
    assert json.loads(body) == {"message": "Updated"}, body
    for host in ("worker2", "cp1"):
        ha.wait(f"the entry read back through {host}", lambda h=host: http_get(
            guestbook_url(ha, h, "?cmd=get&key=messages"))[2] == '{"data": "hello-ha"}', 60, 1)
    # Through one frontend pod, read back through another (pod IPs, from a node).
    pods = frontend_pods(ha)
    assert len(pods) == 3
    first, second = (p["status"]["podIP"] for p in pods[:2])
    code, out = ha.ssh("cp1", f"curl -sf 'http://{first}/guestbook.php?cmd=set&key=pods&value=from-{first}'")
    assert code == 0 and json.loads(out) == {"message": "Updated"}, out
    ha.wait("the entry read through a second pod", lambda: ha.ssh(
        "cp1", f"curl -sf 'http://{second}/guestbook.php?cmd=get&key=pods'")[1]
        == f'{{"data": "from-{first}"}}', 60, 1)


def _vip_holder(ha: HaCluster, down: str = "") -> str:
    return ha.vip_holder(VIP, CONTROL_PLANES, down)


def _api_back(ha: HaCluster) -> bool:
    return ha.kubectl("get", "nodes", "--request-timeout=3s", timeout=10,
                      check=False).returncode == 0


def _rejoined(ha: HaCluster, host: str, since: str) -> bool:
    """``host``'s API server answers directly, its kubelet renewed its lease after
    ``since`` (RFC 3339, the container's restart), and all 3 etcd members are healthy."""
    if ha.kubectl("--server", f"https://{ha.address(host)}:6443", "get", "--raw", "/readyz",
                  "--request-timeout=3s", timeout=10, check=False).stdout.strip() != "ok":
        return False
    lease = ha.json("-n", "kube-node-lease", "get", "lease", host)
    if lease["spec"]["renewTime"] < since:
        return False
    other = next(cp for cp in CONTROL_PLANES if cp != host)
    proc = ha.kubectl("-n", "kube-system", "exec", f"etcd-{other}", "--", "etcdctl",
                      "--endpoints=https://127.0.0.1:2379",
                      "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                      "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                      "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
                      "endpoint", "health", "--cluster", "-w", "json", check=False, timeout=30)
    return proc.returncode == 0 and sum(h["health"] for h in json.loads(proc.stdout)) == 3


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_the_vip_holder_fails_and_rejoins(ha, how):
    holder = _vip_holder(ha)
    started = time.monotonic()
    subprocess.run(["docker", how, ha.container(holder)], check=True, capture_output=True,
                   timeout=120)
    ha.shell.forget(holder)
    try:
        ha.wait("the API through the VIP", lambda: _api_back(ha), timeout=180, every=0.5)
        REPORT[f"vip_failover_{how}_s"] = round(time.monotonic() - started, 1)
        REPORT[f"vip_moved_{how}"] = f"{holder} -> {_vip_holder(ha, down=holder)}"
        # A write with 2 of 3 etcd members.
        name = f"kf-failover-{how}"
        ha.wait("a ConfigMap written with 2 of 3 members", lambda: ha.kubectl(
            "-n", "default", "create", "configmap", name, f"--from-literal=lost={holder}",
            check=False, timeout=20).returncode == 0 or ha.kubectl(
            "-n", "default", "get", "configmap", name, check=False).returncode == 0, 120, 1)
        # Read back (a 2-member etcd on a loaded machine may drop one request: retried).
        data = ha.wait("the ConfigMap read back", lambda: ha.json(
            "-n", "default", "get", "configmap", name, timeout=20)["data"], 60, 1)
        assert data == {"lost": holder}
    finally:
        # The host comes back: its API server, kubelet and etcd member rejoin on their own
        # (waited for even when a check above failed, so the next test starts whole).
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())  # hosts share this clock
        restarted = time.monotonic()
        subprocess.run(["docker", "start", ha.container(holder)], check=True,
                       capture_output=True, timeout=120)
        ha.wait(f"{holder} rejoined", lambda: _rejoined(ha, holder, since), timeout=420,
                every=3)
    REPORT[f"rejoin_after_{how}_s"] = round(time.monotonic() - restarted, 1)
    assert ha.wait("every node Ready", lambda: all(ha.nodes_ready().values()), 120)


def test_a_deleted_frontend_pod_is_replaced(ha):
    victim = frontend_pods(ha)[0]["metadata"]["name"]
    ha.kubectl("-n", "default", "delete", "pod", victim, "--wait=false")

    def replaced():
        names = {p["metadata"]["name"] for p in frontend_pods(ha)}
        return names if len(names) == 3 and victim not in names else None

    assert victim not in ha.wait("three ready frontend pods again", replaced, 180)


def _edit_frontend(ha: HaCluster, old: str, new: str) -> None:
    """Change the frontend block of the imported guestbook file, as a person would."""
    path = ha.root / "apps" / "guestbook.kf"
    text = path.read_text()
    start = text.index("deployment frontend {")
    end = text.index("}\n  service frontend", start)
    block = text[start:end]
    assert block.count(old) == 1, (old, block)
    path.write_text(text[:start] + block.replace(old, new) + text[end:])


def test_scale_from_the_file_runs_only_the_workload_steps(ha):
    _edit_frontend(ha, "replicas 3", "replicas 5")
    proc = ha.on_hosts("apply")
    assert proc.returncode == 0, proc.stderr[-4000:]
    changed = changed_steps(proc.stderr)
    assert changed and all("/workloads/" in step for step in changed), changed
    ha.wait("five ready frontend pods", lambda: len(frontend_pods(ha)) == 5, 180)


def _watch(ha: HaCluster, events: list, stop: threading.Event) -> subprocess.Popen:
    """Every change of the frontend's ReplicaSets, as kubectl's watch streams them."""
    proc = subprocess.Popen([str(ha.kubectl_bin), "--kubeconfig", str(ha.admin_conf), "-n",
                             "default", "get", "replicasets", "-l", "app=guestbook,tier=frontend",
                             "-w", "-o", "json"], stdout=subprocess.PIPE, text=True)

    def stream():
        decoder, buffer = json.JSONDecoder(), ""
        for line in proc.stdout:
            buffer += line
            try:
                obj, end = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            for item in obj.get("items", [obj]) if obj.get("kind") == "List" else [obj]:
                events.append((time.monotonic(), item))
            buffer = buffer.strip()[end:]
            if stop.is_set():
                break

    def read():
        try:
            stream()
        except (ValueError, OSError):  # the pipe closed under us when the watch was stopped
            pass

    threading.Thread(target=read, daemon=True).start()
    return proc


def _moments(events: list) -> list[tuple[int, int]]:
    """(pods the ReplicaSets are told to run, pods ready) after each watched change: the
    controller's own accounting, which is what max_surge and max_unavailable bound
    (terminating pods count for neither, as upstream defines them)."""
    latest: dict[str, dict] = {}
    moments = []
    for _, rs in events:
        latest[rs["metadata"]["name"]] = rs
        moments.append((sum(r["spec"]["replicas"] for r in latest.values()),
                        sum(r["status"].get("readyReplicas", 0) for r in latest.values())))
    return moments


def _sample_http(ha: HaCluster, samples: list, stop: threading.Event) -> threading.Thread:
    """GET the frontend through both workers' NodePort in turn, from this machine."""
    def run():
        while not stop.is_set():
            for host in WORKERS:
                try:
                    status, headers, _ = http_get(guestbook_url(ha, host), timeout=3)
                except OSError as exc:  # refused, reset, timed out: a failed request
                    status, headers = repr(exc), {}
                samples.append((time.monotonic(), host, status,
                                headers.get("X-Guestbook-Release")))
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _replica_sets(ha: HaCluster) -> dict[str, dict]:
    items = ha.json("-n", "default", "get", "replicasets", "-l",
                    "app=guestbook,tier=frontend")["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


def _image_of(rs: dict) -> str:
    return rs["spec"]["template"]["spec"]["containers"][0]["image"]


ROLLOUT: dict = {}  # what the rolling update left for the rollback test


def test_rolling_update_keeps_the_declared_limits(ha):
    before = {name: _image_of(rs) for name, rs in _replica_sets(ha).items()
              if rs["spec"]["replicas"]}
    assert list(before.values()) == ["gcr.io/google-samples/gb-frontend:v4"]
    ROLLOUT["old"] = next(iter(before))
    events, samples, stop = [], [], threading.Event()
    watch = _watch(ha, events, stop)
    sampler = _sample_http(ha, samples, stop)
    try:
        _edit_frontend(ha, "gb-frontend:v4", "gb-frontend:v5")
        started = time.monotonic()
        proc = ha.on_hosts("apply")
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert all("/workloads/" in s for s in changed_steps(proc.stderr))
        ha.kubectl("-n", "default", "rollout", "status", "deployment/frontend",
                   "--timeout=300s", timeout=330)
        done = time.monotonic()
        REPORT["rolling_update_s"] = round(done - started, 1)
        for host in WORKERS:
            ha.wait(f"answers from v5 only through {host}", lambda h=host: all(
                http_get(guestbook_url(ha, h))[1].get("X-Guestbook-Release") == "v5"
                for _ in range(10)), 60, 1)
    finally:
        stop.set()
        watch.terminate()
        sampler.join(timeout=10)
    # Every sampled moment: never fewer ready than replicas - max_unavailable (0), never more
    # pods than replicas + max_surge (1).
    moments = _moments(events)
    assert len(moments) >= 5, moments
    low = min(ready for _, ready in moments)
    high = max(pods for pods, _ in moments)
    failed = [s for s in samples if s[2] != 200]
    REPORT["rolling_update_http"] = {"requests": len(samples), "failed": len(failed),
                                     "failures": sorted({str(s[2]) for s in failed})[:5],
                                     "min_ready": low, "max_pods": high,
                                     "watch_events": len(moments)}
    assert low >= 5 and high <= 6, (low, high)
    for host in WORKERS:  # each NodePort served v4, then v5
        seen = [release for _, h, status, release in samples if h == host and status == 200]
        assert seen[0] == "v4" and "v5" in seen, (host, seen[:5], seen[-5:])
    after = _replica_sets(ha)
    (new,) = [n for n, rs in after.items() if rs["spec"]["replicas"]]
    assert _image_of(after[new]).endswith(":v5") and new not in before
    ROLLOUT["new"] = new


def test_rollout_undo_brings_the_old_replicaset_back(ha):
    """The rollback kubeforge offers: the old ReplicaSet returns; the file is not changed and
    the command says what it still declares."""
    old, new = ROLLOUT["old"], ROLLOUT["new"]
    inventory = ("-i", str(ha.sandbox_dir / "inventory.yaml"), "--known-hosts",
                 str(ha.sandbox_dir / "known_hosts"))
    proc = ha.kubeforge("rollout", "undo", str(ha.kf), "frontend", *inventory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "still declares php-redis=gcr.io/google-samples/gb-frontend:v5" in proc.stderr
    rolled = _replica_sets(ha)
    assert rolled[old]["spec"]["replicas"] == 5 and rolled[old]["status"].get("readyReplicas") == 5
    assert rolled[new]["spec"]["replicas"] == 0
    ha.wait("answers from v4 again", lambda: all(
        http_get(guestbook_url(ha, "worker2"))[1].get("X-Guestbook-Release") == "v4"
        for _ in range(10)), 60, 1)
    history = ha.kubeforge("rollout", "history", str(ha.kf), "frontend", *inventory)
    assert history.returncode == 0 and "REVISION" in history.stdout, history.stderr


# ----- RBAC against the real authorizer ---------------------------------------------------
class Api:
    """SelfSubjectAccessReviews (and SubjectAccessReviews) over one kept-alive TLS connection
    to the VIP, as one identity: a client certificate or a bearer token."""

    def __init__(self, ca: bytes, tmp: Path, cert: bytes | None = None,
                 key: bytes | None = None, token: str | None = None) -> None:
        context = ssl.create_default_context(cadata=ca.decode())
        if cert is not None:
            (tmp / "c.crt").write_bytes(cert)
            (tmp / "c.key").write_bytes(key)
            (tmp / "c.key").chmod(0o600)
            context.load_cert_chain(tmp / "c.crt", tmp / "c.key")
        self.conn = http.client.HTTPSConnection(VIP, 8443, context=context, timeout=30)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict) -> dict:
        self.conn.request("POST", path, json.dumps(body), self.headers)
        answer = self.conn.getresponse()
        data = json.loads(answer.read())
        assert answer.status == 201, data
        return data

    def whoami(self) -> dict:
        return self.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})["status"]["userInfo"]

    def allowed(self, attributes: dict, subject: dict | None = None) -> bool:
        kind = "SubjectAccessReview" if subject else "SelfSubjectAccessReview"
        spec = {"resourceAttributes": attributes, **(subject or {})}
        return self.post(f"/apis/authorization.k8s.io/v1/{kind.lower()}s", {
            "apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec})["status"][
            "allowed"]


def _from_kubeconfig(path: Path) -> tuple[bytes, bytes, bytes]:
    config = yaml.safe_load(path.read_text())
    user = config["users"][0]["user"]
    ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
    return tuple(base64.b64decode(v) for v in (ca, user["client-certificate-data"],
                                               user["client-key-data"]))


def _attributes(column: str, verb: str, namespace: str) -> dict:
    from kubeforge.compiler.rbac_defaults import api_group_of

    resource, dot, group = column.partition(".")
    group = ("" if group == "core" else group) if dot else (api_group_of(resource) or "")
    resource, _, sub = resource.partition("/")
    attrs = {"verb": verb, "resource": resource, "group": group, "namespace": namespace}
    if sub:
        attrs["subresource"] = sub
    return attrs


def test_rbac_matrix_equals_the_real_authorizer(ha, tmp_path):
    compared, mismatches = matrix_against_the_cluster(ha, tmp_path)
    REPORT["rbac"] = {"cells": compared, "mismatches": len(mismatches)}
    assert compared > 1500
    assert mismatches == [], "\n".join(mismatches[:40])


def matrix_against_the_cluster(ha: HaCluster, tmp_path: Path,
                               must_have: frozenset[str] = frozenset()) -> tuple[int, list[str]]:
    """Every cell of `kubeforge rbac matrix` asked of the real authorizer with each subject's
    own credential (a group: as an otherwise unknown member); (cells, mismatches). Day-2
    modules that add identities to the file call it again."""
    proc = ha.kubeforge("rbac", "matrix", str(ha.kf), "--json")
    assert proc.returncode == 0, proc.stderr
    matrix = json.loads(proc.stdout)
    verbs = matrix["verbs"]
    subjects = sorted({label for scope in matrix["scopes"].values() for label in scope})
    assert {"user alice", "user bob", "user carol", "serviceaccount team-a/ci",
            "group auditors", *must_have} <= set(subjects)

    ca, admin_cert, admin_key = _from_kubeconfig(ha.admin_conf)
    admin = Api(ca, _dir(tmp_path, "admin"), admin_cert, admin_key)
    apis: dict[str, tuple[Api, dict | None]] = {}
    for label in subjects:
        kind, name = label.split(" ", 1)
        if kind == "user":  # x509: the kubeconfig kubeforge issues from the cluster CA
            out = tmp_path / f"{name}.kubeconfig"
            issued = ha.kubeforge("kubeconfig", "user", str(ha.kf), name, "-o", str(out))
            assert issued.returncode == 0, issued.stderr
            api = Api(ca, _dir(tmp_path, name), *_from_kubeconfig(out)[1:])
            who = api.whoami()
            assert who["username"] == name and "system:authenticated" in who["groups"], who
            apis[label] = (api, None)
        elif kind == "serviceaccount":  # a bearer token from the TokenRequest API
            namespace, account = name.split("/")
            token = ha.kubectl("-n", namespace, "create", "token", account,
                               "--duration=1h").stdout.strip()
            api = Api(ca, _dir(tmp_path, account), token=token)
            assert api.whoami()["username"] == f"system:serviceaccount:{namespace}:{account}"
            apis[label] = (api, None)
        elif kind == "token":  # a declared token, as `kubeforge kubeconfig token` writes it
            out = tmp_path / f"{name}.kubeconfig"
            issued = ha.kubeforge("kubeconfig", "token", str(ha.kf), name, "-o", str(out))
            assert issued.returncode == 0, issued.stderr
            token = yaml.safe_load(out.read_text())["users"][0]["user"]["token"]
            apis[label] = (Api(ca, _dir(tmp_path, name), token=token), None)
        else:  # a group has no credential: ask about an otherwise unknown member of it
            apis[label] = (admin, {"user": f"member-of:{name}",
                                   "groups": [name, "system:authenticated"]})
    compared, mismatches = 0, []
    for scope, table in matrix["scopes"].items():
        namespace = "" if scope == "*" else scope
        for label, row in table.items():
            api, subject = apis[label]
            for column, allowed in row.items():
                for verb in verbs:
                    real = api.allowed(_attributes(column, verb, namespace), subject)
                    compared += 1
                    if real != (verb in allowed):
                        mismatches.append(f"{scope} {label} {verb} {column}: kubeforge "
                                          f"{verb in allowed}, cluster {real}")
    return compared, mismatches


def _dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"tls-{name}"
    path.mkdir()
    return path
