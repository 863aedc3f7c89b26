"""One case per grammar rule, and a check that the cases cover the whole grammar."""

from __future__ import annotations

import pytest
from lark import Tree

from kubeforge.dsl.ast import Node
from kubeforge.dsl.diagnostics import DiagnosticError
from kubeforge.dsl.parser import lark_parser, parse, parse_tree


def ns(body: str) -> str:
    return f"namespace shop {{\n{body}\n}}\n"


def wl(body: str, kind: str = "deployment") -> str:
    return ns(f'{kind} web {{\n image "nginx"\n{body}\n}}')


#: rule -> a source text in which that rule occurs.
CASES: dict[str, str] = {
    "import_stmt": 'import "other.kf"',
    "cluster": "cluster lab { }",
    "kubernetes": 'cluster lab { kubernetes "1.37.2" }',
    "endpoint": 'cluster lab { endpoint "api.lab:6443" }',
    "network": "cluster lab { network { } }",
    "pods_cidr": "cluster lab { network { pods 10.244.0.0/16 } }",
    "services_cidr": "cluster lab { network { services 10.96.0.0/12 } }",
    "nodes_cidr": "cluster lab { network { nodes 192.168.56.0/24 } }",
    "domain": 'cluster lab { network { domain "cluster.local" } }',
    "runtime": "cluster lab { runtime containerd }",
    "cni": "cluster lab { cni calico }",
    "cni_version": 'cluster lab { cni calico version "3.28" }',
    "etcd": "cluster lab { etcd external }",
    "loadbalancer": "cluster lab { loadbalancer external }",
    "vip": "cluster lab { loadbalancer kube-vip { vip 10.0.0.100 } }",
    "interface": 'cluster lab { loadbalancer kube-vip { interface "eth0" } }',
    "lb_port": "cluster lab { loadbalancer keepalived-haproxy { port 8443 } }",
    "router_id": "cluster lab { loadbalancer keepalived-haproxy { router_id 51 } }",
    "lb_mode": "cluster lab { loadbalancer keepalived-haproxy { as static-pods } }",
    "lb_image": 'cluster lab { loadbalancer kube-vip { image "ghcr.io/kube-vip/kube-vip:v0.8.0" } }',
    "pki": "cluster lab { pki { } }",
    "algorithm": "cluster lab { pki { algorithm ecdsa-p256 } }",
    "ca_validity": "cluster lab { pki { ca_validity 10y } }",
    "cert_validity": "cluster lab { pki { cert_validity 365d } }",
    "san": 'cluster lab { pki { san "api.example.com" 10.0.0.5 } }',
    "nodes_from": 'cluster lab { nodes from "inventory.yaml" }',
    "node": "cluster lab { node cp1 { } }",
    "address": "cluster lab { node cp1 { address 10.0.0.11 } }",
    "node_role": "cluster lab { node cp1 { role control-plane etcd } }",
    "node_cpus": "cluster lab { node cp1 { cpus 2 } }",
    "node_memory": "cluster lab { node cp1 { memory 4Gi } }",
    "node_user": 'cluster lab { node cp1 { user "debian" } }',
    "taint": 'cluster lab { node cp1 { taint "dedicated" = "db" effect NoSchedule } }',
    "install": "cluster lab { install preinstalled }",
    "install_path": 'cluster lab { install bundle path "bundle/" }',
    "token_ttl": "cluster lab { token_ttl 24h }",
    "feature_gates": "cluster lab { feature_gates { SomeGate = true } }",
    "os": "cluster lab { os ubuntu2404 }",
    "cgroups": "cluster lab { cgroups v1 }",
    "hosts_kind": "cluster lab { hosts containers }",
    "backup": 'cluster lab { backup { schedule "daily" } }',
    "backup_keep": "cluster lab { backup { keep 7 } }",
    "backup_dir": 'cluster lab { backup { dir "/var/backups/etcd" } }',
    "addon": "cluster lab { addon storage local-path }",
    "addon_path": 'cluster lab { addon storage local-path { path "/opt/lp" } }',
    "addon_version": 'cluster lab { addon storage local-path { version "v0.0.30" } }',
    "namespace": ns(""),
    "config": ns('config app { LOG_LEVEL = "debug"  workers = 4 }'),
    "entry": ns('config app { "app.properties" = "a=b" }'),
    "entry_file": ns('config app { nginx.conf from file "nginx.conf" }'),
    "secret": ns('secret db from env "DB_PASSWORD"'),
    "secret_type": ns('secret tls-cert type tls { tls.crt from file "a.crt"  tls.key from file "a.key" }'),
    "secret_source": ns('secret db from file "password.txt"'),
    "secret_entry": ns('secret db { password from env "PW" }'),
    "quota": ns('quota { pods = "20" }'),
    "deployment": wl(""),
    "statefulset": wl("", "statefulset"),
    "daemonset": wl("", "daemonset"),
    "job": wl("", "job"),
    "cronjob": wl('schedule "*/5 * * * *"', "cronjob"),
    "template": 'template base { image "nginx" }',
    "extends": ns('deployment web extends base { }'),
    "container_name": wl("container php-redis"),
    "image": wl(""),
    "replicas": wl("replicas 3"),
    "command": wl('command "sh" "-c" "sleep 1"'),
    "args": wl('args "--verbose"'),
    "working_dir": wl('workdir "/app"'),
    "env": wl('env MODE = "prod"'),
    "env_ref": wl("env PW from secret db key password"),
    "env_field": wl('env NODE from field "spec.nodeName"'),
    "env_from": wl("env from config app"),
    "port": wl("port 8080"),
    "named_port": wl("port http 8080"),
    "port_proto": wl("port dns 53 udp"),
    "resources": wl("resources { }"),
    "res_cpu": wl("resources { cpu 250m }"),
    "res_memory": wl("resources { memory 64Mi }"),
    "res_storage": wl("resources { ephemeral 1Gi }"),
    "res_limits": wl("resources { limits { cpu 1 } }"),
    "probe": wl('probe http "/" port 80'),
    "probe_kind": wl("liveness tcp port 80"),
    "probe_http": wl('readiness http "/ready" port http'),
    "probe_tcp": wl("startup tcp port 5432"),
    "probe_exec": wl('liveness exec "cat" "/tmp/healthy"'),
    "probe_grpc": wl("liveness grpc port 9090"),
    "probe_body": wl('probe http "/" port 80 { }'),
    "probe_delay": wl('probe http "/" port 80 { delay 5s }'),
    "probe_period": wl('probe http "/" port 80 { period 10s }'),
    "probe_timeout": wl('probe http "/" port 80 { timeout 1s }'),
    "probe_failure": wl('probe http "/" port 80 { failures 3 }'),
    "probe_success": wl('readiness http "/" port 80 { successes 2 }'),
    "rollout": wl("rollout { }"),
    "max_surge": wl("rollout { max_surge 25% }"),
    "max_unavailable": wl("rollout { max_unavailable 0 }"),
    "history": wl("rollout { history 10 }"),
    "strategy": wl("rollout { strategy Recreate }"),
    "partition": wl("rollout { partition 1 }", "statefulset"),
    "min_ready": wl("rollout { min_ready 10s }"),
    "autoscale": wl("autoscale 2..10"),
    "autoscale_metric": wl("autoscale 2..10 cpu 70% memory 80%"),
    "volume": wl('volume data 1Gi at "/data"', "statefulset"),
    "volume_class": wl('volume data 1Gi at "/data" class "fast"', "statefulset"),
    "volume_access": wl('volume data 1Gi at "/data" access rwo', "statefulset"),
    "mount": wl('mount conf config app at "/etc/app"'),
    "mount_config": wl('mount conf config app at "/etc/app"'),
    "mount_secret": wl('mount creds secret db at "/etc/creds" readonly'),
    "mount_claim": wl('mount data claim data at "/data"'),
    "mount_empty": wl('mount tmp empty 1Gi at "/tmp"'),
    "mount_host": wl('mount proc host "/proc" at "/host/proc"'),
    "mount_readonly": wl('mount creds secret db at "/etc/creds" readonly'),
    "labels": wl('labels { tier = "web" }'),
    "annotations": wl('annotations { "example.com/owner" = "shop" }'),
    "selector": wl('selector { app = "web" }'),
    "node_selector": wl('node_selector { disktype = "ssd" }'),
    "kv_body": wl('labels { a = "b" }'),
    "toleration": wl('tolerate "dedicated"'),
    "toleration_value": wl('tolerate "dedicated" = "db" effect NoSchedule'),
    "toleration_effect": wl('tolerate "node-role.kubernetes.io/control-plane" effect NoSchedule'),
    "spread": wl("spread hard"),
    "spread_key": wl('spread soft by "topology.kubernetes.io/zone"'),
    "security": wl("security { }"),
    "run_as_user": wl("security { run_as_user 1000 }"),
    "run_as_group": wl("security { run_as_group 1000 }"),
    "fs_group": wl("security { fs_group 2000 }"),
    "non_root": wl("security { run_as_non_root true }"),
    "read_only_root": wl("security { read_only_root true }"),
    "privileged": wl("security { privileged false }"),
    "privilege_escalation": wl("security { allow_privilege_escalation false }"),
    "caps_add": wl("security { add_caps NET_ADMIN }"),
    "caps_drop": wl("security { drop_caps ALL }"),
    "seccomp": wl("security { seccomp RuntimeDefault }"),
    "schedule": wl('schedule "0 3 * * *"', "cronjob"),
    "service_account": wl("service_account builder"),
    "automount_token": wl("automount_token false"),
    "pull_policy": wl("pull Always"),
    "restart": wl("restart Never", "job"),
    "completions": wl("completions 5", "job"),
    "parallelism": wl("parallelism 2", "job"),
    "backoff_limit": wl("backoff_limit 4", "job"),
    "ttl_after": wl("ttl_after_finished 1h", "job"),
    "concurrency": wl("concurrency Forbid", "cronjob"),
    "grace": wl("grace 30s"),
    "disruption": wl("disruption min_available 50%"),
    "sidecar": wl('sidecar log { image "busybox" }'),
    "init": wl('init setup { image "busybox"  command "true" }'),
    "container_body": wl('sidecar log { image "busybox" }'),
    "service": ns("service web -> web port 80"),
    "service_block": ns('service web -> web port 80 { labels { a = "b" } }'),
    "svc_type": ns("service web -> web type LoadBalancer port 80"),
    "svc_port": ns("service web -> web port 80"),
    "svc_port_name": ns("service web -> web port http 80 port https 443"),
    "svc_target": ns("service web -> web port 80 to 8080"),
    "node_port": ns("service web -> web type NodePort port 80 nodeport 30080"),
    "headless": ns("service db -> db headless port 5432"),
    "session_affinity": ns("service web -> web port 80 { session_affinity ClientIP }"),
    "traffic_policy": ns("service web -> web type NodePort port 80 { external_traffic Local }"),
    "pvc": ns("pvc data 5Gi"),
    "storageclass": 'storageclass fast provisioner "rancher.io/local-path"',
    "reclaim": 'storageclass fast provisioner "x" { reclaim Retain }',
    "binding": 'storageclass fast provisioner "x" { binding WaitForFirstConsumer }',
    "is_default": 'storageclass fast provisioner "x" { default true }',
    "expansion": 'storageclass fast provisioner "x" { expansion true }',
    "parameters": 'storageclass fast provisioner "x" { parameters { type = "ssd" } }',
    "ingress": ns('ingress web { route "" "/" -> web port 80 }'),
    "ingress_class": ns('ingress web { class "nginx" }'),
    "route": ns('ingress web { route "a.example.com" "/" -> web port http }'),
    "route_match": ns('ingress web { route "a.example.com" "/api" match Exact -> api port 80 }'),
    "ingress_tls": ns('ingress web { tls "a.example.com" secret a-tls }'),
    "networkpolicy": ns("networkpolicy p { }"),
    "np_pods": ns("networkpolicy p { pods db }"),
    "np_allow": ns("networkpolicy p { allow from web }"),
    "np_direction": ns("networkpolicy p { allow to db }"),
    "np_workload": ns("networkpolicy p { allow from web }"),
    "np_namespace": ns("networkpolicy p { allow from namespace monitoring }"),
    "np_cidr": ns("networkpolicy p { allow to ip 10.0.0.0/8 }"),
    "np_any": ns("networkpolicy p { allow from anywhere port 80 }"),
    "np_port": ns("networkpolicy p { allow from web port 5432 tcp }"),
    "np_deny": ns("networkpolicy p { deny egress }"),
    "role": "role reader in shop { allow get on pods }",
    "clusterrole": 'clusterrole probe { allow get on url "/healthz" }',
    "role_scope": "role reader in shop { }",
    "rbac_body": "clusterrole c { }",
    "rule": 'role r in shop { allow get list on pods pods/log * group "" names "a" }',
    "url_rule": 'clusterrole c { allow get on url "/metrics" "/healthz" }',
    "rule_verbs": "role r in shop { allow * on pods }",
    "rule_resources": "role r in shop { allow get on deployments }",
    "rule_group": 'role r in shop { allow get on widgets group "example.com" }',
    "rule_names": 'role r in shop { allow get on configmaps names "app-config" }',
    "aggregate_to": "clusterrole c { aggregate_to edit view }",
    "aggregate_from": 'clusterrole c { aggregate_from { "example.com/aggregate" = "true" } }',
    "user": "user alice { }",
    "group": "group ops { bind view }",
    "serviceaccount": "serviceaccount ci in shop",
    "subject_body": "user alice { }",
    "member_of": "user alice { groups dev ops }",
    "bind": "user alice { bind edit in shop }",
    "token": "token ci { ttl 24h  bind view in shop }",
    "ttl": "token ci { ttl 90m }",
    "description": 'token ci { description "CI pipeline"  ttl 1h }',
    # -- round 2: selectors, placement, hooks, metadata, patches, identities
    "aff_by": wl('affinity pods { app = "cache" } by "kubernetes.io/hostname"'),
    "aff_namespaces": wl('affinity pods cache namespaces other more'),
    "aff_nodes": wl('affinity nodes { disktype in "ssd" "nvme" } weight 10'),
    "aff_pods": wl("anti_affinity pods web"),
    "aff_weight": wl('anti_affinity pods { app = "web" } weight 100'),
    "affinity": wl('affinity pods cache namespaces { team = "a" }'),
    "anti_affinity": wl("anti_affinity pods web"),
    "app_label": wl('app_label "app.kubernetes.io/name"'),
    "args_file": wl('args "-c" from file "run.sh"'),
    "bind_cluster": "serviceaccount ci in shop { bind view cluster-wide }",
    "command_file": wl('command "sh" "-c" from file "run.sh"'),
    "from_file": wl('command from file "run.sh"'),
    "fs_group_change": wl("pod_security { fs_group_change OnRootMismatch }"),
    "hook_sleep": wl("lifecycle { pre_stop sleep 5s }"),
    "lifecycle": wl('lifecycle { pre_stop exec "pg_ctl" "stop"  post_start http "/warm" port 80 }'),
    "match": ns('networkpolicy p { pods { app = "db" } }'),
    "match_absent": wl("selector { legacy not exists }"),
    "match_exists": wl("selector { app exists }"),
    "match_in": wl('selector { tier in "web" "api" }'),
    "match_notin": wl('selector { env not in "dev" }'),
    "mount_subpath": wl('mount data at "/var/lib/pg" subpath "pgdata"', "statefulset"),
    "mount_subpath_expr": wl('mount logs empty at "/logs" subpath_expr "$(POD_NAME)"'),
    "np_except": ns("networkpolicy p { allow to ip 10.0.0.0/8 except 10.1.0.0/16 10.2.0.0/16 }"),
    "np_in": ns("networkpolicy p { allow from web in namespace other }"),
    "np_in_match": ns('networkpolicy p { allow from { app = "prom" } in namespaces { team = "mon" } }'),
    "np_match": ns('networkpolicy p { allow from { app = "prom" } }'),
    "np_namespaces": ns('networkpolicy p { allow from namespaces { team = "mon" } }'),
    "object_annotations": wl('object_annotations { "example.com/owner" = "ops" }'),
    "object_labels": wl('object_labels { "helm.sh/chart" = "web-1.0" }'),
    "object_name": wl("autoscale 2..5 { name web-hpa }"),
    "patch": wl('patch """\n  spec:\n    minReadySeconds: 5\n"""'),
    "patch_file": wl('patch json from file "p.yaml"'),
    "patch_json": wl('patch json """- {op: add, path: /spec/paused, value: true}"""'),
    "pod": ns('pod debug { image "busybox"  restart Never }'),
    "pod_annotations": wl('pod_annotations { "prometheus.io/scrape" = "true" }'),
    "pod_labels": wl('pod_labels { version = "v1" }'),
    "pod_management": wl("pod_management Parallel", "statefulset"),
    "pod_security": wl("pod_security { run_as_user 1000  fs_group 2000 }"),
    "post_start": wl('lifecycle { post_start exec "true" }'),
    "pre_stop": wl('lifecycle { pre_stop http "/drain" port 8080 }'),
    "supplemental_groups": wl("pod_security { supplemental_groups 4000 5000 }"),
    "topology_spread": wl('topology_spread by "topology.kubernetes.io/zone"'),
    "ts_min_domains": wl('topology_spread by "zone" min_domains 3'),
    "ts_mode": wl('topology_spread by "zone" soft'),
    "ts_pods": wl('topology_spread by "zone" pods { app = "web" }'),
    "ts_skew": wl('topology_spread by "zone" max_skew 2'),
}


def _kinds(tree) -> set[str]:
    found = set()
    for sub in tree.iter_subtrees():
        found.add(str(sub.data))
    return found


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_parses(rule):
    tree = parse_tree(CASES[rule], "case.kf", keep_all_tokens=True)
    assert rule in _kinds(tree), f"{rule} not produced by {CASES[rule]!r}"
    module = parse(CASES[rule], "case.kf")
    assert all(isinstance(item, Node) for item in module.items)


def test_cases_cover_every_rule():
    rules = {str(r.alias or r.origin.name) for r in lark_parser(True).rules}
    # Inlined (_x) rules and bodies are exercised by the statements that hold them.
    named = {r for r in rules if not r.startswith("_") and r != "start" and not r.endswith("_body")}
    assert len(named) > 150
    missing = sorted(named - set(CASES))
    assert missing == [], f"grammar rules without a test case: {missing}"


def test_spans_point_at_the_statement():
    module = parse('cluster lab {\n  kubernetes "1.37.2"\n}\n', "x.kf")
    stmt = module.items[0].body[0]
    assert (stmt.span.file, stmt.span.line, stmt.span.col) == ("x.kf", 2, 3)
    assert stmt.value().span.col == 14


@pytest.mark.parametrize("text,kind,expected", [
    ("cluster a { network { pods 10.244.0.0/16 } }", "CIDR", "10.244.0.0/16"),
    ("cluster a { loadbalancer kube-vip { vip 10.0.0.1 } }", "IP", "10.0.0.1"),
    ("cluster a { pki { ca_validity 10y } }", "UNITNUM", "10y"),
    (wl("autoscale 2..9"), "RANGE", "2..9"),
    (wl("rollout { max_surge 25% }"), "PERCENT", "25%"),
    (wl("resources { cpu 0.5 }"), "DECIMAL", "0.5"),
    (wl("replicas 3"), "INT", "3"),
    (wl("automount_token false"), "BOOL", "false"),
    ("role r in a { allow get on pods/log }", "SUBRESOURCE", "pods/log"),
])
def test_literals(text, kind, expected):
    tree = parse_tree(text, "x.kf")
    tokens = [t for t in tree.scan_values(lambda v: True)]
    assert any(t.type == kind and str(t) == expected for t in tokens)


def test_string_escapes():
    module = parse(wl(r'command "echo" "a \"quoted\" word\n"'), "x.kf")
    workload = module.items[0].body[0]
    command = next(s for s in workload.body if s.kind == "command")
    assert command.values()[1].py == 'a "quoted" word\n'


def test_comments_are_ignored():
    module = parse("# top\ncluster a { # here\n kubernetes \"1.37.2\" # there\n}\n", "x.kf")
    assert [s.kind for s in module.items[0].body] == ["kubernetes"]


def test_keyword_can_be_a_name_where_no_keyword_fits():
    # `image` and `port` are keywords in a workload body but fine as object names.
    module = parse(ns('deployment image { image "x" }\nservice port -> image port 80'), "x.kf")
    names = [s.value().py for s in module.items[0].body]
    assert names == ["image", "port"]


def test_syntax_error_is_a_diagnostic_not_a_lark_error():
    with pytest.raises(DiagnosticError) as info:
        parse("cluster {", "x.kf")
    assert info.value.diagnostics[0].span.line == 1


def test_trees_are_lark_trees():
    assert isinstance(parse_tree("", "x.kf"), Tree)
