"""A reconnecting inbound event-socket connection subscribed to a few events.

Subclasses say what to do right after each (re)connect (filters, a resync) and with each event;
this class keeps the connection up with backoff, so a FreeSWITCH restart or a dropped socket
never stops them. Each subscription is kept small (a few event names, filters where possible)
so FreeSWITCH's queue for the listener never backs up.
"""

from __future__ import annotations

import logging
import time

import gevent

from fsacd.esl.framing import Event
from fsacd.esl.session import ESLError, InboundClient, report_connect_error

log = logging.getLogger(__name__)


class ReconnectingFeed:
    """Override :meth:`on_connect` and :meth:`on_event`; ``events`` are subscribed on connect."""

    #: event names to subscribe to (``event plain ...``)
    events: list[str] = []
    #: name for the log
    label = "event feed"

    def __init__(
        self, address: tuple[str, int], password: str | None, *, max_backoff: float = 30.0
    ) -> None:
        self.address = address
        self.password = password or ""
        self.max_backoff = max_backoff
        #: counts connections: a change means events may have been lost in between
        self.generation = 0
        self._client: InboundClient | None = None
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.time() + timeout
        while not self.connected and time.time() < deadline:
            gevent.sleep(0.05)
        return self.connected

    def on_connect(self, client: InboundClient) -> None:
        """Right after subscribing, before any event is handled (filters, a resync)."""

    def on_event(self, ev: Event) -> None:
        """One event from FreeSWITCH."""

    def on_disconnect(self) -> None:
        """The connection that was up is gone (events from now until the next
        :meth:`on_connect` are lost)."""

    def _run(self) -> None:
        backoff = 0.5
        while True:
            client = InboundClient(*self.address, self.password)
            try:
                client.connect()
                client.subscribe(self.events)
                self.on_connect(client)
                self._client = client
                self.generation += 1
                backoff = 0.5
                while client.connected:
                    ev = client.next_event(timeout=5.0)
                    if ev is not None:
                        self.on_event(ev)
                        ev = None  # not kept alive while the feed is idle
            except ESLError as exc:
                report_connect_error(log, f"{self.label}: ", self.address, exc)
            except Exception:  # noqa: BLE001 - keep the feed alive
                log.exception("%s failed", self.label)
            finally:
                client.close()
                if self._client is client:
                    self._client = None
                    try:
                        self.on_disconnect()
                    except Exception:  # noqa: BLE001 - keep the feed alive
                        log.exception("%s: disconnect handling failed", self.label)
            gevent.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)
