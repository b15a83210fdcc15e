"""The Redis side of fsacd/pop/crm.py: the cache of the external CRM's answers.

``crm:{e164}``: the JSON list of contacts the CRM returned (``[]`` = no match), expiring after
``crm.cache_ttl`` (a match) or ``crm.miss_ttl`` (no match).
"""

from __future__ import annotations

from fsacd.state.base import StateBase


class CrmCache(StateBase):
    """Cached CRM answers by number."""

    def get(self, e164: str) -> str | None:
        """The cached JSON answer for ``e164``, or None."""
        return self.r.get(self.keys.crm_cache(e164))

    def put(self, e164: str, answer: str, ttl: float) -> None:
        """Cache the JSON ``answer`` for ``ttl`` seconds (millisecond precision)."""
        self.r.set(self.keys.crm_cache(e164), answer, px=int(ttl * 1000))
