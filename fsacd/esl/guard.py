"""Who may open the outbound socket, and how refusals are logged.

The outbound socket has no authentication. Listening beyond loopback, every peer is checked
when it is accepted, before anything is read from it (:class:`SourceGuard`):

- a FreeSWITCH address (``[server] freeswitch_addresses``) is always accepted and never
  limited: FreeSWITCH opens one socket per call, thousands from one address;
- any other source is closed at once (``other_sources = "refuse"``, the default), or
  accepted under per-source limits (``"limit"``): at most ``source_max_calls`` connections
  at once and ``source_max_rate`` new ones per second (a burst of one second's worth).

:class:`RefusalLog` logs a refusal once per source and reason per interval and counts the
rest, so that a flood of connections does not flood the log. Its memory is bounded, as is
the guard's table of limited sources.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable

log = logging.getLogger("fsacd.esl.server")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Networks of the loopback interface (the default FreeSWITCH addresses include them).
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

#: Why a connection was refused (the label of ``fsacd_outbound_refused_total``).
REASONS = {
    "not-allowed": "not a FreeSWITCH address (server.freeswitch_addresses)",
    "source-limit": "too many connections from it at once (server.source_max_calls)",
    "source-rate": "too many new connections from it (server.source_max_rate)",
    "max-calls": "the controller handles server.max_calls calls already",
}
#: How often a source's refusals are logged again, seconds.
LOG_EVERY = 60.0
#: Sources logged by name per interval; refusals from further sources are only counted.
LOG_SOURCES = 20
#: Limited sources tracked at once (idle ones are forgotten first when it is full).
MAX_SOURCES = 4096


def peer_address(address: object) -> Address | None:
    """The IP of an accepted peer (``(host, port, ...)``), IPv4-mapped IPv6 as IPv4."""
    host = address[0] if isinstance(address, tuple) and address else address
    if not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip




def host_networks(host: str) -> list[Network]:
    """``host`` (an IP, or a name resolved now) as single-address networks; [] if unknown."""
    try:
        return [ipaddress.ip_network(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    out: list[Network] = []
    for info in infos:
        ip = peer_address(info[4])
        if ip is not None:
            net = ipaddress.ip_network(ip)
            if net not in out:
                out.append(net)
    return out


class RefusalLog:
    """Refused connections: one warning per source and reason per interval, a count of the
    rest (logged as one line when the next interval begins), totals per reason."""

    def __init__(
        self,
        every: float = LOG_EVERY,
        sources: int = LOG_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.sources = sources
        self.clock = clock
        #: refusals since start, per reason
        self.totals: Counter[str] = Counter()
        self._start = clock()
        self._seen: dict[tuple[str, str], int] = {}
        self._held = 0

    def refused(self, source: str, reason: str) -> None:
        self.totals[reason] += 1
        now = self.clock()
        if now - self._start >= self.every:
            self._flush(now)
        key = (source, reason)
        if key in self._seen:
            self._seen[key] += 1
        elif len(self._seen) >= self.sources:
            self._held += 1
        else:
            self._seen[key] = 0
            log.warning(
                "refused a connection from %s: %s (refusals are logged once per source "
                "every %d s)",
                source,
                REASONS.get(reason, reason),
                self.every,
            )

    def _flush(self, now: float) -> None:
        held = sum(self._seen.values()) + self._held
        if held:
            log.warning(
                "refused %d more connection(s) in the last %d s (see "
                "fsacd_outbound_refused_total)",
                held,
                round(now - self._start),
            )
        self._start = now
        self._seen.clear()
        self._held = 0

    @property
    def tracked(self) -> int:
        """Entries held (bounded by ``sources``)."""
        return len(self._seen)


class _Source:
    __slots__ = ("active", "tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.active = 0
        self.tokens = tokens
        self.stamp = stamp


class SourceGuard:
    """Admits or refuses peers of an outbound server listening beyond loopback.

    :meth:`admit` returns None (refused: close it), ``""`` (a FreeSWITCH address: nothing
    to release) or the source's key, which the server passes to :meth:`release` when that
    connection ends.
    """

    def __init__(
        self,
        freeswitch: Iterable[Network],
        *,
        others: str = "refuse",
        max_per_source: int = 10,
        rate: float = 5.0,
        log: RefusalLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self.log = log if log is not None else RefusalLog(clock=clock)
        self.clock = clock
        self.max_sources = max_sources
        self._sources: dict[str, _Source] = {}
        self.configure(freeswitch, others=others, max_per_source=max_per_source, rate=rate)

    def configure(
        self, freeswitch: Iterable[Network], *, others: str, max_per_source: int, rate: float
    ) -> None:
        """Set (or change, on a reload) who is FreeSWITCH and the limits for the others;
        connections already admitted are kept."""
        if others not in ("refuse", "limit"):
            raise ValueError(f"others must be 'refuse' or 'limit', got {others!r}")
        self.freeswitch = tuple(freeswitch)
        self.others = others
        self.max_per_source = max_per_source
        self.rate = rate
        self.burst = max(1.0, float(math.ceil(rate)))

    def is_freeswitch(self, ip: Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.freeswitch)

    def admit(self, address: object) -> str | None:
        ip = peer_address(address)
        if ip is not None and self.is_freeswitch(ip):
            return ""
        source = str(ip) if ip is not None else "?"
        if self.others == "refuse":
            self.log.refused(source, "not-allowed")
            return None
        now = self.clock()
        s = self._sources.get(source)
        if s is None:
            if len(self._sources) >= self.max_sources:
                self._forget_idle()
            if len(self._sources) >= self.max_sources:
                self.log.refused(source, "source-limit")
                return None
            s = self._sources[source] = _Source(self.burst, now)
        s.tokens = min(self.burst, s.tokens + (now - s.stamp) * self.rate)
        s.stamp = now
        if s.active >= self.max_per_source:
            self.log.refused(source, "source-limit")
            return None
        if s.tokens < 1.0:
            self.log.refused(source, "source-rate")
            return None
        s.tokens -= 1.0
        s.active += 1
        return source

    def release(self, source: str) -> None:
        """A connection admitted as ``source`` (a non-empty key from :meth:`admit`) ended."""
        s = self._sources.get(source)
        if s is not None and s.active > 0:
            s.active -= 1

    def active(self, source: str) -> int:
        s = self._sources.get(source)
        return s.active if s is not None else 0

    @property
    def tracked(self) -> int:
        """Limited sources held in the table (bounded by ``max_sources``)."""
        return len(self._sources)

    def _forget_idle(self) -> None:
        """Drop the sources without a live connection (their rate state starts afresh)."""
        for k in [k for k, s in self._sources.items() if s.active == 0]:
            del self._sources[k]
