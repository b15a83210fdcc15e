"""Checks over the Redis event stream that must hold whatever the controllers did."""

from __future__ import annotations

import redis

from fsacd.state.keys import Keys


def events(r: redis.Redis, prefix: str = "fsacd:") -> list[dict]:
    return [f for _, f in r.xrange(Keys(prefix).events())]


def double_bookings(evs: list[dict]) -> list[str]:
    """An agent reserved while it still held another call (never allowed)."""
    holding: dict[str, str] = {}
    problems = []
    for e in evs:
        if e.get("type") != "agent-state":
            continue
        agent, state, call = e["agent"], e["state"], e.get("call", "")
        if state == "reserved":
            if agent in holding and holding[agent] != call:
                problems.append(f"{agent} reserved for {call} while holding {holding[agent]}")
            holding[agent] = call
        elif state in ("idle", "wrap-up"):
            holding.pop(agent, None)
    return problems


def order_violations(evs: list[dict], scores: dict[str, int]) -> list[str]:
    """A call offered while a call with a better (lower) score waited in the same queue."""
    waiting: dict[str, dict[str, int]] = {}
    where: dict[str, str] = {}
    problems = []
    for e in evs:
        t = e.get("type")
        call = e.get("call", "")
        if t in ("call-entered", "call-requeued"):
            q = e.get("queue", "")
            waiting.setdefault(q, {})[call] = scores.get(call, 0)
            where[call] = q
        elif t == "call-overflowed":
            old = where.get(call)
            if old:
                waiting.get(old, {}).pop(call, None)
            q = e.get("to") or e.get("queue", "")
            waiting.setdefault(q, {})[call] = scores.get(call, 0)
            where[call] = q
        elif t == "call-offered":
            q = e.get("queue", "")
            w = waiting.get(q, {})
            mine = w.pop(call, scores.get(call, 0))
            better = [c for c, s in w.items() if s < mine]
            if better:
                problems.append(f"{call} offered before {better[:3]} in {q}")
        elif t in ("call-ended", "call-abandoned"):
            q = where.get(call)
            if q:
                waiting.get(q, {}).pop(call, None)
    return problems
