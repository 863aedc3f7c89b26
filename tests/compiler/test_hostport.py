"""host:port parsing and printing: brackets for IPv6, ports checked, names lower-cased."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeforge.compiler import hostport
from kubeforge.targets.base import JumpHost

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=4).map(".".join).filter(
    lambda n: not n.replace(".", "").isdigit())
ports = st.integers(1, 65535)


@given(st.one_of(addresses.map(str), names), ports)
def test_join_then_parse_is_the_identity(host, port):
    assert hostport.parse(hostport.join(host, port)) == (hostport.normalize_host(host), port)


@given(st.ip_addresses(v=6), ports)
def test_an_ipv6_host_with_a_port_is_bracketed(address, port):
    text = hostport.join(address, port)
    assert text == f"[{address}]:{port}"
    assert hostport.https_url(address, port) == f"https://[{address}]:{port}"


@given(addresses)
def test_a_bare_address_is_a_host_without_port(address):
    assert hostport.parse(str(address)) == (str(address), None)


@pytest.mark.parametrize("text, expected", [
    ("API.Example.COM:6443", ("api.example.com", 6443)),
    ("[FD00:0::100]:8443", ("fd00::100", 8443)),
    ("10.0.0.1", ("10.0.0.1", None)),
    ("[fd00::1]", ("fd00::1", None)),
    ("bastion", ("bastion", None)),
])
def test_parse_examples(text, expected):
    assert hostport.parse(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:abc", "host:0", "host:70000", "[fd00::1",
                                  "[10.0.0.1]:80", "a b:80", "user@host:22", "fd00::1]:80",
                                  "x/y:80"])
def test_parse_refuses(text):
    with pytest.raises(hostport.HostPortError):
        hostport.parse(text)


def test_jump_host_takes_brackets_and_prints_them_for_ssh():
    hop = JumpHost.parse("ops@[fd00::7]:2222")
    assert hop == JumpHost("ops", str(ipaddress.ip_address("fd00::7")), 2222)
    assert hostport.join(hop.address, hop.port) == "[fd00::7]:2222"
    assert JumpHost.parse("fd00::7") == JumpHost("root", "fd00::7", 22)
    with pytest.raises(ValueError, match="jump host"):
        JumpHost.parse("ops@[fd00::7")
