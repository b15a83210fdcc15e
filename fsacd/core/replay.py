"""The ideal queue: the same callers (arrival times, handle times, patience) through a perfect
first-come-first-served queue with N agents and no overhead at all.

``fsacd simulate`` prints it beside Erlang C and its own measurement: Erlang C against the
replay is the sampling noise of this particular run (a 3 h sample of a queue near saturation
varies a lot from seed to seed); the replay against the measurement is what fsacd's engine
(and the simulation's real latencies, see docs/simulate.md) changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    arrival: float  # seconds from the start
    service: float  # seconds an agent is busy with the call (talk + wrap-up + ring)
    patience: float | None = None  # None: waits for ever
    measured: bool = True  # counted in the figures (False: the warm-up)


def replay(callers: Iterable[Caller], agents: int, threshold: float) -> dict[str, float | None]:
    """Service level (answered within ``threshold`` over all measured callers), ASA (mean
    wait of those answered), abandoned fraction, number measured."""
    if agents < 1:
        raise ValueError("agents must be at least 1")
    free = [0.0] * agents  # when each agent is next free
    n = within = gave_up = 0
    waits: list[float] = []
    for c in sorted(callers, key=lambda c: c.arrival):
        start = max(c.arrival, free[0])
        wait = start - c.arrival
        if c.patience is not None and wait > c.patience:
            if c.measured:
                n += 1
                gave_up += 1
            continue
        heapq.heapreplace(free, start + c.service)
        if c.measured:
            n += 1
            waits.append(wait)
            within += wait <= threshold
    return {
        "calls": n,
        "service_level": within / n if n else None,
        "asa": sum(waits) / len(waits) if waits else None,
        "abandoned": gave_up / n if n else None,
    }
