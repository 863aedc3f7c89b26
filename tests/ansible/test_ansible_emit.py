"""The generated playbook: equivalent to plan.json, free of secrets, lint- and syntax-clean."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeforge.compiler.build import compile_file, run_emitters
from kubeforge.compiler.emit import verify
from kubeforge.compiler.emit.ansible import plan_of, render, step_id_of, waves
from kubeforge.compiler.lower import load_program
from kubeforge.compiler.plan import Plan
from kubeforge.dsl.diagnostics import DiagnosticError
from kubeforge.targets.ansible import runtime_inventory
from kubeforge.targets.base import HostSpec, JumpHost, SshOptions
from tests.conftest import EXAMPLES, FIXED_NOW, assert_golden
from tests.ssh_command import first_option, ssh_command

GOLDEN = Path(__file__).parent / "golden"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ansible")
    return compile_file(EXAMPLES / "ha-cluster.kf", root / "build", state_dir=root / "state",
                        now=FIXED_NOW).root


def _tasks(build: Path) -> list[dict]:
    return [t for f in sorted((build / "ansible" / "phases").rglob("*.yml"))
            for t in yaml.safe_load(f.read_text())]


def test_site_and_a_task_file_match_goldens(build):
    assert_golden(GOLDEN / "ha-cluster.site.yml", (build / "ansible/site.yml").read_text())
    assert_golden(GOLDEN / "ha-cluster.loadbalancer.cp1.yml",
                  (build / "ansible/phases/loadbalancer/cp1.yml").read_text())


def test_every_step_is_one_task_in_its_phase_and_host_file(build):
    plan = Plan.from_json((build / "plan.json").read_text())
    seen: dict[str, str] = {}
    for f in sorted((build / "ansible" / "phases").rglob("*.yml")):
        for task in yaml.safe_load(f.read_text()):
            step_id = step_id_of(task["name"])
            if step_id and not task["name"].startswith(("Probe ", "Restart ")):
                assert step_id not in seen, f"{step_id} twice"
                seen[step_id] = f.relative_to(build / "ansible").as_posix()
    assert set(seen) == {s.id for s in plan.steps}
    for step in plan.steps:
        play = seen[step.id].split("/")[1]
        assert play.startswith(step.phase) and seen[step.id].endswith(f"/{step.host}.yml")


def test_task_order_follows_the_plan_on_each_host(build):
    plan = Plan.from_json((build / "plan.json").read_text())
    rank = {s.id: i for i, s in enumerate(plan.order())}
    for f in (build / "ansible" / "phases").rglob("*.yml"):
        ids = [step_id_of(t["name"]) for t in yaml.safe_load(f.read_text())]
        ranks = [rank[i] for i in ids if i]
        assert ranks == sorted(ranks), f"{f} runs steps out of plan order"


def test_uploads_keep_mode_owner_and_source_and_secrets_stay_out(build):
    plan = Plan.from_json((build / "plan.json").read_text())
    by_id = {s.id: s for s in plan.uploads()}
    for task in _tasks(build):
        step = by_id.get(step_id_of(task["name"]) or "")
        if step is None or not task["name"].startswith("Upload "):
            continue
        copy = task["ansible.builtin.copy"]
        assert copy["src"] == "{{ kubeforge_build }}/" + step.action.source
        assert (copy["dest"], copy["mode"]) == (step.action.path, f"{step.action.mode:04o}")
        assert f"{copy['owner']}:{copy['group']}" == step.action.owner
        assert task.get("no_log", False) == step.action.secret
    for path in (build / "ansible").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "PRIVATE KEY" not in text and "token:" not in text, path


def test_restarts_follow_restart_on_and_probes_gate_commands(build):
    tasks = _tasks(build)
    haproxy = next(t for t in tasks if t["name"] == "Service cp1/loadbalancer/service-haproxy")
    assert "kf_cp1_loadbalancer_upload_etc_haproxy_haproxy_cfg" in \
        haproxy["ansible.builtin.systemd_service"]["state"]
    init = next(t for t in tasks if t["name"] == "Run cp1/control-plane-init/kubeadm-init")
    assert init["ansible.builtin.command"]["creates"] == "/etc/kubernetes/manifests/kube-apiserver.yaml"
    assert init["no_log"] is True  # reads a secret config; kubeadm prints the token
    waits = [t for t in tasks if t["name"].endswith("/api-ready")]
    assert waits and all(t["changed_when"] is False for t in waits)


def test_waves_split_a_phase_only_at_needs_across_hosts(build):
    plan = Plan.from_json((build / "plan.json").read_text())
    for phase in plan.phases:
        seen: dict[str, int] = {}
        for number, wave in enumerate(waves(plan, phase)):
            for step in wave:
                for need in step.needs:
                    if need in seen and plan.step(need).host != step.host:
                        assert seen[need] < number
                seen[step.id] = number


def test_ansible_cfg_keeps_host_key_checking_on(build):
    cfg = (build / "ansible" / "ansible.cfg").read_text()
    assert "host_key_checking = True" in cfg
    # Run as ansible-runner runs it (ANSIBLE_HOST_KEY_CHECKING=False): ssh still gets
    # StrictHostKeyChecking=yes first, which is the value OpenSSH keeps.
    command = ssh_command(build / "ansible" / "inventory.yaml", "cp1",
                          {"ANSIBLE_HOST_KEY_CHECKING": "False"},
                          config=build / "ansible" / "ansible.cfg")
    assert first_option(command, "StrictHostKeyChecking") == "yes"


@pytest.mark.parametrize("tofu", [False, True])
def test_runtime_inventory_checks_host_keys_against_the_given_file(tmp_path, tofu):
    known = tmp_path / "known hosts"  # a space: ssh would read two file names
    hosts = {"cp1": HostSpec("cp1", "127.0.0.1", 1, "root", str(tmp_path / "key")),
             "cp2": HostSpec("cp2", "127.0.0.1", 1, "root", str(tmp_path / "key"))}
    jump = JumpHost("admin", "127.0.0.2", 2222)
    inventory = tmp_path / "inventory.yaml"
    for options in (SshOptions(known, tofu), SshOptions(known, tofu, jump)):
        inventory.write_text(yaml.safe_dump(runtime_inventory(hosts, options, tmp_path)))
        command = ssh_command(inventory, "cp2", {"ANSIBLE_HOST_KEY_CHECKING": "False"})
        assert first_option(command, "StrictHostKeyChecking") == \
            ("accept-new" if tofu else "yes")
        assert first_option(command, "UserKnownHostsFile") == str(known)
        assert first_option(command, "GlobalKnownHostsFile") == "/dev/null"
        assert first_option(command, "ControlPath").startswith(f"{tmp_path}/")
        proxy = first_option(command, "ProxyCommand")
        if options.jump is None:
            assert proxy is None
        else:  # the jump host's key is checked against the same file, the same way
            argv = shlex.split(proxy)
            assert argv[0] == "ssh" and argv[-1] == "admin@127.0.0.2" and "2222" in argv
            assert first_option(argv, "UserKnownHostsFile") == str(known)
            assert first_option(argv, "StrictHostKeyChecking") == \
                ("accept-new" if tofu else "yes")


@pytest.mark.skipif(not (BIN / "ansible-playbook").exists() and not shutil.which(
    "ansible-playbook"), reason="ansible-core is not installed")
def test_playbook_passes_syntax_check(build):
    exe = BIN / "ansible-playbook" if (BIN / "ansible-playbook").exists() else "ansible-playbook"
    run = subprocess.run([str(exe), "--syntax-check", "site.yml"], cwd=build / "ansible",
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "ansible-lint").exists() and not shutil.which("ansible-lint"),
                    reason="ansible-lint is not installed")
def test_playbook_passes_ansible_lint_production(build):
    exe = BIN / "ansible-lint" if (BIN / "ansible-lint").exists() else "ansible-lint"
    run = subprocess.run([str(exe), "--nocolor", "--offline"], cwd=build / "ansible",
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in run.stdout + run.stderr


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.kf")), ids=lambda p: p.stem)
def test_the_plan_object_shared_by_the_plan_emitter_is_plan_json_read_back(path, tmp_path):
    # ansible and verify take the plan emitter's object instead of reading plan.json again:
    # both must give what reading it gives.
    program, _ = load_program(path)
    if program.cluster is None:
        pytest.skip("no cluster")
    try:
        ctx = run_emitters(program, tmp_path / "state", FIXED_NOW)
    except DiagnosticError:
        pytest.skip("needs what the example names (a bundle)")
    plan, written = ctx.shared["plan"]
    assert plan_of(ctx) is plan and written is dict((a.path, a.content)
                                                    for a in ctx.artifacts)["plan.json"]
    read = Plan.from_json(written.decode())
    assert read == plan and repr(read) == repr(plan)
    assert render(read) == render(plan)
    assert verify.render(ctx.cluster, read, ctx.artifacts) == \
        verify.render(ctx.cluster, plan, ctx.artifacts)
    ctx.shared["plan"] = (plan, written.decode().encode())  # equal, not the file plan.json is
    assert plan_of(ctx) is not plan and plan_of(ctx) == plan  # read from plan.json
