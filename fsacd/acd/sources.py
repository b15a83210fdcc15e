"""Who may connect to the outbound socket: the config's ``[server]`` keys → a SourceGuard."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from fsacd.core.netaddr import is_loopback_host
from fsacd.esl.guard import LOOPBACK, Network, SourceGuard, host_networks

if TYPE_CHECKING:
    from fsacd.config import Config

log = logging.getLogger(__name__)


def freeswitch_networks(cfg: Config) -> list[Network]:
    """``server.freeswitch_addresses``, else loopback and the hosts of ``freeswitch.inbound``
    and ``freeswitch.other_switches`` (a name is resolved now; one that does not resolve is
    left out, with a warning)."""
    listed = cfg.server.freeswitch_addresses
    if listed is not None:
        return [ipaddress.ip_network(x) for x in listed]
    nets: list[Network] = list(LOOPBACK)
    for host in dict.fromkeys(a[0] for a in cfg.freeswitch.feed_addresses):
        found = host_networks(host)
        if not found:
            log.warning(
                "FreeSWITCH host %s does not resolve: it does not count as FreeSWITCH"
                " on the outbound socket (set server.freeswitch_addresses)",
                host,
            )
        nets += [n for n in found if not n.network_address.is_loopback and n not in nets]
    return nets


def guard_for(cfg: Config, current: SourceGuard | None = None) -> SourceGuard | None:
    """The outbound server's guard for ``cfg`` (``current`` updated in place on a reload);
    None when it listens on loopback (only this machine can connect: nothing is checked)."""
    srv = cfg.server
    if is_loopback_host(srv.listen_address[0]):
        return None
    nets = freeswitch_networks(cfg)
    limits = {
        "others": srv.other_sources,
        "max_per_source": srv.source_max_calls,
        "rate": srv.source_max_rate,
    }
    if current is None:
        current = SourceGuard(nets, **limits)  # type: ignore[arg-type]
    else:
        current.configure(nets, **limits)  # type: ignore[arg-type]
    others = (
        "other sources refused"
        if srv.other_sources == "refuse"
        else f"other sources limited to {srv.source_max_calls} at once and"
        f" {srv.source_max_rate:g} new per second each"
    )
    log.info(
        "outbound socket beyond loopback: FreeSWITCH from %s (never limited); %s",
        ", ".join(str(n) for n in nets) or "nowhere",
        others,
    )
    return current
