"""The figures' Redis side: counters the Lua scripts keep, read for a period, and the live
state of queues and agents. The wallboard, ``/metrics``, ``fsacd stats`` and ``fsacd watch``
all read through here (definitions in :mod:`fsacd.core.figures`; keys in docs/redis.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from fsacd.core import figures as fig
from fsacd.state.base import StateBase
from fsacd.state.keys import Keys
from fsacd.state.store import Store


class StatsStore(StateBase):
    """Read-only: counters by period, running totals, live gauges, a whole snapshot.

    ``cache_closed`` > 0 (the wallboard, ``fsacd watch``): the sum of the buckets that closed
    before the previous interval is re-read at most every that many seconds. New counts always
    go to the current interval, so only time in state spanning intervals (split when the
    activity ends) can show up that much later.
    """

    def __init__(
        self,
        r: Any,
        keys: Keys | None = None,
        clock: Callable[[], float] = time.time,
        cache_closed: float = 0.0,
    ) -> None:
        super().__init__(r, keys)
        self.clock = clock
        self.cache_closed = cache_closed
        self._closed: dict[tuple[str, str], tuple[tuple[str, ...], float, dict]] = {}
        self._store: Store | None = None

    def _agents(self) -> list[dict[str, Any]]:
        """Every agent, decoded as :meth:`Store.list_agents` does."""
        if self._store is None:
            self._store = Store.of(self)
        return self._store.list_agents()

    def caching(self, seconds: float) -> StatsStore:
        """This store with ``cache_closed = seconds`` (for screens that refresh often)."""
        return StatsStore(self.r, self.keys, self.clock, cache_closed=seconds)

    def _bucket_keys(self, kind: str, name: str, spans: list[tuple[str, str]]) -> list[str]:
        k = self.keys
        out = []
        for what, label in spans:
            if what == "day":
                out.append(k.stats_day(kind, name, label))
            else:
                out.append(k.stats_slot(kind, name, label))
        return out

    def counters(self, kind: str, names: Iterable[str], start: float) -> dict[str, dict]:
        """Summed counters per name (``kind`` ``queue`` or ``agent``) from ``start`` (rounded
        down to its 15-minute interval) to now; one round trip."""
        now = self.clock()
        mono = time.monotonic()
        names = list(names)
        pipe = self.r.pipeline(transaction=False)
        plan: list[tuple[str, int, dict | None, tuple[str, ...]]] = []
        spans = fig.buckets(start, now)
        for name in names:
            keys = self._bucket_keys(kind, name, spans)
            closed: tuple[str, ...] = ()
            cached = None
            if self.cache_closed > 0 and len(keys) > 2:
                closed, keys = tuple(keys[:-2]), keys[-2:]
                hit = self._closed.get((kind, name))
                if hit and hit[0] == closed and mono - hit[1] < self.cache_closed:
                    cached = hit[2]
                else:
                    keys = [*closed, *keys]
            plan.append((name, len(keys), cached, closed))
            for key in keys:
                pipe.hgetall(key)
        rows = pipe.execute()
        out, i = {}, 0
        for name, n, cached, closed in plan:
            got = rows[i : i + n]
            i += n
            if closed and cached is None:
                cached = fig.add_counters(got[: len(closed)])
                self._closed[(kind, name)] = (closed, mono, cached)
                got = got[len(closed) :]
            out[name] = fig.add_counters([*([cached] if cached else []), *got])
        return out

    def totals(self, kind: str, names: Iterable[str]) -> dict[str, dict[str, float]]:
        """Running totals (never reset) per name: for Prometheus counters."""
        names = list(names)
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.stats_total(kind, name))
        return {n: fig.add_counters([row]) for n, row in zip(names, pipe.execute(), strict=True)}

    def queue_names(self) -> list[str]:
        """The configured queues (``queues`` set), sorted."""
        return sorted(self.r.smembers(self.keys.queues()))

    def live(self, queues: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Per queue now: ``waiting`` (calls waiting or ringing), ``longest_wait`` (s, of the
        longest waiting one), ``talking``; straight from the live keys."""
        now = self.clock()
        queues = list(queues)
        pipe = self.r.pipeline(transaction=False)
        for q in queues:
            pipe.zcard(self.keys.queue_inqueue(q))
            pipe.zrange(self.keys.queue_inqueue(q), 0, 0, withscores=True)
            pipe.hget(self.keys.queue_live(q), "talking")
        rows = pipe.execute()
        out = {}
        for i, q in enumerate(queues):
            n, head, talking = rows[3 * i : 3 * i + 3]
            longest = max(0.0, now - float(head[0][1])) if head else 0.0
            out[q] = {"waiting": int(n), "longest_wait": round(longest, 1),
                      "talking": max(0, int(talking or 0))}
        return out

    def agent_states(self) -> list[str]:
        """What each agent is doing now (:func:`fsacd.core.figures.activity`)."""
        return [
            fig.activity(a.get("status", ""), a.get("state", ""))
            for a in self._agents()
        ]

    def queue_figures(self, queues: Iterable[str], start: float) -> dict[str, fig.QueueFigures]:
        return {q: fig.queue_figures(c) for q, c in self.counters("queue", queues, start).items()}

    def agent_figures(
        self, agents: list[dict[str, Any]], start: float
    ) -> dict[str, fig.AgentFigures]:
        """Figures of agents (as :meth:`Store.list_agents` gives them), the activity still
        going on included in time in state."""
        now = self.clock()
        counters = self.counters("agent", [a["id"] for a in agents], start)
        out = {}
        for a in agents:
            since = a.get("tis_since")
            live = None
            if a.get("tis_state") and since:
                live = (a["tis_state"], now - max(float(since), start))
            out[a["id"]] = fig.agent_figures(counters[a["id"]], live)
        return out

    def snapshot(self, start: float, queues: Iterable[str] = ()) -> dict[str, Any]:
        """Everything a wallboard shows: per queue (those in Redis' ``queues`` set and
        ``queues``) the live gauges and the figures since ``start``, per agent its status,
        state, time in state and figures; agents by state."""
        now = self.clock()
        names = sorted(set(self.queue_names()) | set(queues))
        live = self.live(names)
        qfig = self.queue_figures(names, start)
        agents = self._agents()
        afig = self.agent_figures(agents, start)
        queues = []
        for q in names:
            today = qfig[q].to_dict()
            today["longest_wait_today"] = today.pop("longest_wait")
            queues.append({"name": q, **today, **live[q]})
        rows = []
        by_state: dict[str, int] = {a: 0 for a in fig.ACTIVITIES}
        for a in agents:
            act = fig.activity(a.get("status", ""), a.get("state", ""))
            by_state[act] = by_state.get(act, 0) + 1
            since = a.get("state_since") or 0
            if act in ("on-break", "logged-out", "idle") and a.get("tis_since"):
                since = float(a["tis_since"])
            rows.append(
                {
                    "id": a["id"],
                    "status": a.get("status", ""),
                    "state": a.get("state", ""),
                    "activity": act,
                    "break_reason": a.get("break_reason") or "",
                    "call": a.get("call") or "",
                    "in_state": round(max(0.0, now - float(since or now)), 1),
                    "queues": sorted(a.get("queues") or {}),
                    **afig[a["id"]].to_dict(),
                }
            )
        return {"ts": round(now, 3), "since": start, "queues": queues, "agents": rows,
                "agents_by_state": by_state}
