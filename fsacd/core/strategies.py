"""Queue strategies: order the free agents of a queue for an offer (pure, no Redis).

A strategy is one function ``(agents, rr_last, rng) -> ordered agents`` registered with
:func:`strategy`. The atomic reservation (``reserve.lua``) takes the first agent(s) of the
order that are still free, so strategies need no locking. See docs/strategies.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AgentSnapshot:
    """What strategies may look at for one free agent."""

    id: str
    position: float = 0
    last_call_end: float | None = None
    login_at: float | None = None
    answered: int = 0
    talk_time: float = 0.0
    last_offer_at: float | None = None


class UnknownStrategy(ValueError):
    """A strategy name that is not registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
        self.name = name


Orderer = Callable[[list[AgentSnapshot], "int | float | None", random.Random], list[AgentSnapshot]]


@dataclass(frozen=True)
class _Entry:
    func: Orderer
    wants_all: bool


_REGISTRY: dict[str, _Entry] = {}


def strategy(name: str, *, wants_all: bool = False) -> Callable[[Orderer], Orderer]:
    """Register an ordering function under ``name`` (``wants_all``: offer to every agent)."""

    def register(func: Orderer) -> Orderer:
        _REGISTRY[name] = _Entry(func, wants_all)
        return func

    return register


def _by_position(a: AgentSnapshot) -> tuple[float, str]:
    return (a.position, a.id)


def _idle_since(a: AgentSnapshot) -> float:
    """When the agent became idle for most-idle: its last call's end, else its login."""
    if a.last_call_end is not None:
        return a.last_call_end
    return a.login_at if a.login_at is not None else 0.0


@strategy("first-available")
def _first_available(agents, rr_last, rng):
    return sorted(agents, key=_by_position)


@strategy("most-idle")
def _most_idle(agents, rr_last, rng):
    return sorted(agents, key=lambda a: (_idle_since(a), a.position, a.id))


@strategy("ring-all", wants_all=True)
def _ring_all(agents, rr_last, rng):
    return sorted(agents, key=_by_position)


@strategy("round-robin")
def _round_robin(agents, rr_last, rng):
    if rr_last is None:
        return sorted(agents, key=_by_position)
    # positions after the last one offered first, then wrap around to the start
    return sorted(agents, key=lambda a: (a.position <= rr_last, a.position, a.id))


@strategy("fewest-calls")
def _fewest_calls(agents, rr_last, rng):
    return sorted(agents, key=lambda a: (a.answered, a.position, a.id))


@strategy("least-talk-time")
def _least_talk_time(agents, rr_last, rng):
    return sorted(agents, key=lambda a: (a.talk_time, a.position, a.id))


@strategy("random")
def _random(agents, rr_last, rng):
    out = sorted(agents, key=_by_position)
    rng.shuffle(out)
    return out


#: Valid strategy names (for config validation).
STRATEGIES: tuple[str, ...] = tuple(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategy(name) from None


def wants_all(name: str) -> bool:
    """True if the strategy offers a call to every free agent at once (ring-all)."""
    return _entry(name).wants_all


def order(
    name: str,
    agents: list[AgentSnapshot],
    *,
    rr_last: int | float | None = None,
    rng: random.Random | None = None,
) -> list[str]:
    """Agent ids in the order strategy ``name`` prefers them.

    ``rr_last`` is the position offered last in the queue (round-robin); ``rng`` the source
    of randomness (random), ``random`` module's default when None.
    """
    entry = _entry(name)
    ordered = entry.func(list(agents), rr_last, rng or random.Random())
    return [a.id for a in ordered]
