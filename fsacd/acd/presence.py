"""Agents FreeSWITCH knows are busy outside fsacd: on a direct call, or not registered.

Like mod_callcenter's ``skip-agents-with-external-calls``: a controller keeps an inbound
event-socket connection subscribed to a few channel events only (so FreeSWITCH's queue for it
never backs up) and records in Redis which agents have channels that are not fsacd's own
(``ext:{agent}`` holds their uuids, ``ext_busy`` the agents with any). A phone that publishes
do-not-disturb (``PRESENCE_IN`` with rpid ``dnd`` or a DND note) is in ``dnd`` until it
publishes something else. An agent is matched to
a channel by the user of its contact (``user/1001@pbx.example`` -> ``1001@pbx.example``)
against the channel's ``presence_id`` or ``dialed_user@dialed_domain``. fsacd's own legs
(``fsacd_agent``/``fsacd_call`` set) are left out, but their ends are told to the controller:
an agent is released only once its leg is gone. Channels are kept per FreeSWITCH (by its
Core-UUID): a watcher's resync replaces only its own switch's. ``sofia::unregister`` marks an agent
unregistered until the next ``sofia::register``. Queues with ``skip_busy_agents`` (default on)
do not offer calls to such agents.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

from fsacd.acd.outage import OUTAGE
from fsacd.esl.feed import ReconnectingFeed
from fsacd.esl.framing import Event, event_plain_head_end, event_plain_uuid
from fsacd.esl.session import InboundClient
from fsacd.state.connection import TRANSIENT_ERRORS
from fsacd.state.presence import PresenceStore
from fsacd.state.store import Store

log = logging.getLogger(__name__)

EVENTS = [
    "CHANNEL_CREATE",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "PRESENCE_IN",
    "CUSTOM",
    "sofia::register",
    "sofia::unregister",
]
INDEX_TTL = 10.0


def contact_user(contact: str) -> str | None:
    """``user/1001@dom`` or ``sofia/internal/1001@dom`` -> ``1001@dom`` (lower case)."""
    c = contact.strip()
    for prefix in ("user/", "sofia/"):
        if c.startswith(prefix):
            tail = c[len(prefix) :]
            if prefix == "sofia/":
                tail = tail.split("/", 1)[1] if "/" in tail else ""
            tail = tail.removeprefix("sip:").split(";", 1)[0]
            return tail.lower() if "@" in tail else None
    return None


def channel_users(headers: Mapping[str, str]) -> set[str]:
    """The agent users a channel belongs to (presence id, dialed user)."""
    out = set()
    presence = headers.get("variable_presence_id") or headers.get("Channel-Presence-ID")
    if presence and "@" in presence:
        out.add(presence.lower())
    user, domain = headers.get("variable_dialed_user"), headers.get("variable_dialed_domain")
    if user and domain:
        out.add(f"{user}@{domain}".lower())
    return out


#: the channel variables fsacd sets on its own legs (as event headers)
OURS_HEADERS = ("variable_fsacd_agent", "variable_fsacd_call")
#: the same as raw header lines, for a look at an event before it is parsed
_OURS = tuple(f"\n{name}: ".encode() for name in OURS_HEADERS)


def is_ours(headers: dict[str, str]) -> bool:
    return any(headers.get(name) for name in OURS_HEADERS)


def _has_value(body: bytes, end: int, marker: bytes) -> bool:
    """The headers (``body`` up to ``end``) have the line ``marker`` with a value that is
    not empty."""
    at = body.find(marker, 0, end)
    if at == -1:
        return False
    at += len(marker)
    return at < end and body[at : at + 1] not in (b"\n", b"\r")


class Presence(ReconnectingFeed):
    """Watches FreeSWITCH's events for one controller and keeps the ``ext`` keys current."""

    events = EVENTS
    label = "presence"

    def __init__(self, store: Store, address: tuple[str, int], password: str | None) -> None:
        super().__init__(address, password)
        self.store = store
        self.sets = PresenceStore.of(store)
        self._index: dict[str, str] = {}
        self._index_at = 0.0
        #: Core-UUID of the FreeSWITCH this watcher follows (learnt at each connect)
        self.core = ""
        #: events were lost to a Redis outage: resync at the next event once Redis is back
        self._stale = False
        #: called with (channel uuid, digit) for every key FreeSWITCH reports
        self.on_agent_dtmf: Callable[[str, str], None] | None = None
        #: called with the uuid of each of fsacd's own channels (an agent's leg) that ended
        self.on_own_hangup: Callable[[str], None] | None = None
        #: whether the end of this agent leg is awaited (the others' events stay unparsed)
        self.wants_leg: Callable[[str], bool] | None = None

    def busy_agents(self) -> set[str]:
        """Agents not to offer calls to now (for queues with ``skip_busy_agents``)."""
        return self.sets.busy_agents()

    # --- the event loop -------------------------------------------------------------------

    def _agent_for(self, users: set[str]) -> str | None:
        if time.time() - self._index_at > INDEX_TTL:
            self._index = {}
            for a in self.store.list_agents():
                u = contact_user(a.get("contact") or "")
                if u:
                    self._index[u] = a["id"]
            self._index_at = time.time()
        for u in users:
            if u in self._index:
                return self._index[u]
        return None

    def on_connect(self, client: InboundClient) -> None:
        client.event_filter = self._wanted
        try:
            self._resync(client)
        except TRANSIENT_ERRORS as exc:  # Redis away: resync at the first event after it
            OUTAGE.failed("presence resync", exc)
            self._stale = True

    def _wanted(self, body: bytes) -> bool:
        """Whether an event is worth parsing: fsacd's own channels (its agents' legs, half
        of a switch's channels under load) only for the end of a leg a call waits for; every
        other event is. Read from the raw header block, as the call feed does."""
        end = event_plain_head_end(body)
        if not any(_has_value(body, end, marker) for marker in _OURS):
            return True
        if not body.startswith(b"Event-Name: CHANNEL_HANGUP_COMPLETE\n"):
            return False
        uuid = event_plain_uuid(body)
        return uuid is not None and self.wants_leg is not None and self.wants_leg(uuid)

    def _core_of(self, client: InboundClient) -> str:
        """The Core-UUID of the FreeSWITCH ``client`` talks to ("" if it does not say)."""
        reply = (client.api("global_getvar core_uuid") or "").strip()
        return reply if reply and not reply.startswith("-") and "/" not in reply else ""

    def _resync(self, client: InboundClient) -> None:
        """After (re)connecting: rebuild this FreeSWITCH's part of the ``ext`` keys from its
        channel list (other FreeSWITCH servers' channels are theirs to keep, per Core-UUID).
        A new Core-UUID (the switch restarted) drops what the old one reported."""
        core = self._core_of(client) or self.core or "unknown"
        earlier = tuple(c for c in (self.core,) if c and c != core)
        self.core = core
        reply = client.api("show channels as json")
        try:
            rows = json.loads(reply).get("rows") or []
        except (ValueError, AttributeError):
            rows = []
        busy: dict[str, set[str]] = {}
        for row in rows:
            headers = {"variable_presence_id": row.get("presence_id") or ""}
            agent = self._agent_for(channel_users(headers))
            if agent and row.get("uuid"):
                busy.setdefault(agent, set()).add(row["uuid"])
        self.sets.replace_external(busy, core, earlier)
        self._stale = False

    def on_event(self, ev: Event) -> None:
        """Apply one FreeSWITCH event (public for tests). While Redis is away events are
        dropped (one log line per outage) and a resync follows once it is back."""
        try:
            if self._stale and self._client is not None:
                self._resync(self._client)
            self._apply(ev)
        except TRANSIENT_ERRORS as exc:
            OUTAGE.failed("presence", exc)
            self._stale = True

    def _apply(self, ev: Event) -> None:
        h = ev.headers
        core = h.get("Core-UUID") or self.core or "unknown"
        name = ev.name
        if name == "CUSTOM":
            sub = h.get("Event-Subclass", "")
            user = h.get("from-user") or h.get("username")
            host = h.get("from-host") or h.get("realm") or h.get("domain_name")
            if not user or not host:
                return
            agent = self._agent_for({f"{user}@{host}".lower()})
            if agent is None:
                return
            if sub == "sofia::unregister":
                self.sets.set_unregistered(agent, True)
            elif sub == "sofia::register":
                self.sets.set_unregistered(agent, False)
                self.store.wake(self._queues_of(agent))
            return
        if name == "PRESENCE_IN" and h.get("proto") == "sip" and "@" in (h.get("from") or ""):
            self._presence(h)
            return
        if name == "DTMF":
            # DTMF events carry no channel variables (FreeSWITCH adds them only to some
            # events): the controller knows which leg uuids are its agents'
            uuid, digit = h.get("Unique-ID"), h.get("DTMF-Digit")
            if uuid and digit and self.on_agent_dtmf:
                self.on_agent_dtmf(uuid, digit)
            return
        if name not in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"):
            return
        if is_ours(h):
            # an agent leg of fsacd's is gone: its call may release the agent now
            if name == "CHANNEL_HANGUP_COMPLETE" and self.on_own_hangup and h.get("Unique-ID"):
                self.on_own_hangup(h["Unique-ID"])
            return
        agent = self._agent_for(channel_users(h))
        uuid = h.get("Unique-ID")
        if agent is None or not uuid:
            return
        if name == "CHANNEL_CREATE":
            self.sets.external_started(agent, uuid, core)
            return
        if self.sets.external_ended(agent, uuid, core):
            self.store.wake(self._queues_of(agent))

    def _presence(self, h: dict[str, str]) -> None:
        """A phone published its presence (SIP PUBLISH, PIDF): do-not-disturb on or off."""
        agent = self._agent_for({(h.get("from") or "").lower()})
        if agent is None:
            return
        rpid = (h.get("rpid") or "").strip().lower()
        status = (h.get("status") or "").strip().lower()
        dnd = rpid == "dnd" or "dnd" in status or "do not disturb" in status
        if self.sets.set_dnd(agent, dnd):
            self.store.wake(self._queues_of(agent))

    def _queues_of(self, agent_id: str) -> list[str]:
        a = self.store.get_agent(agent_id) or {}
        return list((a.get("queues") or {}).keys())
