"""Matching in tests goes through the real matcher (fsacd.acd.matcher.Matcher), the path
production takes (strategy order, skip-busy, retries, delivery), never a shortcut in the store.

``match(store, queue, strategy)`` runs one matcher pass for ``queue`` and returns the offers
it made, in order; like production, a pass matches every call it can, not just the head.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from functools import cache

from fsacd.acd.matcher import Matcher
from fsacd.config import Config, load_text
from fsacd.state.store import Offer, Store


@cache
def queues_config(queues: tuple[tuple[str, str], ...], skip_busy: bool = True) -> Config:
    """A config with these ``(queue, strategy)`` pairs and nothing else."""
    text = "".join(
        f'[queues.{name}]\nstrategy = "{strategy}"\n'
        f"skip_busy_agents = {'true' if skip_busy else 'false'}\n"
        for name, strategy in queues
    )
    return load_text(text, env={})


def matcher(
    store: Store,
    queues: Mapping[str, str],
    *,
    controller_id: str | None = None,
    rng: random.Random | None = None,
    busy: Callable[[], set[str]] | None = None,
    skip_busy: bool = True,
    deliver: Callable[[Offer], bool] | None = None,
) -> tuple[Matcher, list[Offer]]:
    """A matcher (not started: no loops, no pub/sub) for ``queues`` (name -> strategy) and
    the list its local deliveries go to. ``controller_id`` (default the store's) is the
    matcher's: offers for calls another controller owns are published to it."""
    offers: list[Offer] = []

    def collect(offer: Offer) -> bool:
        offers.append(offer)
        return True

    cfg = queues_config(tuple(sorted(queues.items())), skip_busy)
    m = Matcher(store, cfg, controller_id or store.controller_id, deliver or collect)
    m.rng = rng
    m.busy_agents = busy
    return m, offers


def match(
    store: Store,
    queue: str,
    strategy: str = "first-available",
    *,
    rng: random.Random | None = None,
    controller_id: str | None = None,
) -> list[Offer]:
    """One matcher pass for ``queue``: the offers it made (errors raise)."""
    m, offers = matcher(store, {queue: strategy}, rng=rng, controller_id=controller_id)
    m._match_queue(queue)
    return offers


def match_one(
    store: Store, queue: str, strategy: str = "first-available", **kw: object
) -> Offer | None:
    """:func:`match` where at most one offer is possible; that offer, or None."""
    offers = match(store, queue, strategy, **kw)  # type: ignore[arg-type]
    assert len(offers) <= 1, f"expected at most one offer, the matcher made {offers}"
    return offers[0] if offers else None
