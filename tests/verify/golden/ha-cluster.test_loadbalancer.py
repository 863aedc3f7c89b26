"""kubeforge checks for the API load balancer of cluster ha-lab (generated; do not edit).

Every row starts with the plan phase that establishes it and the node it holds on; rows of
phases after ``--kf-until`` are skipped, rows of nodes missing from ``--hosts`` too.
"""

import datetime as dt
import pytest

FILES = [
    ('loadbalancer', 'cp1', '/etc/haproxy/haproxy.cfg', 0o644, 'root', 'root', '88cee152f277ea5465e21857364f43edfcdaff85469f711ae34e79b9d789f2fc'),
    ('loadbalancer', 'cp1', '/etc/keepalived/keepalived.conf', 0o644, 'root', 'root', 'c68f3fdc7a585a641838a5d258689274b37978e34a26acc86882d5e914803c0b'),
    ('loadbalancer', 'cp1', '/etc/keepalived/check_apiserver.sh', 0o755, 'root', 'root', '8f311bb15742c790749c5bcaf7ad9068fddfe08ad92c26b4e8de4a575df0c737'),
    ('loadbalancer', 'cp2', '/etc/haproxy/haproxy.cfg', 0o644, 'root', 'root', '88cee152f277ea5465e21857364f43edfcdaff85469f711ae34e79b9d789f2fc'),
    ('loadbalancer', 'cp2', '/etc/keepalived/keepalived.conf', 0o644, 'root', 'root', '2cc964c705c0a9a69d55250c5e0fcb1a3dfb785064a7ea8e86bbd0fd5880d661'),
    ('loadbalancer', 'cp2', '/etc/keepalived/check_apiserver.sh', 0o755, 'root', 'root', '8f311bb15742c790749c5bcaf7ad9068fddfe08ad92c26b4e8de4a575df0c737'),
    ('loadbalancer', 'cp3', '/etc/haproxy/haproxy.cfg', 0o644, 'root', 'root', '88cee152f277ea5465e21857364f43edfcdaff85469f711ae34e79b9d789f2fc'),
    ('loadbalancer', 'cp3', '/etc/keepalived/keepalived.conf', 0o644, 'root', 'root', '63cd4f1ced3569e0c8298211b33ca22a8fa226f989a1f785b0fbfe36f5c76389'),
    ('loadbalancer', 'cp3', '/etc/keepalived/check_apiserver.sh', 0o755, 'root', 'root', '8f311bb15742c790749c5bcaf7ad9068fddfe08ad92c26b4e8de4a575df0c737'),
]

SERVICES = [
    ('loadbalancer', 'cp1', 'haproxy', True, True),
    ('loadbalancer', 'cp1', 'keepalived', True, True),
    ('loadbalancer', 'cp2', 'haproxy', True, True),
    ('loadbalancer', 'cp2', 'keepalived', True, True),
    ('loadbalancer', 'cp3', 'haproxy', True, True),
    ('loadbalancer', 'cp3', 'keepalived', True, True),
]

PORTS = [
    ('loadbalancer', 'cp1', 8443),
    ('loadbalancer', 'cp2', 8443),
    ('loadbalancer', 'cp3', 8443),
]

VIP, VIP_PORT, VIP_ENDPOINT = "10.77.0.100", 8443, "10.77.0.100:8443"
LB_NODES = ["cp1", "cp2", "cp3"]


def ids(rows, *columns):
    """Row ids ``node:what``, so reports name the node and the check."""
    return [":".join(str(row[c]) for c in (1, *columns)) for row in rows]


@pytest.mark.parametrize("phase, node, path, mode, owner, group, sha256", FILES,
                         ids=ids(FILES, 2))
def test_file(host_of, sha256_of, phase, node, path, mode, owner, group, sha256):
    f = host_of(node).file(path)
    assert f.is_file, f"{path} is missing"
    assert f.mode == mode, f"{path} has mode {f.mode:04o}, expected {mode:04o}"
    assert (f.user, f.group) == (owner, group), f"{path} is owned by {f.user}:{f.group}"
    assert sha256 is None or f.sha256sum == sha256_of(sha256), \
        f"{path} differs from the compiled file"


@pytest.mark.parametrize("phase, node, name, enabled, running", SERVICES, ids=ids(SERVICES, 2))
def test_service(host_of, phase, node, name, enabled, running):
    service = host_of(node).service(name)
    assert service.is_enabled == enabled, f"{name} is {'not ' if enabled else ''}enabled"
    if running:
        assert service.is_running, f"{name} is not running"


@pytest.mark.parametrize("phase, node, port", PORTS, ids=ids(PORTS, 2))
def test_port_listening(host_of, phase, node, port):
    listening = host_of(node).check_output("ss -Htln | awk '{print $4}'").split()
    assert any(a.rsplit(":", 1)[-1] == str(port) for a in listening), \
        f"nothing listens on TCP port {port}"


@pytest.mark.parametrize("phase, node", [("loadbalancer", n) for n in LB_NODES], ids=LB_NODES)
def test_vip_reachable(host_of, phase, node):
    probe = host_of(node).run(f"timeout 5 bash -c ': </dev/tcp/{VIP}/{VIP_PORT}'")
    assert probe.rc == 0, f"the VIP {VIP_ENDPOINT} does not accept connections"


@pytest.mark.parametrize("phase, node", [("loadbalancer", LB_NODES[0])], ids=LB_NODES[:1])
def test_vip_held_by_one_node(host_of, phase, node):
    holders = [n for n in LB_NODES
               if host_of(n).run(f"ip -o addr show | grep -qF ' {VIP}/'").rc == 0]
    assert len(holders) == 1, f"the VIP {VIP} is held by {holders or 'no node'}"
