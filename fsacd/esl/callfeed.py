"""One inbound event connection per FreeSWITCH for the events of every call's channel.

Each call's outbound socket could subscribe to its own channel's events (``filter Unique-ID``
plus ``event ...``), and did. But mod_event_socket's ``event_handler`` walks every listener
for every event of the switch, under one mutex (the one a new socket also needs to be
added), and checks each subscribed listener's filters against the event's headers: with
hundreds of callers on hold that walk is most of the switch's CPU and delays every event and
every new call (docs/performance.md). A listener that subscribed to nothing costs the walk
one flag test. So the calls' sockets subscribe to nothing, and this one connection takes the
call events of the whole switch, hands each to the session of its ``Unique-ID`` and drops
the rest unparsed (:func:`~fsacd.esl.framing.event_plain_uuid`). FreeSWITCH sends it only
the events of channels that run the ``socket`` application, by a filter on the variable it
sets on them (``socket_host``), and DTMF.

A call uses the feed only when the feed is up and talks to the call's switch (the
``Core-UUID`` of the connect reply); otherwise, and for every attached call when the feed's
connection drops, the call's socket subscribes to its own events (the ``fallback`` given to
:meth:`CallFeed.attach`). Events of the gap may be lost: every wait of a call has a timeout,
and a hang-up also comes as the socket's disconnect notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import gevent

from fsacd.esl.feed import ReconnectingFeed
from fsacd.esl.framing import Event, event_plain_uuid
from fsacd.esl.session import InboundClient, OutboundSession

log = logging.getLogger(__name__)


class CallFeed(ReconnectingFeed):
    """The call events of one FreeSWITCH, dispatched to the attached sessions by uuid."""

    label = "call events"

    def __init__(
        self,
        address: tuple[str, int],
        password: str | None,
        events: Iterable[str],
        *,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(address, password, max_backoff=max_backoff)
        self.events = list(events)
        #: the Core-UUID of the switch of the current connection ("" until known)
        self.core_uuid = ""
        self._sessions: dict[str, tuple[OutboundSession, Callable[[], None]]] = {}
        #: events handed to a session / dropped as another channel's (for the benchmarks)
        self.delivered = 0
        self.dropped = 0

    # --- the calls' side ----------------------------------------------------------------

    def attach(self, session: OutboundSession, fallback: Callable[[], None]) -> bool:
        """Deliver the events of ``session``'s channel to it from now on; False (nothing
        changed) when the feed is down or serves another switch. ``fallback`` subscribes
        the session's own socket; it is called, in a greenlet of its own, if the feed
        goes down while the session is attached."""
        uuid = session.uuid
        data = session.channel_data
        core = data.get("Core-UUID", "") if data is not None else ""
        if not uuid or not self.connected or not self.core_uuid or core != self.core_uuid:
            return False
        self._sessions[uuid] = (session, fallback)
        return True

    def detach(self, uuid: str) -> None:
        """Forget a session (its call ended); unknown uuids are fine."""
        self._sessions.pop(uuid, None)

    @property
    def attached(self) -> int:
        return len(self._sessions)

    # --- the connection's side ----------------------------------------------------------

    def on_connect(self, client: InboundClient) -> None:
        reply = (client.api("global_getvar core_uuid") or "").strip()
        self.core_uuid = reply if reply and not reply.startswith("-") and " " not in reply else ""
        if not self.core_uuid:
            log.warning("%s: FreeSWITCH did not tell its Core-UUID; calls use their sockets",
                        self.label)
        # only the events of channels that run a ``socket`` application (FreeSWITCH sets
        # socket_host on them), and every DTMF (its events carry no channel variables): the
        # agents' legs and other channels' events never leave the switch
        client.filter("variable_socket_host", "/./")
        client.filter("Event-Name", "DTMF")
        client.event_filter = self._wanted
        # straight from the reader to the calls: no queue of parsed events in between (a
        # burst of a thousand callers' events would wait there, a few KiB each)
        client.deliver_to(self._deliver)
        # a thousand callers hanging up at once are a burst of thousands of events here:
        # each call takes its first and ends (later ones are dropped unparsed) before the
        # next read
        client.yield_after_read = True

    def _wanted(self, body: bytes) -> bool:
        uuid = event_plain_uuid(body)
        if uuid is not None and uuid in self._sessions:
            return True
        self.dropped += 1
        return False

    def _deliver(self, ev: Event) -> None:
        if ev.name != "SOCKET_CLOSED":  # that one ends the feed's loop (it is queued too)
            self.on_event(ev)

    def on_event(self, ev: Event) -> None:
        entry = self._sessions.get(ev.get("Unique-ID") or "")
        if entry is not None:
            self.delivered += 1
            entry[0].feed_event(ev)

    def on_disconnect(self) -> None:
        self.core_uuid = ""
        moved, self._sessions = self._sessions, {}
        if moved:
            log.warning(
                "%s: connection to FreeSWITCH lost; %d call(s) subscribe on their own sockets",
                self.label,
                len(moved),
            )
        for session, fallback in moved.values():
            if not session.hungup:
                gevent.spawn(_fall_back, session, fallback)


def _fall_back(session: OutboundSession, fallback: Callable[[], None]) -> None:
    try:
        fallback()
    except Exception as exc:  # noqa: BLE001 - the call's socket is gone: its flow ends it
        log.info("call %s: could not subscribe its own events (%s)", session.uuid, exc)
