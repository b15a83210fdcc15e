"""Event delivery to event-socket listeners, with FreeSWITCH's subscription rules."""

from __future__ import annotations

import re
from typing import Protocol

from .eventheaders import Event


class Subscriber(Protocol):
    def offer(self, event: Event) -> None: ...


class EventBus:
    """Fans every fired event out to the listeners (inbound and outbound sockets)."""

    def __init__(self) -> None:
        self.listeners: list[Subscriber] = []
        self.history: list[Event] = []
        self.keep_history = False

    def add(self, listener: Subscriber) -> None:
        self.listeners.append(listener)

    def remove(self, listener: Subscriber) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def dispatch(self, event: Event) -> None:
        if self.keep_history:
            self.history.append(event)
        for listener in list(self.listeners):
            listener.offer(event)


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
