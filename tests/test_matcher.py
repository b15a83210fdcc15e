"""fsacd.acd.matcher.Matcher on a real Redis: strategy order, skip-busy, ring-all, races lost
and retried, delivery to the owning controller (locally, over pub/sub) and orphaned offers."""

from __future__ import annotations

import json
import random
import time

import pytest

from fsacd.state.connection import RedisError
from fsacd.state.store import Offer, Store
from tests.matching import matcher

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(r):
    s = Store(r, controller_id="ctl-a", clock=Clock())
    s.sync_queues(["sales", "support"])
    return s


def agents(store, n, queue="sales", login=True):
    ids = [f"a{i}" for i in range(1, n + 1)]
    for i, agent_id in enumerate(ids, start=1):
        store.add_agent(agent_id, f"user/{1000 + i}@pbx.example", {queue: i})
        if login:
            store.login(agent_id)
    return ids


def call(store, call_id, queue="sales", priority=0, owner=None):
    data = {"id": call_id}
    if owner is not None:
        data["owner"] = owner
    return store.enqueue(data, queue, priority)


def later_requests(m):
    """Record request_later instead of spawning its timer greenlet."""
    got = []
    m.request_later = lambda delay, queues=None: got.append((delay, list(queues or [])))
    return got


# --- which agents, in which order ----------------------------------------------------------


def test_first_available_takes_the_lowest_position(store):
    agents(store, 3)
    call(store, "c1")
    m, offers = matcher(store, {"sales": "first-available"})
    m._match_queue("sales")
    assert [(o.call_id, o.agents) for o in offers] == [("c1", ["a1"])]
    assert store.get_agent("a1")["state"] == "reserved"


def test_strategy_order_is_respected(store, r):
    agents(store, 3)
    k = store.keys
    r.hset(k.agent("a1"), "last_call_end", T0 - 10)
    r.hset(k.agent("a2"), "last_call_end", T0 - 500)
    r.hset(k.agent("a3"), "last_call_end", T0 - 50)
    call(store, "c1")
    m, offers = matcher(store, {"sales": "most-idle"})
    m._match_queue("sales")
    assert offers[0].agents == ["a2"]  # idle longest


def test_one_pass_matches_every_call_it_can_in_queue_order(store):
    agents(store, 2)
    call(store, "low")
    call(store, "high", priority=5)
    call(store, "low2")
    m, offers = matcher(store, {"sales": "first-available"})
    m._match_queue("sales")
    assert [(o.call_id, o.agents) for o in offers] == [("high", ["a1"]), ("low", ["a2"])]
    assert store.position("low2") == 1
    assert m.matches == 2


def test_random_strategy_uses_the_matchers_rng(store, r):
    """The pick follows the matcher's generator (a seed gives the same pick again) and every
    free agent can be picked."""
    agents(store, 5)
    picks = []
    for i in range(40):
        call(store, f"c{i}")
        m, offers = matcher(store, {"sales": "random"}, rng=random.Random(i % 20))
        m._match_queue("sales")
        (offer,) = offers
        picks.append(offer.agents[0])
        store.cancel_offer(offer)
        store.finish_call(offer.call_id, "abandoned")
    assert picks[:20] == picks[20:]
    assert set(picks) == {"a1", "a2", "a3", "a4", "a5"}


def test_ring_all_wants_every_free_agent(store):
    agents(store, 4)
    store.set_break("a3", "lunch")
    call(store, "c1")
    call(store, "c2")
    m, offers = matcher(store, {"sales": "ring-all"})
    m._match_queue("sales")
    assert [(o.call_id, o.agents) for o in offers] == [("c1", ["a1", "a2", "a4"])]
    assert store.position("c2") == 1  # nobody left for the next call


# --- skip_busy_agents ----------------------------------------------------------------------


def test_busy_agents_are_skipped(store):
    agents(store, 3)
    call(store, "c1")
    asked = []

    def busy():
        asked.append(1)
        return {"a1", "a3"}

    m, offers = matcher(store, {"sales": "first-available"}, busy=busy)
    m._match_queue("sales")
    assert [o.agents for o in offers] == [["a2"]] and asked


def test_ring_all_leaves_out_busy_agents(store):
    agents(store, 3)
    call(store, "c1")
    m, offers = matcher(store, {"sales": "ring-all"}, busy=lambda: {"a2"})
    m._match_queue("sales")
    assert [o.agents for o in offers] == [["a1", "a3"]]


def test_no_offer_while_every_free_agent_is_busy(store):
    agents(store, 2)
    call(store, "c1")
    m, offers = matcher(store, {"sales": "first-available"}, busy=lambda: {"a1", "a2"})
    m._match_queue("sales")
    assert offers == [] and store.position("c1") == 1
    assert store.get_agent("a1")["state"] == "idle"


def test_skip_busy_agents_off_offers_them_anyway(store):
    agents(store, 2)
    call(store, "c1")
    m, offers = matcher(
        store, {"sales": "first-available"}, busy=lambda: {"a1", "a2"}, skip_busy=False
    )
    m._match_queue("sales")
    assert [o.agents for o in offers] == [["a1"]]


# --- races -----------------------------------------------------------------------------------


def test_matchers_racing_for_one_queue_never_double_offer(redis_url, store, r):
    """Four matchers, each on its own Redis connection, serve one queue at the same moment
    (the calls' owner takes every offer): each call is offered once, each agent reserved
    once, and every agent ends up with a call, in the queue's order."""
    import gevent
    import redis as redislib

    agents(store, 12)
    for i in range(30):
        call(store, f"c{i:02d}")
    made: list[Offer] = []
    ms = []
    for _ in range(4):
        st = Store(redislib.Redis.from_url(redis_url, decode_responses=True),
                   controller_id="ctl-a", clock=store.clock)
        m, offers = matcher(st, {"sales": "most-idle"}, deliver=lambda o: made.append(o) or True)
        ms.append(m)
    gevent.joinall([gevent.spawn(m._match_queue, "sales") for m in ms], raise_error=True)
    assert len(made) == 12
    assert len({o.call_id for o in made}) == 12
    assert sorted(a for o in made for a in o.agents) == sorted(f"a{i}" for i in range(1, 13))
    assert [o.call_id for o in sorted(made, key=lambda o: o.call_id)] == [
        f"c{i:02d}" for i in range(12)
    ]


def test_match_now_logs_redis_trouble_and_asks_the_loop_to_retry(store, caplog):
    m, offers = matcher(store, {"sales": "first-available"})

    def down(queue):
        raise RedisError("connection refused")

    store.match = lambda *a, **k: down(a[0])
    with caplog.at_level("ERROR"):
        m.match_now("sales")
    assert offers == [] and m._pending == {"sales"}
    assert "matching sales failed" in caplog.text
    m.match_now("nosuch")  # not a configured queue: nothing happens
    assert m._pending == {"sales"}


def test_queues_are_matched_by_their_head_call(store):
    call(store, "c1", queue="sales", priority=1)
    call(store, "s1", queue="support", priority=1)
    call(store, "s2", queue="support", priority=9)
    m, _ = matcher(store, {"sales": "first-available", "support": "first-available"})
    assert m._by_head({"sales", "support"}) == ["support", "sales"]
    store.finish_call("s2", "abandoned")
    assert m._by_head({"sales", "support"}) == ["sales", "support"]  # c1 came before s1


# --- delivery ---------------------------------------------------------------------------------


def test_offer_for_another_controllers_call_is_published_to_it(store):
    agents(store, 1)
    call(store, "c1", owner="ctl-b")
    sub = store.subscribe([store.keys.ctl_channel("ctl-b")])
    try:
        m, offers = matcher(store, {"sales": "first-available"})
        m._match_queue("sales")
        assert offers == []  # not delivered here
        msg = None
        deadline = time.monotonic() + 2
        while msg is None and time.monotonic() < deadline:
            msg = sub.get_message(timeout=0.2)
        assert msg is not None and msg["channel"] == store.keys.ctl_channel("ctl-b")
        offer = Offer.from_dict(json.loads(msg["data"]))
        assert (offer.call_id, offer.agents, offer.owner) == ("c1", ["a1"], "ctl-b")
        assert store.get_call("c1")["offer"] == offer.offer_id
    finally:
        sub.close()


def test_handed_off_offer_is_delivered_or_released(store):
    agents(store, 1)
    call(store, "c1")
    offer = store.reserve("sales", "c1", ["a1"])
    m, offers = matcher(store, {"sales": "first-available"})
    m._on_handoff(json.dumps(offer.to_dict()))
    assert offers == [offer]
    m._on_handoff("{not json")  # ignored
    nobody, _ = matcher(store, {"sales": "first-available"}, deliver=lambda o: False)
    nobody._on_handoff(json.dumps(offer.to_dict()))  # the call is not here: released
    assert store.get_agent("a1")["state"] == "idle" and store.position("c1") == 1


def test_offer_for_a_dead_controllers_call_is_orphaned(store):
    agents(store, 1)
    call(store, "c1", owner="ctl-dead")  # no lease, nobody subscribed
    m, offers = matcher(store, {"sales": "first-available"})
    later = later_requests(m)
    m._match_queue("sales")
    assert offers == []
    c = store.get_call("c1")
    assert (c["state"], c["outcome"]) == ("ended", "controller-lost")
    assert store.get_agent("a1")["state"] == "idle"
    assert later == [(0.5, ["sales"])]  # no hot loop: the queue is tried again later


def test_offer_a_live_controller_does_not_take_is_released(store, r):
    agents(store, 1)
    call(store, "c1", owner="ctl-b")
    Store(r, controller_id="ctl-b").renew_lease(30)  # alive, but not listening
    m, offers = matcher(store, {"sales": "first-available"})
    later = later_requests(m)
    m._match_queue("sales")
    c = store.get_call("c1")
    assert offers == [] and c["state"] == "waiting" and store.position("c1") == 1
    assert store.get_agent("a1")["state"] == "idle"
    assert later == [(0.5, ["sales"])]


def test_local_call_without_a_socket_is_orphaned_or_claimed(store):
    agents(store, 1)
    call(store, "c1")
    call(store, "c2")
    m, _ = matcher(store, {"sales": "first-available"}, deliver=lambda o: False)
    later_requests(m)
    claimed = []
    m.claim_orphan = lambda call_id: claimed.append(call_id) or call_id == "c2"
    m._match_queue("sales")  # c1: nobody claims it, it ends
    assert claimed == ["c1"] and store.get_call("c1")["outcome"] == "controller-lost"
    m._match_queue("sales")  # c2: a callback takes it, it stays queued
    assert claimed == ["c1", "c2"]
    assert store.get_call("c2")["state"] == "waiting" and store.position("c2") == 1


# --- a burst: one reservation per pass -----------------------------------------------------


def test_a_burst_of_callers_is_served_in_one_reservation(store):
    agents(store, 4)
    for i in range(1, 7):
        call(store, f"c{i}")
    m, offers = matcher(store, {"sales": "most-idle"})
    sizes = []
    real = store.match

    def counting(queue, strategy, calls, **kw):
        got = real(queue, strategy, calls, **kw)
        sizes.append(len(got))
        return got

    store.match = counting
    m._match_queue("sales")
    assert sizes == [4]  # one script call served the four calls it could
    assert [o.call_id for o in offers] == ["c1", "c2", "c3", "c4"]
    assert sorted(a for o in offers for a in o.agents) == ["a1", "a2", "a3", "a4"]
    assert m.matches == 4


def test_match_now_skips_a_pass_when_a_later_one_ran(store):
    """A caller whose match waited for the lock while another pass (begun after the caller
    asked) served the queue does not read the queue again."""
    agents(store, 1)
    m, offers = matcher(store, {"sales": "first-available"})
    reads = []
    real = store.match
    store.match = lambda q, *a, **k: reads.append(q) or real(q, *a, **k)
    since = m._passes.get("sales", 0)
    call(store, "c1")
    m._match_queue("sales")  # the pass that ran meanwhile
    m._match_queue("sales", since=since)
    assert reads == ["sales"]  # the first pass served the one waiting call and stopped
    assert [o.call_id for o in offers] == ["c1"]


def test_presence_sets_are_read_by_the_match_script_itself(store, r):
    """With presence watching (its sets in Redis), the script passes over agents busy
    elsewhere, unregistered or in do-not-disturb, without a round trip of its own."""
    agents(store, 4)
    call(store, "c1")
    call(store, "c2")
    k = store.keys
    r.sadd(k.ext_busy(), "a1")
    r.sadd(k.unregistered(), "a2")
    r.sadd(k.dnd(), "a3")
    m, offers = matcher(store, {"sales": "first-available"}, busy=lambda: set())
    m.busy_in_redis = True
    m._match_queue("sales")
    assert [(o.call_id, o.agents) for o in offers] == [("c1", ["a4"])]
    r.delete(k.ext_busy())
    m._match_queue("sales")
    assert [(o.call_id, o.agents) for o in offers] == [("c1", ["a4"]), ("c2", ["a1"])]
