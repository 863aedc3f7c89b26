"""What the plan emitter builds from a cluster and its artifacts (reference section 4)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections import Counter

import pytest

from kubeforge.compiler.artifacts import node_file
from kubeforge.compiler.emit import plan as plan_emitter
from kubeforge.compiler.plan import PHASES, Command, Plan, PlanError, Service, Upload, render_text
from plan_helpers import context, make_cluster, node

KUBEADM = "/etc/kubernetes/kubeadm"


def build(cluster, **kw):
    ctx, secrets = context(cluster, **kw)
    return plan_emitter.build_plan(ctx.cluster, ctx.artifacts, ctx.shared), ctx, secrets


@pytest.fixture(params=["stacked", "external"])
def built(request):
    return build(make_cluster(etcd=request.param))


def kubeadm_steps(plan: Plan, verb: str):
    return [s for s in plan.steps if isinstance(s.action, Command)
            and s.action.argv[:2] == ("kubeadm", verb)]


def test_needs_never_point_to_a_later_phase(built):
    plan, _, _ = built
    rank = {p: i for i, p in enumerate(PHASES)}
    for step in plan.steps:
        for need in step.needs:
            assert rank[plan.step(need).phase] <= rank[step.phase], (step.id, need)
    assert len(plan.order()) == len(plan.steps)  # acyclic: every step was ordered


def test_first_control_plane_inits_and_everybody_else_joins_after_it(built):
    plan, _, _ = built
    [init] = kubeadm_steps(plan, "init")
    assert init.host == "cp1" and init.phase == "control-plane-init"
    assert init.action.argv == ("kubeadm", "init", "--config", f"{KUBEADM}/init.yaml")
    assert "--upload-certs" not in init.action.argv and not init.action.retry_safe
    assert init.check.value == "test -f /etc/kubernetes/manifests/kube-apiserver.yaml"
    joins = kubeadm_steps(plan, "join")
    assert sorted(s.host for s in joins) == ["cp2", "cp3", "w1", "w2"]
    for join in joins:
        assert join.action.argv == ("kubeadm", "join", "--config", f"{KUBEADM}/join.yaml")
        assert init.id in plan.ancestors(join.id)
        assert join.phase == ("control-plane-join" if join.host.startswith("cp")
                              else "workers-join")


def test_control_plane_joins_run_one_at_a_time_and_workers_wait_only_for_the_first(built):
    plan, _, _ = built
    joins = [s.id for s in kubeadm_steps(plan, "join")]
    planes = [j for j in joins if "/control-plane-join/" in j]
    workers = [j for j in joins if "/workers-join/" in j]
    assert len(planes) == 2 and workers
    # etcd takes one learner member at a time: each control-plane join needs the one before.
    assert planes[0] in plan.step(planes[1]).needs
    assert planes[0] not in plan.ancestors(planes[0])
    for join in joins:
        assert "cp1/control-plane-init/api-ready" in plan.step(join).needs
    for join in workers:
        assert not set(joins) & plan.ancestors(join), f"{join} waits for another join"


def test_init_waits_for_the_endpoint_and_external_etcd(built):
    plan, ctx, _ = built
    [init] = kubeadm_steps(plan, "init")
    before = plan.ancestors(init.id)
    for cp in ("cp1", "cp2", "cp3"):
        assert {f"{cp}/loadbalancer/service-haproxy",
                f"{cp}/loadbalancer/service-keepalived"} <= before
    health = {f"{n}/etcd/health" for n in ("etcd1", "etcd2", "etcd3")}
    if ctx.cluster.etcd == "external":
        assert health <= before
        service = plan.step("etcd1/etcd/service-etcd").action
        assert service.no_block and "/etc/kubernetes/pki/etcd/server.key" in {
            plan.step(i).action.path for i in service.restart_on}
        install = plan.step("etcd1/etcd/install-packages").action
        assert "policy-rc.d" in install.shell and "etcd-server etcd-client" in install.shell
    else:
        assert not any(s.host.startswith("etcd") for s in plan.steps)


def test_every_node_file_is_uploaded_exactly_once(built):
    plan, ctx, _ = built
    sources = Counter(s.action.source for s in plan.uploads())
    expected = [a.path for a in ctx.artifacts if a.node or a.path.startswith("manifests/")]
    assert sorted(sources) == sorted(expected)
    assert set(sources.values()) == {1}
    for art in ctx.artifacts:
        if art.node:
            [step] = [s for s in plan.uploads() if s.action.source == art.path]
            # Secrets get a keyed digest: plan.json never confirms a guessed secret.
            digest = step.action.sha256
            assert (step.host, step.action.path) == (art.node, art.host_path)
            if art.secret:
                assert digest.startswith("hmac-sha256:") and art.sha256 not in digest
            else:
                assert digest == art.sha256
            assert step.action.mode == (0o600 if art.secret else art.mode)
            if art.host_path == "/etc/kubernetes/kubelet.conf":  # placed once, then kubeadm's
                assert step.check.value == "test -f /etc/kubernetes/kubelet.conf"
            else:
                assert step.check.value == digest


@pytest.mark.parametrize("path, phase", [
    ("/etc/kubernetes/pki/ca.key", "pki"),
    ("/etc/kubernetes/admin.conf", "pki"),
    ("/etc/haproxy/haproxy.cfg", "loadbalancer"),
    ("/etc/keepalived/check_apiserver.sh", "loadbalancer"),
    ("/etc/sysctl.d/99-kubernetes.conf", "os-prepare"),
    ("/etc/modules-load.d/k8s.conf", "os-prepare"),
    ("/etc/containerd/config.toml", "runtime"),
    ("/etc/default/etcd", "etcd"),
    ("/etc/systemd/system/etcd.service", "etcd"),
])
def test_uploads_land_in_the_phase_of_their_reader(path, phase):
    plan, _, _ = build(make_cluster(etcd="external"))
    host = "etcd1" if "etcd" in path and "pki" not in path else "cp1"
    assert plan.step(f"{host}/{phase}/upload-{path.strip('/').replace('/', '-')}")


def test_kubeadm_configs_sit_in_the_phase_of_their_kubeadm_step():
    plan, _, _ = build(make_cluster())
    assert plan.step("cp1/control-plane-init/upload-etc-kubernetes-kubeadm-init.yaml")
    assert plan.step("cp2/control-plane-join/upload-etc-kubernetes-kubeadm-join.yaml")
    assert plan.step("w1/workers-join/upload-etc-kubernetes-kubeadm-join.yaml")


def test_no_secret_reaches_plan_json_or_plan_txt(built):
    _, ctx, secrets = built
    outputs = {a.path: a.content.decode() for a in plan_emitter.emit(ctx)}
    assert set(outputs) == {"plan.json", "plan.txt"}
    for name, text in outputs.items():
        assert secrets.token not in text, name
        assert secrets.token.split(".")[1] not in text, name
        assert "PRIVATE KEY" not in text, name
        for pem in secrets.keys:
            for line in pem.decode().splitlines()[1:-1]:
                assert line not in text, name
        for art in ctx.artifacts:
            if art.secret:
                assert art.content.decode() not in text


def test_two_builds_are_byte_identical(built):
    _, ctx, secrets = built
    again, _ = context(ctx.cluster, secrets)
    # Fresh keys give fresh hashes: rebuild from the very same artifacts instead.
    again.artifacts[:] = ctx.artifacts
    first = [(a.path, a.content) for a in plan_emitter.emit(ctx)]
    second = [(a.path, a.content) for a in plan_emitter.emit(again)]
    assert first == second
    data = json.loads(dict(first)["plan.json"])
    assert list(data) == sorted(data) and data["phases"] == list(PHASES)
    assert Plan.from_json(dict(first)["plan.json"].decode()).to_json().encode() == \
        dict(first)["plan.json"]


def test_plan_txt_shows_no_hashes(built):
    plan, _, _ = built
    text = render_text(plan)
    for step in plan.uploads():
        assert step.action.sha256 not in text


def test_secret_manifests_are_uploaded_0600_and_applied_in_file_order():
    plan, _, _ = build(make_cluster())
    uploads = {s.action.path: s.action for s in plan.uploads() if s.phase == "workloads"}
    assert uploads["/etc/kubernetes/kubeforge/manifests/10-app-secrets.yaml"].mode == 0o600
    assert uploads["/etc/kubernetes/kubeforge/manifests/10-app-secrets.yaml"].secret
    assert uploads["/etc/kubernetes/kubeforge/manifests/00-cluster.yaml"].mode == 0o644
    applies = [s for s in plan.order() if s.phase == "workloads"
               and isinstance(s.action, Command)]
    assert [s.action.argv[-1].rsplit("/", 1)[1] for s in applies] == \
        ["00-cluster.yaml", "10-app-secrets.yaml", "10-app.yaml"]
    for a in applies:
        assert a.action.argv[3:5] == ("apply", "--server-side")
        assert a.check.kind == "probe" and " diff --server-side " in a.check.value
    assert applies[1].id in plan.step(applies[2].id).needs


def test_cni_and_addons_run_on_the_first_control_plane_after_it_is_ready():
    plan, _, _ = build(make_cluster())
    [cni] = plan.steps_in_phase("cni")
    assert cni.host == "cp1" and "calico/v3.28.2/manifests/calico.yaml" in cni.action.argv[-1]
    assert "cp1/control-plane-init/api-ready" in plan.ancestors(cni.id)
    assert not {s.id for s in kubeadm_steps(plan, "join")} & plan.ancestors(cni.id)
    [dns] = plan.steps_in_phase("addons")
    assert cni.id in dns.needs
    pinned, _, _ = build(make_cluster(cni="flannel", cni_version="v0.26.0"))
    [flannel] = pinned.steps_in_phase("cni")
    assert flannel.action.argv[-1].endswith("/v0.26.0/kube-flannel.yml")
    none, _, _ = build(make_cluster(cni="none"))
    assert not none.steps_in_phase("cni") and not none.steps_in_phase("addons")
    assert "wait" not in none.step("cp1/verify/nodes-ready").action.argv


def test_verify_waits_for_every_node_by_name():
    plan, _, _ = build(make_cluster())
    ready = plan.step("cp1/verify/nodes-ready")
    assert [a for a in ready.action.argv if a.startswith("node/")] == \
        ["node/cp1", "node/cp2", "node/cp3", "node/w1", "node/w2"]
    assert {s.id for s in kubeadm_steps(plan, "join")} <= set(ready.needs)
    assert "cp1/workers-join/label-w1" in ready.needs
    assert plan.step("cp1/verify/etcd-health").action.argv[5:7] == ("exec", "etcd-cp1")


def test_os_prepare_reads_modules_and_sysctls_from_the_uploaded_files():
    plan, _, _ = build(make_cluster())
    # A feature built into the kernel (no module file, as in a container) counts as loaded.
    assert plan.step("cp1/os-prepare/modprobe").action.shell == (
        "{ grep -qw overlay /proc/filesystems || modprobe overlay; } && "
        "{ test -d /proc/sys/net/bridge || modprobe br_netfilter; }")
    sysctl = plan.step("cp1/os-prepare/sysctl")
    assert "cp1/os-prepare/modprobe" in sysctl.needs
    assert '[ "$(sysctl -n net.ipv4.ip_forward)" = 1 ]' in sysctl.check.value
    swap = plan.step("w1/os-prepare/swap-off")
    assert swap.action.shell.startswith("swapoff -a && sed")


def test_runtime_restarts_when_its_configuration_changes():
    plan, _, _ = build(make_cluster())
    containerd = plan.step("w1/runtime/service-containerd")
    assert containerd.action.restart_on == ("w1/runtime/upload-etc-containerd-config.toml",)
    assert "w1/runtime/install-packages" in containerd.needs
    # The kubelet is enabled in the kubeadm phase, so `--until` can stop before it on hosts
    # without Kubernetes packages.
    step = plan.step("w1/workers-join/service-kubelet")
    kubelet = step.action
    assert isinstance(kubelet, Service) and kubelet.enabled and kubelet.state is None
    assert "w1/runtime/service-containerd" in plan.ancestors(step.id)
    assert step.id in plan.step("w1/workers-join/kubeadm-join").needs


def test_static_pods_are_copied_before_init_on_the_first_node_and_after_join_elsewhere():
    plan, _, _ = build(make_cluster(deploy_as="static-pods"))
    [init] = kubeadm_steps(plan, "init")
    early = plan.step("cp1/loadbalancer/static-pod-haproxy.yaml")
    assert early.id in plan.ancestors(init.id)
    assert early.check.value.startswith("test -f /etc/kubernetes/manifests/kube-apiserver.yaml ||")
    late = plan.step("cp2/control-plane-join/static-pod-haproxy.yaml")
    assert "cp2/control-plane-join/kubeadm-join" in late.needs
    assert late.action.argv[-2:] == ("/etc/kubernetes/kubeforge/static-pods/haproxy.yaml",
                                     "/etc/kubernetes/manifests/haproxy.yaml")
    assert not any(isinstance(s.action, Service) and s.action.name == "haproxy"
                   for s in plan.steps)
    # The VIP comes from a pod the kubelet starts during init: nothing to probe before it.
    assert "cp1/control-plane-init/endpoint-reachable" not in {s.id for s in plan.steps}
    services, _, _ = build(make_cluster())
    probe = services.step("cp1/control-plane-init/endpoint-reachable")
    assert "/dev/tcp/10.0.0.100/8443" in probe.action.shell and "*refused*" in probe.action.shell
    assert probe.id in services.step("cp1/control-plane-init/kubeadm-init").needs


def test_files_join_preflight_refuses_are_placed_after_the_join():
    cluster = make_cluster()
    ctx, _ = context(cluster)
    ctx.artifacts.append(node_file("w1", "/etc/kubernetes/pki/ca.crt", "ca"))
    ctx.artifacts.append(node_file("cp2", "/etc/kubernetes/manifests/extra.yaml", "pod"))
    plan = plan_emitter.build_plan(cluster, ctx.artifacts, ctx.shared)
    ca = plan.step("w1/workers-join/upload-etc-kubernetes-pki-ca.crt")
    assert "w1/workers-join/kubeadm-join" in ca.needs
    extra = plan.step("cp2/control-plane-join/upload-etc-kubernetes-manifests-extra.yaml")
    assert "cp2/control-plane-join/kubeadm-join" in extra.needs


def test_a_kubelet_conf_for_a_joining_node_is_an_error():
    cluster = make_cluster()
    ctx, _ = context(cluster)
    ctx.artifacts.append(node_file("cp2", "/etc/kubernetes/kubelet.conf", "x", 0o600, True))
    with pytest.raises(PlanError, match="join` preflight refuses"):
        plan_emitter.build_plan(cluster, ctx.artifacts, ctx.shared)


def test_kubeadm_ignores_only_declared_resource_shortfalls():
    plan, _, _ = build(make_cluster())
    assert all(not s.action.ignore_preflight_errors
               for s in kubeadm_steps(plan, "init") + kubeadm_steps(plan, "join"))
    small = node("cp1", "10.0.0.11", "control-plane", cpus=1, memory_mib=1024)
    cluster = make_cluster(nodes=(small,) + make_cluster().nodes[1:])
    plan, _, _ = build(cluster)
    [init] = kubeadm_steps(plan, "init")
    assert init.action.argv[-1] == "--ignore-preflight-errors=NumCPU,Mem"
    assert [i.check for i in init.action.ignore_preflight_errors] == ["NumCPU", "Mem"]
    assert "declares 1 CPU" in init.action.ignore_preflight_errors[0].reason
    assert "cp1/preflight/resources" not in {s.id for s in plan.steps}
    assert "ignores preflight errors: NumCPU (node cp1 declares 1 CPU" in render_text(plan)


def test_preflight_ports_and_binaries_follow_the_roles():
    plan, _, _ = build(make_cluster(etcd="external"))
    assert ":(6443|8443|10250|10257|10259)$" in plan.step("cp1/preflight/ports").action.shell
    assert ":(10250|10256)$" in plan.step("w1/preflight/ports").action.shell
    assert ":(2379|2380)$" in plan.step("etcd1/preflight/ports").action.shell
    binaries = plan.step("cp1/preflight/binaries").action.shell
    assert "apt-get" in binaries and "kubeadm" not in binaries
    installed = dataclasses.replace(make_cluster(), install=dataclasses.replace(
        make_cluster().install, method="preinstalled"))
    plan, _, _ = build(installed, shared=False)
    preflight = plan.step("cp1/preflight/binaries").action.shell
    assert "containerd" in preflight and "kubeadm" not in preflight
    # Kubernetes programs are checked in the phase that runs them, so `--until` can stop
    # before it on hosts that lack them.
    check = plan.step("cp1/control-plane-init/kubernetes-binaries")
    assert "kubeadm version -o short | grep -qx v1.37.2" in check.action.shell
    init = plan.step("cp1/control-plane-init/kubeadm-init")
    assert check.id in init.needs and init.requires == ("kubeadm", "kubelet")
    assert plan.step("w1/workers-join/kubernetes-binaries").id in \
        plan.step("w1/workers-join/kubeadm-join").needs
    assert not any(s.id.endswith("install-packages") for s in plan.steps)


def test_without_shared_hints_the_plan_derives_services_from_the_files():
    plan, _, _ = build(make_cluster(), shared=False)
    service = plan.step("cp2/loadbalancer/service-haproxy")
    assert service.action.restart_on == ("cp2/loadbalancer/upload-etc-haproxy-haproxy.cfg",)


def test_an_upload_for_an_unknown_node_is_an_error():
    cluster = make_cluster()
    ctx, _ = context(cluster)
    ctx.artifacts.append(node_file("ghost", "/etc/x", "x"))
    with pytest.raises(PlanError, match="ghost"):
        plan_emitter.build_plan(cluster, ctx.artifacts, ctx.shared)


def test_uploads_keep_their_modes_and_owners():
    plan, _, _ = build(make_cluster())
    script = plan.step("cp3/loadbalancer/upload-etc-keepalived-check_apiserver.sh").action
    assert isinstance(script, Upload) and script.mode == 0o755 and script.owner == "root:root"


def test_every_shell_string_and_probe_parses(built):
    """`sh -n` (a real POSIX shell) parses every shell command, probe and `sh -c` script."""
    plan, _, _ = built
    scripts = []
    for step in plan.steps:
        if step.check.kind == "probe":
            scripts.append(step.check.value)
        if isinstance(step.action, Command):
            if step.action.shell is not None:
                scripts.append(step.action.shell)
            argv = step.action.argv
            if "sh" in argv and argv[argv.index("sh") + 1] == "-c":
                scripts.append(argv[argv.index("sh") + 2])
    assert scripts
    for script in scripts:
        result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}\n{result.stderr}"
