"""Every semantic check: a bad input, the code it must get, and where it points."""

from __future__ import annotations

import pytest

from kubeforge.compiler.lower import load_program
from kubeforge.dsl.diagnostics import DiagnosticError


def ns(body: str, name: str = "shop") -> str:
    return f"namespace {name} {{\n{body}\n}}\n"


def web(body: str = "", kind: str = "deployment", name: str = "web") -> str:
    return f'{kind} {name} {{\n  image "nginx"\n{body}\n}}\n'


HA = """cluster lab {
  kubernetes "1.37.2"
  endpoint "192.168.56.100:8443"
  loadbalancer keepalived-haproxy { vip 192.168.56.100  interface "eth0" }
  node cp1 { address 192.168.56.11  role control-plane }
  node cp2 { address 192.168.56.12  role control-plane }
  node cp3 { address 192.168.56.13  role control-plane }
  node w1 { address 192.168.56.21  role worker }
%s}
"""

#: (case id, source, code, a fragment of the message, line the diagnostic points at or None)
CASES = [
    ("dup-workload", ns(web() + web()), "E100", "workload `web` is declared twice", None),
    ("dup-service", ns(web() + "service web -> web port 80\nservice web -> web port 81"),
     "E100", "service `web` is declared twice", None),
    ("dup-config-key", ns('config c { a = "1"  a = "2" }'), "E100", "config key `a`", None),
    ("dup-singleton", ns(web("  replicas 1\n  replicas 2")), "E101", "`replicas` is given twice", None),
    ("unknown-service-target", ns(web() + "service web -> wbe port 80"), "E102",
     "unknown workload `wbe`", None),
    ("unknown-config", ns(web("  env from config settings")), "E102", "unknown config `settings`", None),
    ("unknown-secret-key", ns('secret db from env "PW"\n' + web("  env X from secret db key pw")),
     "E102", "secret `db` has no key `pw`", None),
    ("unknown-claim", ns(web('  mount d claim data at "/d"')), "E102", "unknown pvc `data`", None),
    ("unknown-template", ns('deployment web extends bse { image "x" }\ntemplate base { replicas 1 }'),
     "E102", "unknown template `bse`", None),
    ("unknown-role", "user alice { bind deployr in shop }\n" + ns("role deployer { allow get on pods }"),
     "E102", "unknown role `deployr`", None),
    ("unknown-sa", ns(web("  service_account builder")), "E102", "unknown service account", None),
    ("unknown-ingress-service", ns('ingress i { route "a.example.com" "/" -> nope port 80 }'),
     "E102", "unknown service `nope`", None),
    ("unknown-netpol-workload", ns("networkpolicy p { pods db }"), "E102", "unknown workload `db`", None),
    ("bad-dns-name", ns(web(name="Web_1")), "E103", "not a valid DNS-1123", None),
    ("bad-namespace-name", ns("", name="Shop"), "E103", "namespace name `Shop`", None),
    ("bad-enum", ns(web() + "service web -> web type NodePrt port 80"), "E104",
     "unknown service type `NodePrt`", None),
    ("bad-verb", "role r in shop { allow gett on pods }\n" + ns(""), "E104", "unknown verb `gett`", None),
    ("bad-resource", "role r in shop { allow get on deploymnets }\n" + ns(""), "E104",
     "unknown resource `deploymnets`", None),
    ("bad-quantity", ns(web("  resources { cpu 100x }")), "E105", "not a Kubernetes quantity", None),
    ("millibytes", ns(web("  resources { memory 100m }")), "E105", "millibytes", None),
    ("bad-label", ns(web('  labels { "bad key!" = "x" }')), "E105", "not a valid label key", None),
    ("bad-duration", ns(web('  probe http "/" port 80 { period 10x }')), "E106", "not a duration", None),
    ("bad-port", ns(web("  port 70000")), "E107", "out of range", None),
    ("dup-container-port", ns(web("  port 80\n  port 80")), "E107", "declared twice", None),
    ("multi-port-unnamed", ns(web("  port 80\n  port 81") + "service web -> web port 80 port 81"),
     "E107", "each needs a name", None),
    ("nodeport-range", ns(web("  port 80") + "service web -> web type NodePort port 80 nodeport 80"),
     "E107", "outside 30000-32767", None),
    ("ingress-port", ns(web("  port 80") + 'service web -> web port 80\n'
                        'ingress i { route "a.example.com" "/" -> web port 8080 }'),
     "E107", "has no port `8080`", None),
    ("probe-port-name", ns(web('  port http 80\n  probe http "/" port htp')), "E108",
     "probe port `htp`", None),
    ("probe-path", ns(web('  probe http "healthz" port 80')), "E108", "must start with /", None),
    ("hpa-range", ns(web("  autoscale 10..3")), "E109", "minimum 10 is above its maximum 3", None),
    ("hpa-zero", ns(web("  autoscale 0..3")), "E109", "at least 1", None),
    ("cidr-host-bits", 'cluster c { kubernetes "1.37.2" network { pods 10.244.0.1/16 }'
     ' node a { address 192.168.1.1 role control-plane } }', "E110", "host bits", None),
    ("cidr-overlap", 'cluster c { kubernetes "1.37.2" network { pods 10.0.0.0/8 services 10.96.0.0/12 }'
     ' node a { address 192.168.1.1 role control-plane } }', "E110", "overlaps", None),
    ("needs-endpoint", 'cluster c { kubernetes "1.37.2" node a { address 10.1.0.1 role control-plane }'
     ' node b { address 10.1.0.2 role control-plane } node d { address 10.1.0.3 role control-plane } }',
     "E111", "needs an endpoint", None),
    ("etcd-external-empty", 'cluster c { kubernetes "1.37.2" etcd external node a { address '
     '10.1.0.1 role control-plane } }', "E112", "needs nodes with role etcd", None),
    ("version", 'cluster c { kubernetes "1.27.3" node a { address 10.1.0.1 role control-plane } }',
     "E113", "not supported", None),
    ("selector-mismatch", ns(web('  selector { app = "other" }')), "E114", "does not match its pods", None),
    ("service-selector", ns(web() + 'service web -> web port 80 { selector { tier = "x" } }'),
     "E114", "matches no pod", None),
    ("missing-image", ns("deployment web { replicas 1 }"), "E115", "needs an image", None),
    ("cronjob-schedule", ns(web(kind="cronjob")), "E115", "needs a schedule", None),
    ("replicas-in-daemonset", ns(web("  replicas 2", kind="daemonset")), "E116",
     "`replicas` is not valid in a daemonset", None),
    ("volume-in-deployment", ns(web('  volume data 1Gi at "/d"')), "E116", "not valid in a deployment", None),
    ("missing-file", ns('config c { a from file "missing.txt" }'), "E117", "does not exist", None),
    ("template-cycle", ns('template a extends b { image "x" }\ntemplate b extends a { replicas 1 }\n'
                          "deployment web extends a { }"), "E119", "extends itself", None),
    ("vip-outside", HA.replace("vip 192.168.56.100", "vip 10.9.9.9").replace(
        '"192.168.56.100:8443"', '"10.9.9.9:8443"') % "", "E120", "outside the nodes' subnet", None),
    ("dup-node", HA % "  node cp1 { address 192.168.56.31  role worker }\n", "E120",
     "declared twice", None),
    ("dup-address", HA % "  node w2 { address 192.168.56.21  role worker }\n", "E120",
     "share the address", None),
    ("endpoint-not-vip", HA.replace('"192.168.56.100:8443"', '"192.168.56.101:8443"') % "", "E121",
     "is not the load balancer VIP", None),
    ("endpoint-port", HA.replace('"192.168.56.100:8443"', '"192.168.56.100:6443"') % "", "E121",
     "is not the load balancer port", None),
]

SINGLE = 'cluster lab {\n  kubernetes "1.37.2"\n  node cp1 { address 192.168.56.11  role control-plane }\n}\n'


@pytest.mark.parametrize("case,source,code,fragment,line", CASES, ids=[c[0] for c in CASES])
def test_check(tmp_path, case, source, code, fragment, line):
    text = source if source.startswith("cluster") else SINGLE + source
    path = tmp_path / "main.kf"
    path.write_text(text)
    with pytest.raises(DiagnosticError) as info:
        load_program(path)
    found = [d for d in info.value.diagnostics if d.code == code]
    assert found, f"expected {code}, got {[(d.code, d.message) for d in info.value.diagnostics]}"
    assert any(fragment in d.message for d in found), [d.message for d in found]
    for d in found:
        assert d.span.file == str(path) and d.span.line >= 1
    rendered = info.value.render()
    assert f"error[{code}]" in rendered and "^" in rendered


def test_every_code_is_tested():
    codes = {c[2] for c in CASES}
    expected = {f"E{n}" for n in range(100, 122) if n != 118}
    assert expected <= codes, sorted(expected - codes)


def test_all_errors_are_reported_at_once(tmp_path):
    path = tmp_path / "main.kf"
    path.write_text(SINGLE + ns(web("  replicas 1\n  replicas 2\n  port 99999") +
                                "service x -> nope port 80"))
    with pytest.raises(DiagnosticError) as info:
        load_program(path)
    assert {d.code for d in info.value.diagnostics} >= {"E101", "E107", "E102"}
    lines = [d.span.line for d in info.value.diagnostics]
    assert lines == sorted(lines)


def test_did_you_mean_for_reference(tmp_path):
    path = tmp_path / "main.kf"
    path.write_text(SINGLE + ns(web() + "service web -> wbe port 80"))
    with pytest.raises(DiagnosticError) as info:
        load_program(path)
    assert info.value.diagnostics[0].hint == "did you mean `web`?"


def test_warnings_do_not_fail_but_strict_does(tmp_path):
    path = tmp_path / "main.kf"
    path.write_text(SINGLE + ns(web("  replicas 1\n  autoscale 2..4")))
    program, _ = load_program(path)
    assert [w.code for w in program.warnings if w.code.startswith("W1")] == ["W105"]
    with pytest.raises(DiagnosticError):
        load_program(path, strict=True)


def test_an_even_etcd_is_a_warning_on_the_way_from_three_to_five(tmp_path):
    path = tmp_path / "main.kf"
    nodes = " ".join(f"node cp{i} {{ address 10.1.0.{i} role control-plane }}" for i in range(1, 5))
    path.write_text(f'cluster c {{ kubernetes "1.37.2" endpoint "api.c:6443" {nodes} }}')
    program, _ = load_program(path)
    (w,) = [w for w in program.warnings if w.code == "W112"]
    assert w.message == ("etcd would have 4 members: an even count tolerates no more failed "
                         "members than 3 do")
    assert w.hint == "fine on the way to 5; to stay, use 3 or 5 control-plane nodes"
    with pytest.raises(DiagnosticError):
        load_program(path, strict=True)


def test_inventory_unknown_key(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  children:\n    control_plane:\n      hosts:\n        cp1:\n"
                   "          ansible_host: 10.0.0.1\n          ansible_usr: root\n")
    path = tmp_path / "main.kf"
    path.write_text('cluster c {\n  kubernetes "1.37.2"\n  nodes from "inv.yaml"\n}\n')
    with pytest.raises(DiagnosticError) as info:
        load_program(path)
    d = info.value.diagnostics[0]
    assert d.code == "E118" and "ansible_usr" in d.message and ":7:" in d.message
    assert d.hint == "did you mean `ansible_user`?"


def test_inventory_nodes(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  children:\n    control_plane:\n      hosts:\n        cp1:\n"
                   "          ansible_host: 10.0.0.1\n    workers:\n      hosts:\n"
                   "        w1: {ansible_host: 10.0.0.21, ansible_user: debian}\n")
    path = tmp_path / "main.kf"
    path.write_text('cluster c {\n  kubernetes "1.37.2"\n  nodes from "inv.yaml"\n}\n')
    program, _ = load_program(path)
    nodes = {n.name: (str(n.address), n.roles, n.ssh_user) for n in program.cluster.nodes}
    assert nodes == {"cp1": ("10.0.0.1", ("control-plane",), None),
                     "w1": ("10.0.0.21", ("worker",), "debian")}
