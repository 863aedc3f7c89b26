"""`certs renew`, the host side, from .kf source against fake hosts with a clock: which
components restart for which certificate, that a node already renewed is left alone, that a
run killed between upload and restart is finished by the next one, and that the uploads are
recorded so the next apply finds them done. The real cluster: tests/k8s/ha/test_day2_certs.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest

from kubeforge.compiler import pki_renew, pki_store
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.state import StateDir
from kubeforge.targets import renew
from kubeforge.targets.actions import Payload
from kubeforge.targets.base import CommandOutput
from kubeforge.targets.deploy import prepare
from kubeforge.targets.execute import Sessions, StepRunner
from tests.deploy.fakes import answer_checks, fake_stat

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
SOURCE = """cluster lab {{
  kubernetes "1.37.2"
  endpoint "10.0.0.100:8443"
  etcd {etcd}
  loadbalancer keepalived-haproxy {{ vip 10.0.0.100  interface "eth0" }}
  node cp1 {{ address 10.0.0.11  role control-plane }}
  node cp2 {{ address 10.0.0.12  role control-plane }}
  node cp3 {{ address 10.0.0.13  role control-plane }}
  node w1 {{ address 10.0.0.21  role worker }}
{extra}}}
"""
EXTERNAL = "".join(f"  node e{i} {{ address 10.0.0.3{i}  role etcd }}\n" for i in (1, 2, 3))


class ClockHost:
    """Files with modification times and containers with start times, on one clock."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.files: dict[str, tuple[bytes, int, str]] = {}
        self.mtimes: dict[str, float] = {}
        self.containers: dict[str, tuple[str, float]] = {}
        self.log: list[str] = []

    def run(self, script: str, *, timeout: float, stdin: bytes | None = None) -> CommandOutput:
        def done(code=0, out=""):
            return CommandOutput(code, out.encode(), b"", 0.0)

        if "cat >" in script:
            path = re.search(r"mv -f \"\$t\" (\S+)", script).group(1)
            mode = int(re.search(r"chmod (\d+)", script).group(1), 8)
            owner = re.search(r"chown (\S+)", script).group(1)
            self.files[path], self.mtimes[path] = (stdin, mode, owner), next(self.clock)
            self.log.append(f"upload {path}")
            return done(out=fake_stat(stdin, mode, owner) + "\n")
        answer = answer_checks(self.files, script)
        if answer is not None:
            return answer
        if "stat -c %.9Y" in script:
            lines = [f"C {name} {cid} {started}" for name, (cid, started)
                     in self.containers.items()]
            lines += [f"F {p} {self.mtimes[p]}" for p in re.findall(r"\[ -e (\S+) \]", script)
                      if p in self.mtimes]
            return done(out="\n".join(lines) + "\n")
        if "crictl stop" in script:
            name = re.search(r"--name '\^(.+?)\$'", script).group(1)
            self.containers[name] = (f"{name}-{len(self.log)}", next(self.clock))
            self.log.append(f"restart {name}")
            return done()
        if "systemctl restart" in script:
            name = re.search(r"systemctl restart (\S+)", script).group(1)
            self.containers[name] = ("", next(self.clock))
            self.log.append(f"restart {name}")
            return done()
        if "readyz" in script or "endpoint health" in script:
            self.log.append("health")
            return done()
        raise AssertionError(f"unexpected script: {script[:200]}")

    def close(self) -> None:
        pass


class ClockTarget:
    name = "clock"

    def __init__(self, hosts) -> None:
        self.hosts = hosts

    def open(self, spec):
        return self.hosts[spec.name]

    def close(self) -> None:
        pass


class Lab:
    def __init__(self, tmp_path, etcd="stacked") -> None:
        self.file = tmp_path / "lab.kf"
        self.file.write_text(SOURCE.format(etcd=etcd, extra=EXTERNAL if etcd == "external"
                                           else ""))
        self.inventory = tmp_path / "inv.yaml"
        names = ["cp1", "cp2", "cp3", "w1"] + (["e1", "e2", "e3"] if etcd == "external" else [])
        self.inventory.write_text("all:\n  hosts:\n" + "".join(
            f"    {n}: {{ansible_host: 10.0.0.{i + 11}}}\n" for i, n in enumerate(names)))
        self.tmp = tmp_path
        self.cluster = load_program(self.file)[0].cluster
        self.state = StateDir(tmp_path / "state")
        self.clock = itertools.count(1000)
        self.hosts = {n: ClockHost(self.clock) for n in names}
        self.dep = self.prepare()
        # As a converged apply leaves them: every file placed, then the components started.
        for step in self.dep.plan.steps:
            if step.action.kind == "upload":
                payload = Payload.read(self.dep.build_root, step.action, self.dep.digest_key)
                host = self.hosts[step.host]
                host.files[step.action.path] = (payload.data, step.action.mode,
                                                step.action.owner)
                host.mtimes[step.action.path] = next(self.clock)
        for name in names:
            node = next(n for n in self.cluster.nodes if n.name == name)
            for c in renew.components_for(self.cluster, node):
                self.hosts[name].containers[c.name] = (f"{c.name}-0", next(self.clock))

    def prepare(self):
        return prepare(self.file, self.inventory, self.tmp / "build", self.tmp / "state",
                       now=NOW)

    def runner(self) -> StepRunner:
        return StepRunner(self.dep.plan, self.dep.build_root, self.dep.load_state(),
                          Sessions(ClockTarget(self.hosts), self.dep.hosts),
                          digest_key=self.dep.digest_key)

    def renew_state(self, *names: str) -> None:
        chosen = pki_renew.select(self.cluster, names, False)
        record = pki_renew.Renewal(NOW, ()).merged(chosen)
        record.save(self.state)
        pki_renew.issue(self.state, record, pki_renew.leaves(self.cluster),
                        pki_store.load_cas(self.state, NOW), self.cluster, NOW)
        self.dep = self.prepare()

    def run(self) -> dict[str, renew.HostResult]:
        runner = self.runner()
        paths = {p for leaf in pki_renew.leaves(self.cluster) for _, p in leaf.host_files}
        for host in self.hosts.values():
            host.log.clear()
        return {node.name: renew.renew_host(self.cluster, node, runner, self.dep.plan.steps,
                                            paths)
                for node in renew.order(self.cluster)}


@pytest.fixture
def lab(tmp_path) -> Lab:
    return Lab(tmp_path)


def _did(results) -> dict[str, tuple[list[str], list[str]]]:
    return {h: (sorted(r.uploaded), r.restarted) for h, r in results.items()
            if r.uploaded or r.restarted or r.error}


@pytest.mark.parametrize("path, stacked, external", [
    ("/etc/kubernetes/pki/apiserver.crt", ["kube-apiserver"], ["kube-apiserver"]),
    ("/etc/kubernetes/pki/front-proxy-client.key", ["kube-apiserver"], ["kube-apiserver"]),
    ("/etc/kubernetes/pki/apiserver-etcd-client.crt", ["kube-apiserver"], ["kube-apiserver"]),
    ("/etc/kubernetes/pki/apiserver-kubelet-client.crt", ["kube-apiserver"], ["kube-apiserver"]),
    ("/etc/kubernetes/pki/etcd/server.crt", ["etcd"], []),
    ("/etc/kubernetes/pki/etcd/peer.key", ["etcd"], []),
    ("/etc/kubernetes/pki/etcd/healthcheck-client.crt", [], []),
    ("/etc/kubernetes/controller-manager.conf", ["kube-controller-manager"],
     ["kube-controller-manager"]),
    ("/etc/kubernetes/scheduler.conf", ["kube-scheduler"], ["kube-scheduler"]),
    ("/etc/kubernetes/admin.conf", [], []),
    ("/etc/kubernetes/super-admin.conf", [], []),
])
def test_which_components_read_which_file(path, stacked, external):
    for etcd, want in (("stacked", stacked), ("external", external)):
        cluster = load_program_text(SOURCE.format(
            etcd=etcd, extra=EXTERNAL if etcd == "external" else ""))
        cp1 = cluster.first_control_plane
        assert [c.name for c in renew.readers(cluster, cp1, [path])] == want, etcd
    member = next(n for n in cluster.nodes if n.name == "e1")
    etcd_readers = renew.readers(cluster, member, [path])
    assert [(c.name, c.kind) for c in etcd_readers] == (
        [("etcd", renew.SYSTEMD)] if "/etcd/server" in path or "/etcd/peer" in path else [])


def test_nothing_renewed_touches_nothing(lab):
    assert _did(lab.run()) == {}
    assert all(not h.log for h in lab.hosts.values())


def test_each_renewed_leaf_restarts_only_its_readers(lab):
    lab.renew_state("apiserver@cp1", "scheduler.conf@cp2", "etcd-peer@cp3", "admin.conf")
    results = lab.run()
    admin = "/etc/kubernetes/admin.conf"
    assert _did(results) == {
        "cp1": ([admin, "/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver.key"],
                ["kube-apiserver"]),
        "cp2": ([admin, "/etc/kubernetes/scheduler.conf"], ["kube-scheduler"]),
        "cp3": ([admin, "/etc/kubernetes/pki/etcd/peer.crt", "/etc/kubernetes/pki/etcd/peer.key"],
                ["etcd"]),
    }
    # Each node is healthy before the next one is touched; workers are never contacted.
    assert lab.hosts["cp1"].log[-1] == "health" and not lab.hosts["w1"].log
    # Recorded as the apply's own upload steps: the next apply finds them done.
    state = lab.dep.load_state()
    uploads = [s for s in lab.dep.plan.steps if s.host == "cp1" and s.action.kind == "upload"
               and s.action.path == "/etc/kubernetes/pki/apiserver.key"]
    assert uploads and state.is_done(uploads[0]) and uploads[0].action.mode == 0o600
    # Run again: every node already runs what it holds.
    assert _did(lab.run()) == {}


def test_a_run_killed_between_upload_and_restart_is_finished_next_time(lab):
    lab.renew_state("front-proxy-client@cp2", "etcd-server@cp2")
    runner = lab.runner()
    for step in renew.cert_uploads(lab.dep.plan.steps, "cp2",
                                   {"/etc/kubernetes/pki/front-proxy-client.crt",
                                    "/etc/kubernetes/pki/front-proxy-client.key",
                                    "/etc/kubernetes/pki/etcd/server.crt"}):
        runner.run(step)  # ... and the process was killed here
    results = lab.run()
    assert _did(results) == {"cp2": (["/etc/kubernetes/pki/etcd/server.key"],
                                     ["etcd", "kube-apiserver"])}
    assert lab.hosts["cp2"].log == ["upload /etc/kubernetes/pki/etcd/server.key",
                                    "restart etcd", "restart kube-apiserver", "health"]


def test_external_etcd_members_restart_their_unit(tmp_path):
    lab = Lab(tmp_path, "external")
    lab.renew_state("etcd-server@e2")
    assert _did(lab.run()) == {"e2": (["/etc/kubernetes/pki/etcd/server.crt",
                                       "/etc/kubernetes/pki/etcd/server.key"], ["etcd"])}
    assert [n.name for n in renew.order(lab.cluster)] == ["cp1", "cp2", "cp3", "e1", "e2", "e3"]


def test_status_of_a_host_is_parsed_and_units_get_a_second_of_slack():
    status = renew.parse_status("C kube-apiserver abc 100.5\nC etcd - 100\n"
                                "F /etc/kubernetes/pki/apiserver.crt 100.7\n"
                                "F /etc/kubernetes/pki/etcd/server.crt 100.6\n")
    cluster = load_program_text(SOURCE.format(etcd="stacked", extra=""))
    components = renew.components_for(cluster, cluster.first_control_plane)
    assert [c.name for c in status.stale(components)] == ["kube-apiserver"]


def load_program_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "c.kf").write_text(text)
        return load_program(Path(d) / "c.kf")[0].cluster



def test_plan_probe_names_components_running_older_certificates(lab):
    """An apply uploads re-issued leaves but restarts nothing: `plan --probe` says which
    components still run the old ones; after a renewal it says nothing."""
    runner = lab.runner()
    assert renew.stale_warnings(lab.cluster, runner.sessions) == []
    lab.renew_state("apiserver-kubelet-client@cp3", "controller-manager.conf@cp3")
    runner = lab.runner()
    for step in lab.dep.plan.steps:  # what `apply` does with the new build
        if step.action.kind == "upload" and step.host == "cp3":
            runner.run(step)
    (warning,) = renew.stale_warnings(lab.cluster, runner.sessions)
    assert warning.startswith("cp3: kube-apiserver, kube-controller-manager started before")
    lab.run()
    assert renew.stale_warnings(lab.cluster, lab.runner().sessions) == []
