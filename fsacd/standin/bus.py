"""Event delivery to event-socket listeners, with FreeSWITCH's subscription rules."""

from __future__ import annotations

import re
from typing import Protocol

from .eventheaders import Event

#: The key of a listener that takes no events (no ``event`` command, or ``noevents``): it is
#: offered none, so a thousand call sockets that subscribed to nothing cost an event nothing
#: (mod_event_socket tests one flag per listener).
NO_EVENTS = "-"


class Subscriber(Protocol):
    def offer(self, event: Event) -> None: ...


def takes(listener: Subscriber, name: str) -> bool:
    """Whether ``listener`` may take an event called ``name`` (a listener without a
    ``takes`` method may take any)."""
    check = getattr(listener, "takes", None)
    return True if check is None else check(name)


class EventBus:
    """Fans every fired event out to the listeners (inbound and outbound sockets).

    Every listener is offered every event, as mod_event_socket does, except those that
    said (:meth:`reindex`) they can only take the events of one channel (a ``filter
    Unique-ID <uuid>`` or ``myevents`` on an outbound socket): they are offered only the
    events carrying that uuid (``Unique-ID`` or ``Job-Owner-UUID``), and still decide
    themselves. FreeSWITCH does the same work in C; in Python, offering each event to a
    thousand call sockets made a call's teardown cost milliseconds per socket up.
    """

    def __init__(self) -> None:
        self.listeners: list[Subscriber] = []
        self.history: list[Event] = []
        self.keep_history = False
        self._general: list[Subscriber] = []
        self._keyed: dict[str, list[Subscriber]] = {}
        self._key_of: dict[int, str] = {}
        self._seq: dict[int, int] = {}
        self._added = 0

    def add(self, listener: Subscriber) -> None:
        self.listeners.append(listener)
        self._general.append(listener)
        self._added += 1
        self._seq[id(listener)] = self._added

    def remove(self, listener: Subscriber) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
            self._unindex(listener)
            self._seq.pop(id(listener), None)

    def reindex(self, listener: Subscriber, key: str | None) -> None:
        """``listener`` takes only events whose Unique-ID or Job-Owner-UUID is ``key``
        (compared without case), none (:data:`NO_EVENTS`: it subscribed to nothing), or
        (None) any event."""
        if listener not in self.listeners:
            return
        key = key.lower() if key else None
        if self._key_of.get(id(listener)) == key:
            return
        self._unindex(listener)
        if key is None:
            self._general.append(listener)
        else:
            self._key_of[id(listener)] = key
            if key != NO_EVENTS:
                self._keyed.setdefault(key, []).append(listener)

    def _unindex(self, listener: Subscriber) -> None:
        key = self._key_of.pop(id(listener), None)
        if key == NO_EVENTS:
            return
        if key is None:
            if listener in self._general:
                self._general.remove(listener)
            return
        keyed = self._keyed.get(key, [])
        if listener in keyed:
            keyed.remove(listener)
        if not keyed:
            self._keyed.pop(key, None)

    def wanted(self, name: str, uuid: str) -> bool:
        """Whether any listener may take the event ``name`` of channel ``uuid``: a channel
        event nobody subscribed to is not built at all (its bytes would go nowhere; its
        ``Event-Sequence`` number is still used, as FreeSWITCH numbers every event)."""
        if self.keep_history or name == "CUSTOM":
            return True
        for listener in self._general:
            if takes(listener, name):
                return True
        return any(takes(listener, name) for listener in self._keyed.get(uuid.lower(), ()))

    def dispatch(self, event: Event) -> None:
        if self.keep_history:
            self.history.append(event)
        targets = list(self._general)
        if self._keyed:
            for key in {(event.get("Unique-ID") or "").lower(),
                        (event.get("Job-Owner-UUID") or "").lower()} - {""}:  # fmt: skip
                targets.extend(self._keyed.get(key, ()))
        # in the order the listeners came, as FreeSWITCH offers them (and so wakes them): a
        # listener indexed and back again is at the end of ``_general``
        targets.sort(key=lambda listener: self._seq.get(id(listener), 0))
        for listener in targets:
            listener.offer(event)


def one_channel_filter(filters: list[tuple[str, str]]) -> str | None:
    """The uuid when ``filters`` pass only events whose Unique-ID is that uuid (one exact,
    positive ``Unique-ID`` value, possibly repeated), else None."""
    values = set()
    for name, value in filters:
        if name.lower() != "unique-id":
            return None
        i, pos = 0, True
        while i < len(value) and value[i] in "+- ":
            if value[i] in "+-":
                pos = value[i] == "+"
            i += 1
        comp = value[i:]
        if not pos or not comp or comp.startswith("/"):
            return None
        values.add(comp.lower())
    return values.pop() if len(values) == 1 else None


def filters_pass(filters: list[tuple[str, str]], event: Event) -> bool:
    """mod_event_socket's filter logic: ``+``/``-`` prefixes, ``/regex/`` values."""
    if not filters:
        return True
    send = False
    for name, value in filters:
        hval = event.get(name)
        if hval is None:
            continue
        comp = value
        pos = True
        i = 0
        while i < len(comp) and comp[i] in "+- ":
            if comp[i] == "+":
                pos = True
            elif comp[i] == "-":
                pos = False
            i += 1
        comp = comp[i:]
        if send and pos:
            continue
        # an empty value (``filter X `` or ``filter X +``) matches an empty header value
        if value.startswith("/"):
            pattern = comp[1:-1] if comp.endswith("/") and len(comp) > 1 else comp.lstrip("/")
            try:
                cmp = re.search(pattern, hval) is not None
            except re.error:
                cmp = False
        else:
            cmp = hval.lower() == comp.lower()
        if cmp:
            if pos:
                send = True
            else:
                send = False
                break
    return send
