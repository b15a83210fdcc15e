"""The Redis side of fsacd/pop/history.py: one capped list of previous calls per number.

``history:{ref}``: JSON entries, newest first, at most ``max_entries``, expiring ``ttl`` after
the last call; ``ref`` is the E.164 number or ``h:`` + the salted hash of a hidden one.
"""

from __future__ import annotations

from fsacd.state.base import Batch, Pipe, Reply, StateBase


class HistoryStore(StateBase):
    """Append to and read the per-number history lists."""

    def push(self, ref: str, entry: str, max_entries: int, ttl: float, pipe: Pipe = None) -> None:
        """Put the JSON ``entry`` first in ``history:{ref}``, keep ``max_entries``, renew the
        expiry (``ttl`` seconds; 0 = none). In one transaction unless queued on ``pipe``."""
        key = self.keys.history(ref)
        p = pipe if pipe is not None else self.r.pipeline(transaction=True)
        p.lpush(key, entry)
        p.ltrim(key, 0, max_entries - 1)
        if ttl > 0:
            p.expire(key, int(ttl))
        if pipe is None:
            p.execute()

    def recent(self, ref: str, limit: int) -> list[str]:
        """The newest ``limit`` entries of ``history:{ref}`` (JSON text)."""
        return self.r.lrange(self.keys.history(ref), 0, limit - 1)

    def recent_in(self, batch: Batch, ref: str, limit: int) -> Reply[list[str]]:
        """:meth:`recent`, queued on ``batch``."""
        start = len(batch)
        batch.pipe.lrange(self.keys.history(ref), 0, limit - 1)
        return batch.reply(start, lambda raw: list(raw[0] or []))
