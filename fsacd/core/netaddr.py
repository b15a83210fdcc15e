"""Addresses: whether a configured listening host is reachable from this machine only."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """``host`` (as configured to listen on) only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_ports(hosts: str, default_port: int) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (a URL's node list; ``[v6]:port``; no port: the default)
    as pairs. ValueError naming the bad item."""
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or host.endswith(":"):  # no port, or a bare IPv6
            host, port = item, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(item)
        nodes.append((host, int(port)))
    return nodes
