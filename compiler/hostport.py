"""host:port, parsed and printed in one place.

An IPv6 address takes brackets whenever a port follows it (``[fd00::100]:6443``, RFC 3986):
without them ``fd00::100:6443`` is a different address on the default port. Parsing goes
through :func:`urllib.parse.urlsplit` (which knows brackets and checks the port) and
:mod:`ipaddress` (which knows addresses); printing goes through :func:`join`, so every file
that names an endpoint (kubeadm configs, kubeconfigs, haproxy, etcd URLs, the plan) agrees.
DNS names are case-insensitive: they come out lower-cased, as kubeadm and urlsplit make them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostPortError(ValueError):
    """Text that is not ``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port``."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def parse(text: str) -> tuple[str, int | None]:
    """``(host, port or None)``: IPv6 hosts without brackets and compressed, names lower-case.

    A bare IPv6 address (``fd00::1``) is a host without a port; ``fd00::1:6443`` is refused
    rather than guessed, since it is itself a valid address."""
    text = text.strip()
    if not text:
        raise HostPortError("empty host")
    try:
        return str(ipaddress.ip_address(text)), None
    except ValueError:
        pass
    if any(c in text for c in "/?#@ \t"):
        raise HostPortError(f"`{text}` is not host:port")
    if not text.startswith("[") and text.count(":") > 1:
        raise HostPortError(f"`{text}` is not host:port",
                            "an IPv6 address with a port needs brackets: [fd00::100]:6443")
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError as exc:
        raise HostPortError(f"`{text}` is not host:port: {exc}") from None
    host = parts.hostname
    if not host:
        raise HostPortError(f"`{text}` names no host")
    if text.rstrip("0123456789").endswith(":") and port is None:
        raise HostPortError(f"`{text}` has an empty port")
    if port is not None and not 1 <= port <= 65535:
        raise HostPortError(f"port {port} is out of range", "ports are 1 to 65535")
    return normalize_host(host), port


def normalize_host(host: str) -> str:
    """An IP address in its canonical form, a DNS name lower-cased."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str | IPAddress) -> str:
    """The host as it appears before ``:port`` in a URL or an address: IPv6 in brackets."""
    text = str(host)
    return f"[{text}]" if is_ipv6(text) else text


def join(host: str | IPAddress, port: int) -> str:
    """``host:port`` (``[ipv6]:port``), as kubeadm, haproxy, etcd and OpenSSH read it."""
    return f"{url_host(host)}:{port}"


def https_url(host: str | IPAddress, port: int) -> str:
    return f"https://{join(host, port)}"
