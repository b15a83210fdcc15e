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
