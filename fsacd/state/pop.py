"""The Redis side of fsacd/pop/screen.py: prepared pops and their delivery to agents.

``pop:call:{id}`` (hash with TTL): the pop prepared while the caller waits and the state of
its offers. ``pop:agent:{id}``: a capped stream of the agent's pops, and a pub/sub channel of
the same name carrying the same JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fsacd.state.base import Batch, Pipe, Reply, StateBase

#: Entries kept in each agent's pop stream (approximate trim).
STREAM_MAXLEN = 1000
#: An agent's pop stream expires this long after the last pop (removed agents leave nothing).
STREAM_TTL = 7 * 86400
#: A prepared pop expires this long after it was last touched (the call's end deletes it).
POP_TTL = 86400


def _fmt(x: float) -> str:
    return f"{x:.3f}"


class PopReads:
    """The pop hash and the call's current queue, read along with another step; ``result``
    is None until the replies came (or when a read failed)."""

    def __init__(self, db: PopStore, call_id: str) -> None:
        self.db = db
        self.call_id = call_id
        self.result: tuple[dict[str, str], str | None] | None = None

    def queue(self, pipe: Pipe) -> None:
        pipe.hgetall(self.db.keys.call_pop(self.call_id))
        pipe.hget(self.db.keys.call(self.call_id), "queue")

    def take(self, replies: Sequence[Any]) -> None:
        h, queue = replies
        ok = not isinstance(h, Exception) and not isinstance(queue, Exception)
        self.result = (h, queue) if ok else None


class PopStore(StateBase):
    """Prepared pops by call, pop streams and channels by agent."""

    # --- the prepared pop of a call ---------------------------------------------------------

    def save_prepared(
        self, call_id: str, data: str, queue: str, hist: str, started: float
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """Store the prepared pop (JSON ``data``), the queue and the history list it goes to;
        ``started`` is kept from the first time. One transaction, which also returns the
        offer state: ``(agents, answered_by, offered_at, waited)`` (None where unset)."""
        key = self.keys.call_pop(call_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={"data": data, "queue": queue, "hist": hist})
        pipe.hsetnx(key, "started", _fmt(started))
        pipe.expire(key, POP_TTL)
        pipe.hmget(key, "agents", "answered_by", "offered_at", "waited")
        agents, answered_by, offered_at, waited = pipe.execute()[-1]
        return agents, answered_by, offered_at, waited

    def save(
        self, call_id: str, data: str, queue: str, hist: str, started: float, pipe: Pipe = None
    ) -> None:
        """:meth:`save_prepared` without reading the offer state back (the call's own
        greenlet prepared the pop before any offer: there is none to complete)."""
        key = self.keys.call_pop(call_id)
        p = pipe if pipe is not None else self.r.pipeline(transaction=True)
        p.hset(key, mapping={"data": data, "queue": queue, "hist": hist})
        p.hsetnx(key, "started", _fmt(started))
        p.expire(key, POP_TTL)
        if pipe is None:
            p.execute()

    def agents_in(self, batch: Batch, call_id: str) -> Reply[str]:
        """The agents the call's pop was last offered to (``''`` for none), on ``batch``."""
        start = len(batch)
        batch.pipe.hget(self.keys.call_pop(call_id), "agents")
        return batch.reply(start, lambda raw: raw[0] or "")

    def prepared(self, call_id: str) -> str | None:
        """The JSON of the call's prepared pop, or None."""
        return self.r.hget(self.keys.call_pop(call_id), "data")

    def reads(self, call_id: str) -> PopReads:
        """:meth:`load` as reads to send with another step (``also=`` of ``Store.answered``,
        ``Store.finish_call``)."""
        return PopReads(self, call_id)

    def load(self, call_id: str) -> tuple[dict[str, str], str | None]:
        """The call's pop hash (``{}`` if none) and the call's current queue, one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.keys.call_pop(call_id))
        pipe.hget(self.keys.call(call_id), "queue")
        h, queue = pipe.execute()
        return h, queue

    def offered(
        self,
        call_id: str,
        agents: Sequence[str],
        offered_at: float,
        waited: float,
        queue: str,
        pipe: Pipe = None,
    ) -> None:
        """The call is now offered to ``agents`` (after ``waited`` seconds in the queue)."""
        key = self.keys.call_pop(call_id)
        p = pipe if pipe is not None else self.r.pipeline(transaction=False)
        p.hset(
            key,
            mapping={
                "agents": ",".join(agents),
                "offered_at": _fmt(offered_at),
                "waited": _fmt(float(waited)),
                "queue": queue,
            },
        )
        p.expire(key, POP_TTL)
        if pipe is None:
            p.execute()

    def answered(self, call_id: str, agent_id: str, pipe: Pipe = None) -> None:
        """``agent_id`` answered the call."""
        key = self.keys.call_pop(call_id)
        p = pipe if pipe is not None else self.r.pipeline(transaction=False)
        p.hset(key, mapping={"agents": agent_id, "answered_by": agent_id})
        p.expire(key, POP_TTL)
        if pipe is None:
            p.execute()

    def set_agents(self, call_id: str, agents: Sequence[str], pipe: Pipe = None) -> None:
        """The agents the call is still offered to."""
        (pipe or self.r).hset(self.keys.call_pop(call_id), "agents", ",".join(agents))

    def drop(self, call_id: str, pipe: Pipe = None) -> None:
        """The call ended: its prepared pop goes."""
        (pipe or self.r).delete(self.keys.call_pop(call_id))

    # --- delivery to agents -----------------------------------------------------------------

    def send_pop(
        self, agent_id: str, stage: str, call_id: str, pop: str, pipe: Pipe = None
    ) -> None:
        """One pop (JSON ``pop``) to the agent: PUBLISH on its channel, XADD to its stream
        (capped, expiring)."""
        key = self.keys.agent_pops(agent_id)
        p = pipe if pipe is not None else self.r.pipeline(transaction=False)
        p.publish(key, pop)
        p.xadd(
            key,
            {"stage": stage, "call": call_id, "pop": pop},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        p.expire(key, STREAM_TTL)
        if pipe is None:
            p.execute()

    def last_pop_id(self, agent_id: str) -> str:
        """The stream id of the agent's newest pop (``0-0`` if none): read after it."""
        newest = self.r.xrevrange(self.keys.agent_pops(agent_id), count=1)
        return newest[0][0] if newest else "0-0"

    def latest_pop(self, agent_id: str, call_id: str, look_back: int = 20) -> str | None:
        """The JSON of the agent's newest pop for ``call_id`` (its own stream), or None."""
        for _eid, fields in self.r.xrevrange(self.keys.agent_pops(agent_id), count=look_back):
            if fields.get("call") == call_id and fields.get("pop"):
                return fields["pop"]
        return None

    def read_pops(
        self, agent_id: str, after: str, *, count: int = 100, block_ms: int = 1000
    ) -> list[tuple[str, dict[str, Any]]]:
        """The agent's pops after stream id ``after`` (``(id, fields)``), waiting up to
        ``block_ms`` for the first one."""
        res = self.r.xread({self.keys.agent_pops(agent_id): after}, count=count, block=block_ms)
        return [entry for _stream, entries in res or [] for entry in entries]
