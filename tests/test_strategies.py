"""Pure strategy ordering (the end-to-end runs through Redis are in test_store.py)."""

import random

import pytest

from fsacd.core import strategies
from fsacd.core.strategies import STRATEGIES, AgentSnapshot, UnknownStrategy, order, wants_all

AGENTS = [
    AgentSnapshot("c", position=3, last_call_end=100.0, login_at=10.0, answered=5, talk_time=50),
    AgentSnapshot("a", position=1, last_call_end=300.0, login_at=20.0, answered=2, talk_time=90),
    AgentSnapshot("b", position=2, last_call_end=None, login_at=50.0, answered=0, talk_time=0),
    AgentSnapshot("d", position=2, last_call_end=200.0, login_at=5.0, answered=2, talk_time=10),
]


def test_names():
    assert set(STRATEGIES) == {
        "first-available",
        "most-idle",
        "ring-all",
        "round-robin",
        "fewest-calls",
        "least-talk-time",
        "random",
    }


@pytest.mark.parametrize(
    "name, expected",
    [
        ("first-available", ["a", "b", "d", "c"]),  # position, ties by id
        ("ring-all", ["a", "b", "d", "c"]),
        ("most-idle", ["b", "c", "d", "a"]),  # b never called: counts from login (50)
        ("fewest-calls", ["b", "a", "d", "c"]),  # a and d both 2: by position
        ("least-talk-time", ["b", "d", "c", "a"]),
    ],
)
def test_order(name, expected):
    assert order(name, AGENTS) == expected


@pytest.mark.parametrize(
    "rr_last, expected",
    [
        (None, ["a", "b", "d", "c"]),
        (1, ["b", "d", "c", "a"]),
        (2, ["c", "a", "b", "d"]),
        (3, ["a", "b", "d", "c"]),  # wraps
        (7, ["a", "b", "d", "c"]),  # beyond the last position: wraps
    ],
)
def test_round_robin(rr_last, expected):
    assert order("round-robin", AGENTS, rr_last=rr_last) == expected


def test_round_robin_cycles_through_positions():
    agents = [AgentSnapshot(f"a{i}", position=i) for i in range(1, 5)]
    rr, seen = None, []
    for _ in range(6):
        first = order("round-robin", agents, rr_last=rr)[0]
        seen.append(first)
        rr = next(a.position for a in agents if a.id == first)
    assert seen == ["a1", "a2", "a3", "a4", "a1", "a2"]


def test_random_uses_rng_and_keeps_everyone():
    got = order("random", AGENTS, rng=random.Random(7))
    assert sorted(got) == ["a", "b", "c", "d"]
    assert got == order("random", AGENTS, rng=random.Random(7))
    firsts = {order("random", AGENTS, rng=random.Random(seed))[0] for seed in range(40)}
    assert firsts == {"a", "b", "c", "d"}


def test_wants_all():
    assert wants_all("ring-all")
    assert not any(wants_all(n) for n in STRATEGIES if n != "ring-all")


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(UnknownStrategy) as exc:
        order("longest-hair", AGENTS)
    assert "longest-hair" in str(exc.value)
    assert "round-robin" in str(exc.value)
    assert isinstance(exc.value, ValueError)
    with pytest.raises(UnknownStrategy):
        wants_all("nope")


def test_empty_and_input_untouched():
    assert order("most-idle", []) == []
    agents = list(AGENTS)
    order("random", agents, rng=random.Random(1))
    assert agents == AGENTS


def test_registry_takes_one_small_function():
    @strategies.strategy("by-id-desc")
    def _by_id_desc(agents, rr_last, rng):
        return sorted(agents, key=lambda a: a.id, reverse=True)

    try:
        assert order("by-id-desc", AGENTS) == ["d", "c", "b", "a"]
    finally:
        del strategies._REGISTRY["by-id-desc"]
