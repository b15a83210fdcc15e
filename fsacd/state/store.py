"""The ACD's shared state in Redis: agents, queues, calls, matching, events, pub/sub.

Every change that must be atomic is one Lua script (``fsacd/state/lua/``); this module validates
input, calls the scripts and decodes what comes back. The features' own keys have their store
modules beside this one (presence, contacts, crm, history, pop, verified); nothing outside
``fsacd/state`` talks to Redis. docs/design.md describes the protocol, docs/redis.md the keys
and events.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from fsacd.core import strategies
from fsacd.core.routing import PRIORITY_MAX
from fsacd.core.strategies import AgentSnapshot
from fsacd.state import pool as pools
from fsacd.state.base import Batch, Pipe, Reads, Reply, StateBase, script_with_reads
from fsacd.state.cluster import subscribers
from fsacd.state.keys import DEFAULT_PREFIX, EVENTS_MAXLEN, Keys
from fsacd.state.scripts import Scripts

#: Waiting-score multiplier: score = (PRIORITY_MAX - priority) * SEQ_SPAN + seq
#: (PRIORITY_MAX, the highest call priority, is fsacd.core.routing's).
SEQ_SPAN = 2**40
#: How long an ended call's hash stays readable, seconds.
CALL_TTL = 86400
#: Recent handle times kept per queue (``queue:{name}:aht``) for the estimated wait.
HANDLE_TIMES_KEPT = 50

#: Agent ids, queue names: what may appear inside key names.
ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
#: Characters a contact (dial string) must not contain: whitespace and control characters
#: (a CR/LF would end an event-socket command), ``,`` and ``|`` (they separate legs of a
#: bridge: ring-all and failover), ``^`` (FreeSWITCH's array/delimiter escape).
_CONTACT_BAD = re.compile(r"[\s,|^\x00-\x1f\x7f]")
CONTACT_MAX = 512

AGENT_STATUSES = ("logged-out", "available", "on-break")
AGENT_STATES = ("idle", "reserved", "ringing", "in-call", "wrap-up")
CALL_STATES = ("waiting", "offering", "bridged", "ended")

_AGENT_FLOATS = (
    "state_since",
    "ready_at",
    "login_at",
    "last_call_end",
    "last_offer_at",
    "tis_since",
)
_AGENT_INTS = ("answered", "missed", "no_answer_streak")
_CALL_FLOATS = ("entered_at", "answered_at", "ended_at", "state_since")
_CALL_INTS = ("priority", "seq", "score", "offers", "overflows")
#: Call fields the store manages itself (enqueue ignores them in the call dict).
_CALL_MANAGED = frozenset(
    {
        "id",
        "queue",
        "priority",
        "seq",
        "score",
        "state",
        "owner",
        "entered_at",
        "offer",
        "agents",
        "agent",
        "answered_at",
        "ended_at",
        "outcome",
        "state_since",
        "offers",
        "overflows",
    }
)


class UnknownAgent(KeyError):
    """No agent with this id."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id)
        self.agent_id = agent_id

    def __str__(self) -> str:
        return f"unknown agent {self.agent_id!r}"


class UnknownQueue(KeyError):
    """A queue name that is not configured."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(name)
        self.name = name
        self.known = sorted(known)

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return f"unknown queue {self.name!r} (configured: {known})"


class AgentBusy(ValueError):
    """The agent holds a call (reserved, ringing or in a call)."""


class CallBusy(ValueError):
    """The call is being offered or is bridged: it cannot enter a queue now."""


@dataclass
class Offer:
    """A reservation made by ``reserve``: a call offered to one or more agents."""

    offer_id: str
    call_id: str
    queue: str
    agents: list[str]
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the ``ctl:{owner}`` hand-off payload)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Offer:
        agents = data["agents"]
        if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
            raise TypeError("offer agents must be a list of strings")
        return cls(
            offer_id=str(data["offer_id"]),
            call_id=str(data["call_id"]),
            queue=str(data["queue"]),
            agents=list(agents),
            owner=str(data.get("owner") or ""),
        )


@dataclass(frozen=True)
class MatchSpec:
    """How a matching pass is run for a queue (:meth:`Store.match`'s arguments): the
    strategy, calls served at most, agents passed over (``busy``) and whether presence's
    sets are read by the script (``skip_busy_sets``); ``rng`` for the random strategy.
    ``ids``: the base of the pass's offer ids (a pass sent again after a lost reply uses the
    same ones, so ``arrive.lua`` knows its own offer)."""

    strategy: str
    calls: int
    busy: frozenset[str] = frozenset()
    skip_busy_sets: bool = False
    rng: random.Random | None = None
    ids: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


@dataclass
class Arrival:
    """What :meth:`Store.arrive` did: the call as stored after it (None when ``moved_from``
    names the controller that still holds it: nothing changed) and the offers of the
    matching pass that came with it (for this call or others of the queue)."""

    call: dict[str, Any] | None
    offers: list[Offer]
    moved_from: str | None = None


@dataclass(frozen=True)
class Pool:
    """What one matching pass sees of a queue (``Store.pool``)."""

    head: str | None
    waiting: int
    rr_last: int | float | None
    paused: bool
    free: list[AgentSnapshot]


@dataclass(frozen=True)
class QueueRules:
    """What a failed offer costs an agent (from the queue's config)."""

    max_no_answer: int = 0
    no_answer_delay: float = 0.0
    busy_delay: float = 0.0
    reject_delay: float = 0.0

    @classmethod
    def of(cls, cfg: Any) -> QueueRules:
        """Rules from any object with these attributes (e.g. a QueueConfig); None -> none."""
        if cfg is None:
            return cls()
        if isinstance(cfg, QueueRules):
            return cfg
        return cls(
            max_no_answer=int(getattr(cfg, "max_no_answer", 0) or 0),
            no_answer_delay=float(getattr(cfg, "no_answer_delay", 0) or 0),
            busy_delay=float(getattr(cfg, "busy_delay", 0) or 0),
            reject_delay=float(getattr(cfg, "reject_delay", 0) or 0),
        )


# --- validation ---------------------------------------------------------------------------


def check_id(value: Any, what: str = "agent id") -> str:
    """An agent id or queue name: ``[A-Za-z0-9_.@-]{1,64}``; ValueError otherwise."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . @ -")
    return value


def check_contact(value: Any) -> str:
    """A contact (dial string): non-empty, no whitespace/control characters, ``,``, ``|``
    or ``^``, not starting with ``{``, ``[`` or ``<`` (fsacd adds its own leg variables)."""
    if not isinstance(value, str) or not value:
        raise ValueError("contact must not be empty")
    if len(value) > CONTACT_MAX:
        raise ValueError(f"contact longer than {CONTACT_MAX} characters")
    bad = _CONTACT_BAD.search(value)
    if bad:
        raise ValueError(f"contact {value!r} contains {bad.group()!r}, which is not allowed")
    if value[0] in "{[<":
        raise ValueError(f"contact {value!r} must not start with {value[0]!r}")
    return value


def check_priority(value: Any) -> int:
    """A call priority: an integer 0..PRIORITY_MAX; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"priority must be an integer, not {value!r}")
    if not 0 <= value <= PRIORITY_MAX:
        raise ValueError(f"priority {value} outside 0..{PRIORITY_MAX}")
    return value


def waiting_score(priority: int, seq: int) -> int:
    """The waiting-zset score of a call: lower is served first."""
    return (PRIORITY_MAX - check_priority(priority)) * SEQ_SPAN + seq


def _check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason or len(reason) > 64:
        raise ValueError("break reason must be 1-64 characters")
    if re.search(r"[\x00-\x1f\x7f]", reason):
        raise ValueError("break reason must not contain control characters")
    return reason


# --- decoding -----------------------------------------------------------------------------


def _float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def _int(v: Any) -> int:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 0


def _position(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def _decode_agent(h: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(h)
    for k in _AGENT_FLOATS:
        out[k] = _float(h.get(k))
    for k in _AGENT_INTS:
        out[k] = _int(h.get(k))
    out["talk_time"] = _float(h.get("talk_time")) or 0.0
    try:
        queues = json.loads(h.get("queues") or "{}")
    except ValueError:
        queues = {}
    out["queues"] = queues if isinstance(queues, dict) else {}
    for k in ("call", "offer", "owner", "break_reason", "contact"):
        out.setdefault(k, "")
    return out


def _decode_call(h: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(h)
    for k in _CALL_FLOATS:
        out[k] = _float(h.get(k))
    for k in _CALL_INTS:
        out[k] = _int(h.get(k))
    out["agents"] = [a for a in (h.get("agents") or "").split(",") if a]
    return out


def _fmt(now: float) -> str:
    return f"{now:.3f}"


def _field(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return _fmt(v)
    if isinstance(v, list | tuple | set | frozenset):
        return ",".join(str(x) for x in v)
    return str(v)


def _decodes(r: Any) -> bool:
    """``r`` (a client of one server or of a cluster) decodes responses to str."""
    try:
        return bool(r.get_encoder().decode_responses)
    except AttributeError:
        kwargs = getattr(getattr(r, "connection_pool", None), "connection_kwargs", {}) or {}
        return bool(kwargs.get("decode_responses", False))


def append_event(
    client: Any,
    keys: Keys,
    now: float,
    type: str,
    fields: Mapping[str, Any],
    maxlen: int = EVENTS_MAXLEN,
) -> None:
    """XADD one event (``type``, ``ts`` and the fields that are not None or empty) to the
    events stream on ``client`` (a connection or a pipe). Every event fsacd writes from
    Python goes through here (the Lua scripts have ``emit`` in ``_lib.lua``)."""
    data = {"type": type, "ts": _fmt(now)}
    for k, v in fields.items():
        s = _field(v)
        if s is not None and s != "":
            data[k] = s
    client.xadd(keys.events(), data, maxlen=maxlen, approximate=True)


class Store(StateBase):
    """fsacd's Redis state. ``r`` must decode responses (``decode_responses=True``)."""

    def __init__(
        self,
        r: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        controller_id: str = "",
        *,
        call_ttl: int = CALL_TTL,
        clock: Callable[[], float] = time.time,
        events_maxlen: int = EVENTS_MAXLEN,
    ) -> None:
        if not _decodes(r):
            raise ValueError("Store needs a Redis client with decode_responses=True")
        super().__init__(r, Keys(prefix))
        self.prefix = prefix
        self.controller_id = controller_id
        self.call_ttl = int(call_ttl)
        self.clock = clock
        self.events_maxlen = int(events_maxlen)
        self.scripts = Scripts(r, None if events_maxlen == EVENTS_MAXLEN else events_maxlen)

    @classmethod
    def of(cls, other: StateBase) -> Store:
        """A Store (no controller id) on the connection and prefix of another store."""
        return cls(other.r, prefix=other.keys.prefix)

    def close_idle_connections(self, idle_for: float) -> int:
        """Close this client's pooled connections idle for ``idle_for`` seconds (beyond a
        few): what a busy spell opened (fsacd/state/pool.py). Returns how many."""
        return pools.close_idle(self.r, idle_for)

    def trim_events(self, max_length: int, max_age: float = 0.0) -> None:
        """Cap the events stream: about ``max_length`` entries and, when ``max_age`` > 0,
        nothing older than ``max_age`` seconds (XTRIM MAXLEN ~ / MINID ~)."""
        key = self.keys.events()
        self.r.xtrim(key, maxlen=int(max_length), approximate=True)
        if max_age > 0:
            minid = f"{int((self.clock() - max_age) * 1000)}-0"
            self.r.xtrim(key, minid=minid, approximate=True)

    def _args(self) -> list[str]:
        """ARGV[1], ARGV[2] of every script: the key prefix and now."""
        return [self.prefix, _fmt(self.clock())]

    # --- events and wake-ups ---------------------------------------------------------------

    def event(self, type: str, pipe: Pipe = None, **fields: Any) -> None:
        """Append an event to the events stream (fields that are None are left out)."""
        append_event(pipe or self.r, self.keys, self.clock(), type, fields, self.events_maxlen)

    def wake(self, queues: Iterable[str], pipe: Pipe = None) -> None:
        """PUBLISH each queue name (once) on the wake channel: matching should run for it."""
        client = pipe or self.r
        for q in dict.fromkeys(queues):
            if q:
                client.publish(self.keys.wake_channel(), q)

    def recent_events(self, count: int = 50) -> list[dict[str, str]]:
        """The last ``count`` events, oldest first, each with its stream ``id``."""
        rows = self.r.xrevrange(self.keys.events(), count=count)
        return [{"id": eid, **fields} for eid, fields in reversed(rows)]

    def all_events(self) -> list[dict[str, str]]:
        """Every event still in the stream, oldest first, each with its ``id`` (tools)."""
        return [{"id": eid, **f} for eid, f in self.r.xrange(self.keys.events())]

    # --- pub/sub: wake-ups, offer hand-offs, control messages --------------------------------

    def subscribe(self, channels: Iterable[str]) -> Any:
        """A pub/sub connection subscribed to ``channels`` (``get_message``, ``close``);
        subscribe confirmations are not delivered."""
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*channels)
        return pubsub

    def hand_off(self, offer: Offer) -> int:
        """PUBLISH an offer to the controller owning its call (``ctl:{owner}``); returns how
        many received it (0: nobody listens there)."""
        payload = json.dumps(offer.to_dict())
        return int(self.r.publish(self.keys.ctl_channel(offer.owner), payload))

    def control(self, message: str) -> int:
        """PUBLISH a command to every controller (``reload``, ``revoke:{call}``,
        ``dial:{json}``, ``moved:{call}``); returns how many controllers received it."""
        channel = self.keys.control_channel()
        return subscribers(self.r, channel, int(self.r.publish(channel, message)))

    def claim_dial_request(self, request_id: str, ttl: int = 3600) -> bool:
        """Take a supervisor's dial request for this controller (SET NX): True for the one
        controller that got it first."""
        key = self.keys.dial_request(request_id)
        return bool(self.r.set(key, self.controller_id, nx=True, ex=ttl))

    # --- queues -----------------------------------------------------------------------------

    def sync_queues(self, queues: Mapping[str, Any] | Iterable[str]) -> None:
        """Record the configured queue names (and their strategy, for dashboards)."""
        items = queues.items() if isinstance(queues, Mapping) else ((q, None) for q in queues)
        items = [(check_id(name, "queue name"), cfg) for name, cfg in items]
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.keys.queues())
        for name, cfg in items:
            pipe.sadd(self.keys.queues(), name)
            pipe.hset(self.keys.queue(name), "name", name)
            strategy = getattr(cfg, "strategy", None)
            if strategy:
                pipe.hset(self.keys.queue(name), "strategy", strategy)
            sl = getattr(cfg, "service_level_seconds", None)
            if sl is not None:  # read by answered.lua and finish.lua (the figures)
                pipe.hset(self.keys.queue(name), "service_level_seconds", f"{float(sl):g}")
        pipe.execute()

    def configured_queues(self) -> set[str]:
        """The queue names recorded by the last ``sync_queues``."""
        return set(self.r.smembers(self.keys.queues()))

    def _check_queues(self, names: Iterable[str]) -> None:
        known = self.configured_queues()
        for name in names:
            check_id(name, "queue name")
            if name not in known:
                raise UnknownQueue(name, known)

    def head_score(self, queue: str) -> int | None:
        """The score of the queue's head call (for ordering queues fairly), or None."""
        rows = self.r.zrange(self.keys.queue_waiting(queue), 0, 0, withscores=True)
        return int(rows[0][1]) if rows else None

    def head_scores(self, queues: Iterable[str]) -> dict[str, int]:
        """:meth:`head_score` of several queues in one round trip (queues without a waiting
        call left out)."""
        names = list(dict.fromkeys(queues))
        if not names:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for q in names:
            pipe.zrange(self.keys.queue_waiting(q), 0, 0, withscores=True)
        return {q: int(rows[0][1]) for q, rows in zip(names, pipe.execute(), strict=True) if rows}

    def rr_last(self, queue: str) -> int | float | None:
        """The position offered last in the queue (round-robin pointer), or None."""
        v = _float(self.r.hget(self.keys.queue(queue), "rr_last"))
        return None if v is None else _position(v)

    def queue_view(self, name: str) -> dict[str, Any]:
        """What ``fsacd queue show`` prints: waiting calls in order, calls being served,
        members by position, counts. UnknownQueue for a name neither configured nor used."""
        now = self.clock()
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.sismember(k.queues(), name)
        pipe.zrange(k.queue_waiting(name), 0, -1)
        pipe.zrange(k.queue_members(name), 0, -1, withscores=True)
        pipe.hgetall(k.queue(name))
        configured, waiting_ids, members, qhash = pipe.execute()
        if not configured and not waiting_ids and not members:
            raise UnknownQueue(name, self.configured_queues())

        waiting = []
        for pos, call in enumerate(self._get_calls(waiting_ids), start=1):
            if call is None:
                continue
            waiting.append(
                {
                    "id": call["id"],
                    "number": call.get("number", ""),
                    "name": call.get("name", ""),
                    "priority": call["priority"],
                    "waited": max(0.0, now - (call["entered_at"] or now)),
                    "position": pos,
                    "state": call.get("state", ""),
                }
            )
        active = [
            {
                "id": c["id"],
                "state": c["state"],
                "number": c.get("number", ""),
                "agents": c["agents"],
                "agent": c.get("agent", ""),
                "since": max(0.0, now - (c["state_since"] or now)),
            }
            for c in self.list_calls(name)
            if c.get("state") in ("offering", "bridged")
        ]

        agents = self._get_agents([a for a, _ in members])
        member_rows = []
        for (agent_id, position), a in zip(members, agents, strict=True):
            if a is None:
                continue
            member_rows.append(
                {
                    "id": agent_id,
                    "position": _position(position),
                    "status": a.get("status", ""),
                    "break_reason": a.get("break_reason", ""),
                    "state": a.get("state", ""),
                    "call": a.get("call", ""),
                    "contact": a.get("contact", ""),
                    "free": _is_free(a, now),
                    "answered": a["answered"],
                    "missed": a["missed"],
                }
            )
        counts = {
            "waiting": len(waiting),
            "offering": sum(1 for c in active if c["state"] == "offering"),
            "bridged": sum(1 for c in active if c["state"] == "bridged"),
            "members": len(member_rows),
            "logged_in": sum(1 for m in member_rows if m["status"] != "logged-out"),
            "available": sum(1 for m in member_rows if m["status"] == "available"),
            "on_break": sum(1 for m in member_rows if m["status"] == "on-break"),
            "free": sum(1 for m in member_rows if m["free"]),
            "in_call": sum(1 for m in member_rows if m["state"] == "in-call"),
        }
        return {
            "name": name,
            "configured": bool(configured),
            "strategy": qhash.get("strategy", ""),
            "paused": qhash.get("paused") == "1",
            "waiting": waiting,
            "active": active,
            "members": member_rows,
            "counts": counts,
        }

    # --- agents -----------------------------------------------------------------------------

    def add_agent(
        self, agent_id: str, contact: str, queues: Mapping[str, int], pipe: Pipe = None
    ) -> bool | None:
        """Create an agent (logged out) or update its contact and queues (name -> position).

        Returns True if created, False if updated (None when queued on ``pipe``). ValueError
        for a bad id/contact/position, UnknownQueue for a queue that is not configured.
        """
        check_id(agent_id)
        check_contact(contact)
        positions: dict[str, int] = {}
        for name, pos in queues.items():
            if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= 10**9:
                raise ValueError(f"position of {agent_id!r} in {name!r} must be 0..10^9")
            positions[name] = pos
        self._check_queues(positions)
        res = self.scripts.add_agent(
            keys=[self.keys.events(), self.keys.agent(agent_id), self.keys.agents()],
            args=[*self._args(), agent_id, contact, json.dumps(positions, sort_keys=True)],
            client=pipe,
        )
        return None if pipe is not None else bool(res)

    def remove_agent(self, agent_id: str) -> None:
        """Delete an agent. UnknownAgent; AgentBusy while it is reserved/ringing/in a call."""
        check_id(agent_id)
        res = self.scripts.remove_agent(
            keys=[
                self.keys.events(),
                self.keys.agent(agent_id),
                self.keys.agents(),
                self.keys.ready(),
            ],
            args=[*self._args(), agent_id],
        )
        if res[0] == "unknown":
            raise UnknownAgent(agent_id)
        if res[0] == "busy":
            raise AgentBusy(f"agent {agent_id!r} is {res[1]} (call {res[2]}): not removed")

    def _status(self, agent_id: str, op: str, reason: str = "") -> str:
        check_id(agent_id)
        old = self.scripts.set_status(
            keys=[self.keys.events(), self.keys.agent(agent_id)],
            args=[*self._args(), agent_id, op, reason],
        )
        if old is None:
            raise UnknownAgent(agent_id)
        return old

    def login(self, agent_id: str) -> str:
        """Status available (login_at = now if it was logged out); wakes its queues.
        Returns the previous status."""
        return self._status(agent_id, "login")

    def logout(self, agent_id: str) -> str:
        """Status logged-out; a call in progress goes on, no new call is offered."""
        return self._status(agent_id, "logout")

    def set_break(self, agent_id: str, reason: str = "break") -> str:
        """Status on-break with ``reason``."""
        return self._status(agent_id, "break", _check_reason(reason))

    def set_available(self, agent_id: str) -> str:
        """Status available, no-answer streak cleared; wakes its queues."""
        return self._status(agent_id, "available")

    def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        """The agent (numbers decoded, ``queues`` as a dict), or None."""
        h = self.r.hgetall(self.keys.agent(agent_id))
        return _decode_agent(h) if h else None

    def _get_agents(self, ids: list[str]) -> list[dict[str, Any] | None]:
        pipe = self.r.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(self.keys.agent(agent_id))
        return [_decode_agent(h) if h else None for h in pipe.execute()]

    def list_agents(self) -> list[dict[str, Any]]:
        """All agents, by id."""
        ids = sorted(self.r.smembers(self.keys.agents()))
        return [a for a in self._get_agents(ids) if a is not None]

    # --- calls ------------------------------------------------------------------------------

    def enqueue(
        self, call: Mapping[str, Any], queue: str, priority: int = 0, *, parked: bool = False
    ) -> dict[str, Any]:
        """A call enters ``queue`` (or re-enters: it keeps its seq). ``call`` holds ``id`` and
        optional ``owner`` (default this controller), ``number``, ``number_raw``, ``name``
        and further string fields. Returns the call. Wakes the queue. With ``parked`` the
        call has its place but is not offered before :meth:`unpark` (a dialog comes first).

        ValueError for a bad id/priority, CallBusy while the call is offering or bridged.
        """
        call_id, keys, args = self._entry(call, queue, priority, parked)
        try:
            self.scripts.enqueue(keys=keys, args=args)
        except redis.ResponseError as exc:
            if " is " in str(exc):
                raise CallBusy(str(exc)) from None
            raise
        got = self.get_call(call_id)
        assert got is not None
        return got

    def _entry(
        self, call: Mapping[str, Any], queue: str, priority: int, parked: bool
    ) -> tuple[str, list[str], list[str]]:
        """The checked call id and the KEYS/ARGV a call's entry into ``queue`` starts with
        (``enqueue.lua``; ``arrive.lua`` adds its own after them)."""
        call_id = check_id(call.get("id"), "call id")
        check_id(queue, "queue name")
        prio = check_priority(priority)
        owner = str(call.get("owner") or self.controller_id)
        extra = {f: str(v) for f, v in call.items() if f not in _CALL_MANAGED and v is not None}
        k = self.keys
        keys = [k.events(), k.call(call_id), k.calls(), k.seq(), k.queue_waiting(queue)]
        args = [*self._args(), call_id, queue, str(prio), str(PRIORITY_MAX), owner,
                json.dumps(extra), "1" if parked else ""]  # fmt: skip
        return call_id, keys, args

    def arrive(
        self,
        call: Mapping[str, Any],
        queue: str,
        priority: int = 0,
        *,
        parked: bool = False,
        match: MatchSpec | None = None,
        batch: Batch | None = None,
    ) -> Reply[Arrival] | Arrival:
        """A caller arrives (``arrive.lua``): :meth:`enqueue` and, with ``match``, a matching
        pass of the queue in the same script, so a caller who finds a free agent has its
        offer in one round trip. A call another controller still holds (offering, bridged)
        is left alone: ``Arrival.moved_from`` names that controller (end the old stay, then
        arrive again). ``parked`` as for :meth:`enqueue` (no pass then). Queued on ``batch``
        (then a Reply is returned, read with ``.get()`` after ``batch.send()``), else sent
        now. ValueError, CallBusy as for :meth:`enqueue`."""
        call_id, keys, args = self._entry(call, queue, priority, parked)
        k = self.keys
        keys += [k.queue_members(queue), k.queue(queue), k.queue_free(queue)]
        if match is None or parked:
            args += ["", "", "0", ""]
        else:
            mkeys, margs = self._match_args(queue, match)
            keys += mkeys[5:]
            args += margs[3:]
        b = batch if batch is not None else self.round_trip()
        start = len(b)
        b.script(self.scripts.arrive, keys, args)

        def decode(raw: list[Any]) -> Arrival:
            res = raw[0]
            if isinstance(res, redis.ResponseError):
                if " is " in str(res):
                    raise CallBusy(str(res)) from None
                raise res
            if res[0] == "moved":
                return Arrival(None, [], moved_from=str(res[1]))
            h = dict(zip(res[1][::2], res[1][1::2], strict=True))
            return Arrival(_decode_call(h), _offers(queue, res[2]))

        reply = b.reply(start, decode, errors=True)
        if batch is not None:
            return reply
        b.send()
        return reply.get()

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """The call (numbers decoded, ``agents`` as a list), or None."""
        h = self.r.hgetall(self.keys.call(call_id))
        return _decode_call(h) if h else None

    def _get_calls(self, ids: list[str]) -> list[dict[str, Any] | None]:
        pipe = self.r.pipeline(transaction=False)
        for call_id in ids:
            pipe.hgetall(self.keys.call(call_id))
        return [_decode_call(h) if h else None for h in pipe.execute()]

    def list_calls(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Live calls (of ``queue`` if given), oldest first."""
        ids = list(self.r.smembers(self.keys.calls()))
        calls = [c for c in self._get_calls(ids) if c is not None]
        if queue is not None:
            calls = [c for c in calls if c.get("queue") == queue]
        return sorted(calls, key=lambda c: (c["entered_at"] or 0.0, c["id"]))

    def position(self, call_id: str) -> int | None:
        """1-based place of a waiting call in its queue, or None if it is not waiting."""
        queue = self.r.hget(self.keys.call(call_id), "queue")
        if not queue:
            return None
        rank = self.r.zrank(self.keys.queue_waiting(queue), call_id)
        return None if rank is None else rank + 1

    # --- matching ---------------------------------------------------------------------------

    def pool(self, queue: str) -> Pool:
        """One matching pass's view of ``queue`` in one round trip (``candidates.lua``): the
        head call, how many wait, the round-robin pointer, whether the queue is paused and
        snapshots of its free members (none without a waiting call or while paused).

        A snapshot only guides the strategy: ``reserve`` checks freedom again atomically.
        """
        k = self.keys
        res = self.scripts.candidates(
            keys=[k.events(), k.queue_waiting(queue), k.queue_members(queue), k.queue(queue)],
            args=self._args(),
        )
        head, waiting, rr_last, paused = res[0], int(res[1]), res[2], res[3] == "1"
        if not head:
            return Pool(None, 0, None, paused, [])
        snaps = []
        rows = res[4:]
        for i in range(0, len(rows), 7):
            agent_id, position, last_end, login_at, answered, talk, last_offer = rows[i : i + 7]
            snaps.append(
                AgentSnapshot(
                    id=agent_id,
                    position=_position(float(position)),
                    last_call_end=_float(last_end),
                    login_at=_float(login_at),
                    answered=_int(answered),
                    talk_time=_float(talk) or 0.0,
                    last_offer_at=_float(last_offer),
                )
            )
        rr = _float(rr_last)
        return Pool(head, waiting, None if rr is None else _position(rr), paused, snaps)

    def candidates(self, queue: str) -> tuple[str | None, list[AgentSnapshot]]:
        """The queue's head call (or None) and snapshots of its free members (see ``pool``)."""
        p = self.pool(queue)
        return p.head, p.free

    def reserve(
        self, queue: str, call_id: str, ordered: list[str], want: int | None = 1
    ) -> Offer | None:
        """Atomically offer the head call ``call_id`` to the first ``want`` agents of
        ``ordered`` that are still free (``want`` 0/None: all of them, ring-all).

        None if the call is no longer the head or no candidate is free (nothing changed).
        """
        if want is not None and want < 0:
            raise ValueError(f"want must be >= 0, not {want}")
        if not ordered:
            return None
        k = self.keys
        res = self.scripts.reserve(
            keys=[
                k.events(),
                k.queue_waiting(queue),
                k.call(call_id),
                k.queue_members(queue),
                k.queue(queue),
            ],
            args=[*self._args(), queue, call_id, _offer_ids(1)[0], str(want or 0), *ordered],
        )
        offers = _offers(queue, res)
        return offers[0] if offers else None

    def match(
        self,
        queue: str,
        strategy: str,
        calls: int,
        *,
        busy: Iterable[str] = (),
        skip_busy_sets: bool = False,
        rng: random.Random | None = None,
    ) -> list[Offer]:
        """One matching pass in one round trip (``match.lua``): up to ``calls`` of the calls
        heading ``queue`` now, in order, each offered to the next free agent the strategy
        prefers (ring-all: one call, every free agent), read from the queue's free index;
        agents in ``busy`` are passed over, and with ``skip_busy_sets`` those in presence's
        sets (ext_busy, unregistered, dnd: state/presence.py). [] when nothing was offered."""
        if calls < 1:
            return []
        spec = MatchSpec(strategy, calls, frozenset(busy), skip_busy_sets, rng)
        keys, args = self._match_args(queue, spec)
        return _offers(queue, self.scripts.match(keys=keys, args=args))

    def _match_args(self, queue: str, spec: MatchSpec) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of ``match.lua`` for a pass (``arrive.lua`` takes the same, after
        its own)."""
        calls = max(1, spec.calls)
        want = 0 if strategies.wants_all(spec.strategy) else 1
        if want == 0:
            calls = 1
        fractions = ""
        if spec.strategy == "random":
            gen = spec.rng or random
            fractions = ",".join(f"{gen.random():.6f}" for _ in range(calls * 2))
        k = self.keys
        keys = [
            k.events(),
            k.queue_waiting(queue),
            k.queue_members(queue),
            k.queue(queue),
            k.queue_free(queue),
            *((k.ext_busy(), k.unregistered(), k.dnd()) if spec.skip_busy_sets else ()),
        ]
        args = [
            *self._args(),
            queue,
            spec.strategy,
            ",".join(_offer_ids(calls, spec.ids)),
            str(want),
            fractions,
            *sorted(spec.busy),
        ]
        return keys, args

    def mark_ringing(self, offer: Offer, agents: Iterable[str] | None = None) -> bool:
        """Agents of the offer (all, or ``agents``) reserved -> ringing. False if the offer
        is stale (the call is no longer offering it)."""
        return self.ring(offer, agents) is not None

    def ring(
        self,
        offer: Offer,
        agents: Iterable[str] | None = None,
        *,
        fields: Mapping[str, str] | None = None,
        batch: Batch | None = None,
    ) -> Reply[dict[str, str] | None] | dict[str, str] | None:
        """:meth:`mark_ringing` that also reads the agents' contacts in the same round trip:
        agent id -> contact ('' when unknown), or None if the offer is stale. ``fields``
        (plain call fields such as ``legs``) are written with it while the offer is live.
        Queued on ``batch`` (then a Reply is returned, read after ``batch.send()``)."""
        ids = list(offer.agents if agents is None else agents)
        b = batch if batch is not None else self.round_trip()
        start = len(b)
        b.script(
            self.scripts.mark_ringing,
            [self.keys.events(), self.keys.call(offer.call_id)],
            [*self._args(), offer.call_id, offer.offer_id,
             json.dumps(dict(fields)) if fields else "", *ids],
        )  # fmt: skip

        def decode(raw: list[Any]) -> dict[str, str] | None:
            res = raw[0]
            if not res[0]:
                return None
            return dict(zip(ids, res[2:], strict=True))

        reply = b.reply(start, decode)
        if batch is not None:
            return reply
        b.send()
        return reply.get()

    def answered(self, offer: Offer, agent_id: str, also: Reads | None = None) -> bool:
        """``agent_id`` answered: it goes in-call, the call is bridged, the offer's other
        agents are released without penalty. False (nothing changed) for a stale offer.
        ``also``: reads sent in the same round trip (the screen pop's)."""
        res = script_with_reads(
            self.r,
            self.scripts.answered,
            [self.keys.events(), self.keys.call(offer.call_id)],
            [*self._args(), offer.call_id, offer.offer_id, agent_id],
            also,
        )
        return bool(res)

    def claim_bridged(self, offer: Offer, agent_id: str) -> bool:
        """FreeSWITCH bridged the call to ``agent_id`` although :meth:`answered` refused the
        offer as stale: the records are made to say so (agent in-call, call bridged), so a
        talking agent is never shown free. False when the agent is in-call for another call
        or unknown."""
        res = self.scripts.claim_bridged(
            keys=[self.keys.events(), self.keys.call(offer.call_id)],
            args=[*self._args(), offer.call_id, offer.offer_id, agent_id, self.controller_id],
        )
        return bool(res)

    def _release(
        self, offer: Offer, results: Mapping[str, str], rules: QueueRules, reason: str
    ) -> bool:
        pairs: list[str] = []
        for agent_id in dict.fromkeys([*offer.agents, *results]):
            pairs += [agent_id, results.get(agent_id) or "none"]
        requeued, _ = self.scripts.release_offer(
            keys=[self.keys.events(), self.keys.call(offer.call_id)],
            args=[
                *self._args(),
                offer.call_id,
                offer.offer_id,
                reason,
                str(rules.max_no_answer),
                repr(float(rules.no_answer_delay)),
                repr(float(rules.busy_delay)),
                repr(float(rules.reject_delay)),
                *pairs,
            ],
        )
        return bool(requeued)

    def offer_failed(self, offer: Offer, results: Mapping[str, str], rules: Any = None) -> bool:
        """Nobody answered: each agent released with its outcome (see fsacd.core.outcomes) under
        ``rules`` (QueueRules or a queue config), the call back in its place in the queue.
        Returns True if the call was requeued (False: it had already moved on)."""
        return self._release(offer, results, QueueRules.of(rules), "failed")

    def cancel_offer(self, offer: Offer) -> bool:
        """Withdraw an offer: agents released without penalty, the call back in its place."""
        return self._release(offer, {}, QueueRules(), "cancel")

    def move_call(self, call_id: str, to_queue: str, reason: str = "overflow") -> bool:
        """Overflow: a waiting call moves to ``to_queue`` keeping priority and seq. False if
        the call is not waiting (being offered, bridged, ended)."""
        check_id(to_queue, "queue name")
        res = self.scripts.move_call(
            keys=[self.keys.events(), self.keys.call(call_id), self.keys.queue_waiting(to_queue)],
            args=[*self._args(), call_id, to_queue, reason],
        )
        return bool(res)

    # --- supervisors: pause a queue, move a waiting call, change its priority ------------

    def set_queue_paused(self, queue: str, paused: bool, by: str = "") -> bool:
        """Pause (``paused`` = "1" in ``queue:{name}``: no offers) or resume a queue, with an
        event ``queue-paused`` / ``queue-resumed``; resuming wakes it. Returns the previous
        state (True: it was paused)."""
        self._check_queues([queue])
        key = self.keys.queue(queue)
        pipe = self.r.pipeline(transaction=True)
        pipe.hget(key, "paused")
        if paused:
            pipe.hset(key, "paused", "1")
        else:
            pipe.hdel(key, "paused")
        self.event("queue-paused" if paused else "queue-resumed", pipe, queue=queue, by=by)
        if not paused:
            self.wake([queue], pipe)
        was = pipe.execute()[0]
        return was == "1"

    def queue_paused(self, queue: str) -> bool:
        """True while the queue is paused (``fsacd queue pause``)."""
        return self.r.hget(self.keys.queue(queue), "paused") == "1"

    def _supervise(self, op: str, call_id: str, arg: str, by: str) -> tuple[bool, str]:
        ok, info = self.scripts.supervise_call(
            keys=[self.keys.events(), self.keys.call(check_id(call_id, "call id"))],
            args=[*self._args(), op, call_id, arg, str(PRIORITY_MAX), by],
        )
        return bool(ok), str(info or "")

    def supervisor_move(self, call_id: str, to_queue: str, by: str = "") -> tuple[bool, str]:
        """A waiting call moves to ``to_queue`` keeping its place in the order (priority and
        arrival): ``(True, old queue)``, or ``(False, why)`` when it is not waiting in a
        queue (``unknown``, its state, ``not-queued``, ``already-there``)."""
        self._check_queues([to_queue])
        ok, info = self._supervise("move", call_id, to_queue, by)
        if ok:  # the controller holding the caller switches to the new queue's hold music
            self.control(f"moved:{call_id}")
        return ok, info

    def supervisor_priority(self, call_id: str, priority: int, by: str = "") -> tuple[bool, str]:
        """A waiting call gets ``priority`` (same arrival, so it stays behind earlier calls of
        that priority): ``(True, old priority)`` or ``(False, why)`` as for
        :meth:`supervisor_move`."""
        return self._supervise("priority", call_id, str(check_priority(priority)), by)

    def waiting_ids(self, queue: str) -> list[str]:
        """The ids of the calls waiting in ``queue``, in the order they will be served."""
        return list(self.r.zrange(self.keys.queue_waiting(queue), 0, -1))

    def call_events(self, call_id: str, since: float | None = None, scan: int = 20000) -> list:
        """The events of one call, oldest first, each with its stream ``id``: read from the
        events stream from ``since`` (default: the call's ``entered_at``, less a minute),
        at most ``scan`` entries."""
        if since is None:
            call = self.get_call(call_id)
            since = (call or {}).get("entered_at") or (self.clock() - 3600)
        start = f"{max(0, int((since - 60) * 1000))}-0"
        out: list[dict[str, str]] = []
        seen = 0
        while seen < scan:
            rows = self.r.xrange(self.keys.events(), min=start, count=min(1000, scan - seen))
            if not rows:
                break
            seen += len(rows)
            out += [{"id": eid, **f} for eid, f in rows if f.get("call") == call_id]
            ms, _, n = rows[-1][0].partition("-")
            start = f"{ms}-{int(n) + 1}"
        return out

    def park(self, call_id: str) -> bool:
        """A waiting caller enters a dialog: out of the queue's ``waiting`` zset (nobody is
        reserved for it meanwhile), place kept. False if it is not waiting."""
        return self._park(call_id, "park")

    def unpark(self, call_id: str) -> bool:
        """The dialog is over: back in its place in the queue (woken). False if not parked."""
        return self._park(call_id, "unpark")

    def _park(self, call_id: str, op: str) -> bool:
        res = self.scripts.park(
            keys=[self.keys.events(), self.keys.call(call_id)],
            args=[*self._args(), call_id, op],
        )
        return bool(res)

    def _finish(
        self, call_id: str, outcome: str, wrap_up: float, etype: str, also: Reads | None = None
    ) -> bool:
        if not math.isfinite(wrap_up) or wrap_up < 0:
            raise ValueError(f"wrap_up must be >= 0, not {wrap_up!r}")
        k = self.keys
        res = script_with_reads(
            self.r,
            self.scripts.finish,
            [k.events(), k.call(call_id), k.calls(), k.ready()],
            [*self._args(), call_id, outcome, repr(float(wrap_up)), self.call_ttl, etype],
            also,
        )
        return bool(res)

    def finish_call(
        self, call_id: str, outcome: str, wrap_up: float = 0.0, also: Reads | None = None
    ) -> bool:
        """The call is over: releases all it holds (the agent in-call goes to wrap-up for
        ``wrap_up`` seconds), the call ends and expires. Idempotent: True the first time.
        ``also``: reads sent in the same round trip (the screen pop's)."""
        return self._finish(call_id, outcome, wrap_up, "call-ended", also)

    def abandon(
        self, call_id: str, outcome: str = "abandoned", also: Reads | None = None
    ) -> bool:
        """The caller hung up before being served: like finish_call, event call-abandoned."""
        return self._finish(call_id, outcome, 0.0, "call-abandoned", also)

    def free_due_agents(self) -> list[str]:
        """Agents whose ready_at has come (wrap-up -> idle, delays over); returns and wakes
        their queues."""
        return list(
            self.scripts.free_due(keys=[self.keys.events(), self.keys.ready()], args=self._args())
        )

    def next_due(self) -> float | None:
        """The earliest pending ready_at (when to call free_due_agents next), or None."""
        rows = self.r.zrange(self.keys.ready(), 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None

    def staffed(self, queue: str) -> int:
        """Member agents logged in and available (not logged out, not on break)."""
        ids = self.r.zrange(self.keys.queue_members(queue), 0, -1)
        if not ids:
            return 0
        pipe = self.r.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hget(self.keys.agent(agent_id), "status")
        return sum(1 for status in pipe.execute() if status == "available")

    def waiting_count(self, queue: str) -> int:
        """Callers waiting in the queue now."""
        return int(self.r.zcard(self.keys.queue_waiting(queue)))

    def record_handle_time(self, queue: str, seconds: float, pipe: Pipe = None) -> None:
        """One answered call's handle time (talk + wrap-up): the newest of the queue's last
        :data:`HANDLE_TIMES_KEPT` (for the estimated-wait announcement)."""
        key = self.keys.queue_handle_times(queue)
        p = pipe if pipe is not None else self.r.pipeline(transaction=False)
        p.lpush(key, f"{seconds:.1f}")
        p.ltrim(key, 0, HANDLE_TIMES_KEPT - 1)
        if pipe is None:
            p.execute()

    def handle_times(self, queue: str) -> list[float]:
        """The queue's recent handle times, seconds, newest first."""
        return [float(t) for t in self.r.lrange(self.keys.queue_handle_times(queue), 0, -1)]

    # --- controllers and recovery (fsacd/acd/recovery.py) ---------------------------------------

    def renew_lease(self, ttl: float, pipe: Pipe = None) -> None:
        """This controller is alive for ``ttl`` more seconds."""
        (pipe or self.r).set(
            self.keys.controller(self.controller_id), _fmt(self.clock()), px=int(ttl * 1000)
        )

    def drop_lease(self) -> None:
        self.r.delete(self.keys.controller(self.controller_id))

    def alive(self, controller_ids: Iterable[str]) -> set[str]:
        """Which of these controllers hold a live lease."""
        ids = [c for c in dict.fromkeys(controller_ids) if c]
        if not ids:
            return set()
        found = self.r.mget([self.keys.controller(c) for c in ids])
        return {c for c, v in zip(ids, found, strict=True) if v is not None}

    def set_call_fields(self, call_id: str, pipe: Pipe = None, **fields: str) -> None:
        """Plain informational fields of a live call (e.g. ``legs``: leg uuid:agent pairs)."""
        (pipe or self.r).hset(self.keys.call(call_id), mapping=fields)

    def set_agent_fields(self, agent_id: str, /, pipe: Pipe = None, **fields: Any) -> None:
        """Plain fields of an agent that no script reads (e.g. recording consent), or a
        counter reset outside an offer (``no_answer_streak``)."""
        check_id(agent_id)
        (pipe or self.r).hset(self.keys.agent(agent_id), mapping=fields)

    def adopt_call(self, call_id: str, dead_owner: str) -> bool:
        """Take over a call of a dead controller (only one survivor wins)."""
        res = self.scripts.adopt(
            keys=[self.keys.events(), self.keys.call(call_id)],
            args=[*self._args(), call_id, dead_owner, self.controller_id],
        )
        return bool(res)

    def release_agent(self, agent_id: str, call_id: str, reason: str) -> bool:
        """Free an agent still holding ``call_id`` (reserved, ringing or in-call)."""
        res = self.scripts.release_agent(
            keys=[self.keys.events(), self.keys.agent(agent_id)],
            args=[*self._args(), agent_id, call_id, reason],
        )
        return bool(res)

    # --- callbacks (fsacd/acd/callback.py, fsacd/state/lua/callback.lua) ---

    def _callback(self, op: str, call_id: str, *args: str) -> list[Any]:
        return self.scripts.callback(
            keys=[self.keys.events(), self.keys.call(call_id)],
            args=[*self._args(), op, call_id, *args],
        )

    def callback_register(
        self, call_id: str, number: str, *, show_number: bool, owner: str | None = None
    ) -> tuple[bool, str]:
        """The waiting caller asked to be called back on ``number`` and hangs up: the call
        keeps its place (an offer still on its way is withdrawn without penalty). Returns
        ``(True, position)`` or ``(False, state)`` when the call is not waiting/offering.
        ``show_number=False`` keeps the number out of the event (hidden callers)."""
        ok, info = self._callback(
            "register",
            check_id(call_id, "call id"),
            number,
            owner or self.controller_id,
            "1" if show_number else "0",
        )
        return bool(ok), str(info or "")

    def callback_schedule(
        self,
        call_id: str,
        offer: Offer | None,
        due: float,
        outcome: str,
        *,
        count: bool,
        answered_by: str = "",
    ) -> tuple[bool, str]:
        """A callback try failed (or could not be made): the offer's agents are released
        without penalty, the call leaves ``waiting`` until :meth:`callback_requeue` at
        ``due``. ``count`` adds one to ``callback_tries``. Returns ``(True, tries)`` or
        ``(False, state)`` for a stale offer / a call that is not waiting."""
        ok, info = self._callback(
            "schedule",
            call_id,
            offer.offer_id if offer is not None else "",
            _fmt(due),
            outcome,
            "1" if count else "0",
            answered_by,
        )
        return bool(ok), str(info or "")

    def callback_requeue(self, call_id: str) -> bool:
        """A scheduled callback goes back into its queue's ``waiting`` with its old score."""
        ok, _ = self._callback("requeue", call_id)
        return bool(ok)

    def callback_calls(self) -> list[dict[str, Any]]:
        """Live calls that are callbacks (``callback`` = 1), oldest first."""
        return [c for c in self.list_calls() if c.get("callback") == "1"]


def _offer_ids(n: int, base: str | None = None) -> list[str]:
    """``n`` new offer ids (32 hex digits, unique: a random prefix and a counter)."""
    base = base or uuid.uuid4().hex[:24]
    return [f"{base}{i:08x}" for i in range(n)]


def _offers(queue: str, res: list[Any] | None) -> list[Offer]:
    """Decode the flat offer list of reserve.lua / match.lua."""
    offers: list[Offer] = []
    i = 0
    while res and i < len(res):
        offer_id, call_id, owner, n = res[i], res[i + 1], res[i + 2], int(res[i + 3])
        agents = list(res[i + 4 : i + 4 + n])
        offers.append(
            Offer(offer_id=offer_id, call_id=call_id, queue=queue, agents=agents, owner=owner)
        )
        i += 4 + n
    return offers


def _is_free(a: Mapping[str, Any], now: float) -> bool:
    """The free test of reserve.lua, on a (raw or decoded) agent row; membership aside."""
    if a.get("status") != "available":
        return False
    if a.get("state") not in ("idle", "wrap-up"):
        return False
    ready = a.get("ready_at")
    ready = _float(ready) if isinstance(ready, str) else ready
    return (ready or 0.0) <= now
