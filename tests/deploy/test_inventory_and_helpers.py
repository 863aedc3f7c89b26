"""Inventory forms and host mapping, program inference, jump-host parsing, redaction."""

from __future__ import annotations

import pytest

from kubeforge.compiler.inventory import InventoryProblem, load_inventory
from kubeforge.compiler.plan import Command, Plan, PlanHost, Service, Step, probe
from kubeforge.errors import UsageError
from kubeforge.targets.actions import required_programs
from kubeforge.targets.base import HostSpec, JumpHost
from kubeforge.targets.deploy import map_hosts
from kubeforge.targets.redact import redact


def _fake_pem(kind: str, body: str) -> bytes:
    """A PEM block that only looks like a private key (built here so no file in the
    repository carries a private-key header)."""
    label = " ".join(filter(None, (kind, "PRIVATE", "KEY")))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


INI = """\
# the same cluster as the YAML form
[all:vars]
ansible_user=deploy
ansible_become=true

[control_plane]
cp1 ansible_host=10.0.0.11 ansible_port=2222

[workers]
w1 ansible_host=10.0.0.21 ansible_user=root kubeforge_cpus=8

[nodes:children]
control_plane
workers

[nodes:vars]
ansible_ssh_private_key_file=/keys/id
"""


def test_ini_inventory_with_group_vars_and_children(tmp_path):
    path = tmp_path / "hosts"
    path.write_text(INI)
    hosts = {h.name: h for h in load_inventory(path).hosts}
    assert hosts["cp1"].roles == ("control-plane",) and hosts["w1"].roles == ("worker",)
    cp1, w1 = HostSpec.from_inventory(hosts["cp1"]), HostSpec.from_inventory(hosts["w1"])
    assert (cp1.port, cp1.user, cp1.become, cp1.key_file) == (2222, "deploy", True, "/keys/id")
    assert w1.user == "root" and hosts["w1"].cpus == 8


def test_yaml_group_vars_inner_groups_win_and_host_vars_win(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text("all:\n  vars: {ansible_user: a, ansible_port: 2200}\n  children:\n"
                    "    etcd:\n      vars: {ansible_user: b}\n      hosts:\n"
                    "        e1: {ansible_host: 10.0.0.1}\n"
                    "        e2: {ansible_host: 10.0.0.2, ansible_user: c}\n")
    hosts = {h.name: h.settings() for h in load_inventory(path).hosts}
    assert hosts["e1"]["user"] == "b" and hosts["e2"]["user"] == "c"
    assert hosts["e1"]["port"] == 2200


@pytest.mark.parametrize("text,message", [
    ("[workers]\nw1 ansible_host=10.0.0.1 ansible_usr=x\n", "unknown variable `ansible_usr`"),
    ("[all:vars]\nansible_becom=true\n[workers]\nw1 ansible_host=10.0.0.1\n",
     "unknown variable `ansible_becom` for host `w1`"),
    ("all:\n  vars: {kubeforge_cpu: 2}\n  hosts: {w1: {ansible_host: 10.0.0.1}}\n",
     "unknown variable `kubeforge_cpu`"),
])
def test_unknown_keys_are_errors(tmp_path, text, message):
    path = tmp_path / ("inv.yaml" if text.startswith("all") else "hosts")
    path.write_text(text)
    with pytest.raises(InventoryProblem, match=message):
        load_inventory(path)


def _plan() -> Plan:
    step = Step("cp1/preflight/root", "cp1", "preflight", Command(shell="true"))
    return Plan("c", (PlanHost("cp1", "10.0.0.11", ("control-plane",)),), (step,))


def test_inventory_must_match_the_cluster(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("[control_plane]\ncp1 ansible_host=10.0.0.11\n[workers]\n"
                    "w9 ansible_host=10.0.0.99\n")
    with pytest.raises(UsageError, match=r"host\(s\) w9 are not nodes of cluster c"):
        map_hosts(_plan(), path)
    path.write_text("[workers]\nw1 ansible_host=10.0.0.21\n")
    with pytest.raises(UsageError, match=r"no inventory host for node\(s\) cp1"):
        map_hosts(_plan(), path)


def test_an_extra_host_an_earlier_apply_set_up_is_one_to_remove(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("[control_plane]\ncp1 ansible_host=10.0.0.11\n[workers]\n"
                    "w9 ansible_host=10.0.0.99\n")
    hosts, former = map_hosts(_plan(), path, frozenset({"cp1", "w9"}))
    assert list(hosts) == ["cp1"] and former["w9"].address == "10.0.0.99"


def _cmd(**kw) -> Step:
    check = kw.pop("check", None)
    return Step("h/p/s", "h", "preflight", Command(**kw), **({"check": check} if check else {}))


@pytest.mark.parametrize("step,programs", [
    (_cmd(argv=("kubeadm", "init")), ("kubeadm",)),
    (_cmd(shell="DEBIAN_FRONTEND=noninteractive apt-get install -y kubeadm kubelet"), ()),
    (_cmd(argv=("timeout", "300", "sh", "-c", "until kubectl get --raw=/readyz; do sleep 5; done")),
     ("kubectl",)),
    (_cmd(shell="ss -Htlnp | grep -vE '(kube-apiserver|etcd)'"), ()),
    (_cmd(argv=("true",), check=probe('[ "$(kubectl get node x)" = y ]')), ("kubectl",)),
    (Step("h/p/k", "h", "runtime", Service("kubelet")), ("kubelet",)),
    (Step("h/p/e", "h", "etcd", Command(argv=("x",)), requires=("crictl",)), ("crictl",)),
])
def test_required_programs(step, programs):
    assert required_programs(step) == programs


def test_jump_host_parsing():
    assert JumpHost.parse("ops@bastion:2222") == JumpHost("ops", "bastion", 2222)
    assert JumpHost.parse("10.0.0.1") == JumpHost("root", "10.0.0.1", 22)
    assert JumpHost.parse("u@[fd00::1]:2200") == JumpHost("u", "fd00::1", 2200)


def test_redaction():
    text = ("kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef\n"
            + _fake_pem("", "MIGH").decode() + "password: hunter2")
    out = redact(text)
    assert "abcdef.0123456789abcdef" not in out and "MIGH" not in out and "hunter2" not in out
    assert "kubeadm join 10.0.0.1:6443" in out
