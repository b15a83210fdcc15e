"""Closing the Redis connections a busy spell opened and nobody uses any more.

A client's pool opens connections on demand, up to ``POOL_SIZE`` (512), and keeps every one
for the life of the process: a thousand callers hanging up at once open a hundred or two,
each about 40 KiB in the controller (its read buffer, parser, socket) and a client in Redis.
Kept after the spell, they also pin the memory arenas they were made in, so the process's
RSS never comes back to its baseline (docs/performance.md). :func:`close_idle` closes the
idle ones unused for a while; the pool opens new ones when it needs them again.

It reaches into redis-py's pools (``BlockingConnectionPool``'s LIFO queue, ``ConnectionPool``'s
list of available connections), checked by tests/test_pool.py against the installed version;
a pool of another shape is left alone.
"""

from __future__ import annotations

import queue
import time
from typing import Any

#: Idle connections kept whatever their age (the controller's loops use a few at once).
KEEP_IDLE = 8


def _last_used(conn: Any, now: float) -> float:
    """When the connection last read a reply (redis-py moves ``next_health_check`` to a
    reply's time + ``health_check_interval``); ``now`` when that cannot be told."""
    interval = getattr(conn, "health_check_interval", 0) or 0
    due = getattr(conn, "next_health_check", None)
    if not interval or not isinstance(due, (int, float)) or due <= 0:
        return now
    return due - interval


def close_idle(client: Any, idle_for: float, keep: int = KEEP_IDLE) -> int:
    """Close the pool's idle connections unused for ``idle_for`` seconds, beyond the ``keep``
    used most recently; returns how many were closed. Never waits, never touches a
    connection in use."""
    pool = getattr(client, "connection_pool", None)
    now = time.monotonic()
    closed: list[Any] = []
    slots = getattr(pool, "pool", None)
    if hasattr(slots, "get_nowait") and isinstance(getattr(pool, "_connections", None), list):
        closed = _from_blocking(pool, slots, now, idle_for, keep)
    elif isinstance(getattr(pool, "_available_connections", None), list):
        closed = _from_plain(pool, now, idle_for, keep)
    for conn in closed:
        try:
            conn.disconnect()
        except Exception:  # noqa: BLE001 - closing a socket that is gone already
            pass
    return len(closed)


def _from_blocking(pool: Any, slots: Any, now: float, idle_for: float, keep: int) -> list[Any]:
    """``BlockingConnectionPool``: a LIFO queue of idle connections and ``None`` placeholders
    (a placeholder taken makes a new connection). Closed ones become placeholders again."""
    taken: list[Any] = []
    while True:
        try:
            taken.append(slots.get_nowait())
        except queue.Empty:
            break
    idle = [c for c in taken if c is not None]  # most recently released first
    placeholders = len(taken) - len(idle)
    closed = _choose(pool._connections, idle, now, idle_for, keep)
    gone = set(map(id, closed))
    pool._connections[:] = [c for c in pool._connections if id(c) not in gone]
    # placeholders at the bottom, the connections kept back on top in their order
    for _ in range(placeholders + len(closed)):
        slots.put_nowait(None)
    for conn in reversed(idle):
        if id(conn) not in gone:
            slots.put_nowait(conn)
    return closed


def _choose(
    created: list[Any], idle: list[Any], now: float, idle_for: float, keep: int
) -> list[Any]:
    """The idle connections to close: unused for ``idle_for``, the newest first, keeping the
    ``keep`` oldest. The oldest were made at start-up; one made in the middle of a busy spell
    sits among that spell's freed memory and would keep it from going back to the system."""
    age = {id(c): i for i, c in enumerate(created)}
    by_age = sorted(idle, key=lambda c: age.get(id(c), len(created)))
    return [c for c in by_age[keep:] if now - _last_used(c, now) >= idle_for]


def _from_plain(pool: Any, now: float, idle_for: float, keep: int) -> list[Any]:
    """``ConnectionPool`` (Sentinel's too): a list of idle connections, taken from its end
    (no record of their age: the list's order, oldest released first, stands in for it)."""
    with pool._lock:
        idle = pool._available_connections
        closed = _choose(idle, idle, now, idle_for, keep)
        if closed:
            gone = set(map(id, closed))
            idle[:] = [c for c in idle if id(c) not in gone]
            pool._created_connections = max(0, pool._created_connections - len(closed))
    return closed


def pool_counts(client: Any) -> tuple[int, int]:
    """(connections open, of which idle) of a client's pool; (0, 0) for an unknown shape."""
    pool = getattr(client, "connection_pool", None)
    slots = getattr(pool, "pool", None)
    conns = getattr(pool, "_connections", None)
    if slots is not None and isinstance(conns, list):
        idle = sum(1 for c in list(getattr(slots, "queue", [])) if c is not None)
        return len(conns), idle
    available = getattr(pool, "_available_connections", None)
    if isinstance(available, list):
        return len(available) + len(getattr(pool, "_in_use_connections", ())), len(available)
    return 0, 0
