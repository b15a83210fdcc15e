"""match.lua against the reference orders of fsacd/core/strategies.py.

The matching script picks agents from each queue's free index (fsacd/state/lua/match.lua);
the pure strategies are the specification. For many random populations of agents (ties in
positions, idle times, counts and talk times included; some agents busy, on break, in a
delay or in wrap-up) every deterministic strategy must offer a burst of calls to exactly the
agents, in exactly the order, that ``strategies.order`` gives for the same snapshot.
"""

from __future__ import annotations

import random

import pytest

from fsacd.core import strategies
from fsacd.state.keys import Keys
from fsacd.state.store import Store

T0 = 1_800_000_000.0
DETERMINISTIC = [s for s in strategies.STRATEGIES if s != "random"]


def populate(store: Store, r, rng: random.Random, n: int) -> None:
    k = Keys()
    for i in range(n):
        aid = f"a{i:02d}"
        store.add_agent(aid, f"user/{1000 + i}", {"q": rng.choice([1, 2, 3, 5, 8, 13])})
        store.login(aid)
        fields = {
            "last_call_end": rng.choice(["", T0 - 50, T0 - 20, T0 - 20.5]),
            "login_at": rng.choice([T0 - 100, T0 - 60]),
            "answered": rng.choice([0, 1, 1, 4]),
            "talk_time": rng.choice(["0", "12.500", "12.500", "30.000"]),
        }
        roll = rng.random()
        if roll < 0.1:
            fields["status"] = "on-break"
        elif roll < 0.2:
            fields["state"] = "in-call"
        elif roll < 0.3:
            fields["ready_at"] = T0 + 30  # a delay not over
        elif roll < 0.4:
            fields["state"] = "wrap-up"  # wrap-up with ready_at passed counts as free
        r.hset(k.agent(aid), mapping=fields)
    # the fields were written behind the scripts' back: make the next match rebuild the index
    r.hdel(k.queue("q"), "index_strategy")


@pytest.mark.parametrize("strategy", DETERMINISTIC)
@pytest.mark.parametrize("seed", range(25))
def test_match_offers_what_the_reference_order_gives(r, strategy, seed):
    rng = random.Random(seed * 31 + len(strategy))
    store = Store(r, controller_id="ctl", clock=lambda: T0)
    store.sync_queues(["q"])
    populate(store, r, rng, rng.randint(1, 20))
    if strategy == "round-robin" and rng.random() < 0.7:
        r.hset(Keys().queue("q"), "rr_last", rng.choice([1, 2, 3, 5, 8, 13]))
    for c in range(rng.randint(1, 8)):
        store.enqueue({"id": f"c{c}"}, "q")
    pool = store.pool("q")
    expected = strategies.order(strategy, pool.free, rr_last=pool.rr_last)
    offers = store.match("q", strategy, 64)
    if strategies.wants_all(strategy):
        assert [o.agents for o in offers] == ([expected] if expected else [])
    else:
        got = [a for o in offers for a in o.agents]
        assert got == expected[: len(got)]
        assert len(got) == min(len(expected), pool.waiting)
        assert [o.call_id for o in offers] == [f"c{i}" for i in range(len(got))]


def test_the_index_follows_the_agents_through_their_day(r):
    """Built by the scripts only (no writes behind their back): login, calls, wrap-up,
    delays, breaks, queue changes and removal keep the free index equal to the free set."""
    now = [T0]
    store = Store(r, controller_id="ctl", clock=lambda: now[0])
    store.sync_queues(["q", "p"])
    k = Keys()
    rng = random.Random(5)
    ids = [f"a{i}" for i in range(8)]
    for i, aid in enumerate(ids):
        store.add_agent(aid, f"user/{1000 + i}", {"q": i + 1, "p": 8 - i})
        store.login(aid)

    def check():
        store.free_due_agents()  # what the timers do when a wrap-up or delay ends
        for q in ("q", "p"):
            members = r.zrange(k.queue_members(q), 0, -1)
            free = set()
            for aid in members:
                a = store.get_agent(aid)
                if a["status"] == "available" and a["state"] in ("idle", "wrap-up") and (
                    a["ready_at"] or 0
                ) <= now[0]:
                    free.add(aid)
            assert set(r.zrange(k.queue_free(q), 0, -1)) == free, (q, step)

    step = -1
    check()
    for step in range(200):
        op = rng.random()
        now[0] += rng.choice([0.5, 1, 3])
        if op < 0.35:
            store.enqueue({"id": f"c{step}"}, rng.choice(["q", "p"]))
            for q, strat in (("q", "most-idle"), ("p", "fewest-calls")):
                for o in store.match(q, strat, 4):
                    if rng.random() < 0.7:
                        store.answered(o, o.agents[0])
                        store.finish_call(o.call_id, "answered", wrap_up=rng.choice([0, 2]))
                    else:
                        store.offer_failed(o, {o.agents[0]: "no-answer"}, None)
        elif op < 0.5:
            aid = rng.choice(ids)
            rng.choice([store.set_break, store.login, store.logout])(aid)
        elif op < 0.55:
            aid = rng.choice(ids)
            store.add_agent(aid, "user/1", rng.choice([{"q": 1}, {"p": 2}, {"q": 3, "p": 1}]))
        check()
    for q in ("q", "p"):
        for c in store.list_calls(q):
            store.finish_call(c["id"], "abandoned")
    check()
