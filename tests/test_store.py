"""Store and Lua scripts on a real Redis: agents, queues, matching, offers, races, events."""

import json
import os
import random
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gevent
import pytest
import redis

from fsacd.core import routing, strategies
from fsacd.state import scripts
from fsacd.state import store as store_mod
from fsacd.state.keys import EVENTS_MAXLEN, Keys
from fsacd.state.store import (
    PRIORITY_MAX,
    SEQ_SPAN,
    AgentBusy,
    CallBusy,
    Offer,
    QueueRules,
    Store,
    UnknownAgent,
    UnknownQueue,
    waiting_score,
)
from tests.matching import match, match_one

T0 = 1_800_000_000.0
RULES = QueueRules(max_no_answer=2, no_answer_delay=30, busy_delay=10, reject_delay=20)
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(r, clock):
    s = Store(r, controller_id="c1", clock=clock)
    s.sync_queues(["sales", "support", "vip"])
    return s


def add_agents(store, n, queue="sales", login=True, start=1):
    """Agents a{start}..: position i in ``queue``, logged in."""
    ids = []
    for i in range(start, start + n):
        store.add_agent(f"a{i}", f"user/{1000 + i}", {queue: i})
        if login:
            store.login(f"a{i}")
        ids.append(f"a{i}")
    return ids


def enqueue(store, call_id, queue="sales", priority=0):
    return store.enqueue({"id": call_id, "number": "+4930123456"}, queue, priority)


def event_list(r, *types):
    rows = [fields for _, fields in r.xrange(Keys().events())]
    return [e for e in rows if not types or e["type"] in types]


def waiting(r, queue="sales"):
    return r.zrange(Keys().queue_waiting(queue), 0, -1)


def state(store, agent_id):
    a = store.get_agent(agent_id)
    return a["status"], a["state"], a["call"]


# --- keys and scripts ---------------------------------------------------------------------


def test_lua_builds_the_same_key_names_as_keys_py(r):
    src = scripts.source("_lib") + (
        "\nreturn {agent_key('x'), members_key('q'), waiting_key('q'), call_key('c'),"
        " free_key('q'), queue_key('q'), contact_key('k'), READY, CALLS, WAKE, EVENTS, NOW_S}"
    )
    k = Keys("pfx:")
    got = r.eval(src, 1, k.events(), "pfx:", "12.500")
    assert got == [
        k.agent("x"),
        k.queue_members("q"),
        k.queue_waiting("q"),
        k.call("c"),
        k.queue_free("q"),
        k.queue("q"),
        k.contact("k"),
        k.ready(),
        k.calls(),
        k.wake_channel(),
        k.events(),
        "12.500",
    ]


def test_lua_trims_the_events_stream_like_python(r):
    """One number for the events stream's length: EVENTS_MAXLEN in state/keys.py and in
    state/lua/_lib.lua (every Python writer imports the former)."""
    src = scripts.source("_lib") + "\nreturn EVENTS_MAXLEN"
    assert r.eval(src, 1, Keys().events(), "fsacd:", "1.000") == EVENTS_MAXLEN
    assert store_mod.EVENTS_MAXLEN is EVENTS_MAXLEN
    assert store_mod.PRIORITY_MAX is routing.PRIORITY_MAX


@pytest.mark.parametrize("name", scripts.NAMES)
def test_script_headers_document_keys_and_argv(name):
    src = scripts.source(name)
    lines = src.splitlines()
    assert lines[0].startswith(f"-- {name}.lua: ")
    header = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line)
    header_text = "\n".join(header)
    body = "\n".join(ln for ln in lines[len(header) :] if not ln.lstrip().startswith("--"))
    for kind in ("KEYS", "ARGV"):
        documented = {int(n) for n in re.findall(rf"^-- {kind}\[(\d+)\]", header_text, re.M)}
        open_from = [int(n) for n in re.findall(rf"^-- {kind}\[(\d+)…\]", header_text, re.M)]
        assert 1 in documented
        for n in map(int, re.findall(rf"{kind}\[(\d+)\]", body)):
            assert n in documented or (open_from and n >= open_from[0]), f"{kind}[{n}]"
        if open_from:
            assert f"for i = {open_from[0]}, #{kind}" in body


def test_store_needs_decode_responses(redis_url):
    raw = redis.Redis.from_url(redis_url)
    with pytest.raises(ValueError, match="decode_responses"):
        Store(raw)
    raw.close()


def test_score_formula():
    assert waiting_score(PRIORITY_MAX, 5) == 5
    assert waiting_score(0, 1) == PRIORITY_MAX * SEQ_SPAN + 1
    assert waiting_score(10, 99) < waiting_score(9, 1)
    assert waiting_score(0, 2**40 - 1) < 2**53  # exact in a double, in Lua and Redis
    with pytest.raises(ValueError):
        waiting_score(PRIORITY_MAX + 1, 1)


# --- agents (CLI operations) ----------------------------------------------------------------


def test_add_update_get_list_agents(store, r):
    assert store.add_agent("b.o-b@x_1", "sofia/gateway/gw/+4930111", {"sales": 2}) is True
    assert store.add_agent("alice", "user/1001", {"sales": 1, "support": 3}) is True
    a = store.get_agent("alice")
    assert a["status"] == "logged-out" and a["state"] == "idle"
    assert a["queues"] == {"sales": 1, "support": 3}
    assert a["answered"] == 0 and a["talk_time"] == 0.0 and a["login_at"] is None
    assert r.zscore(Keys().queue_members("support"), "alice") == 3

    # update: contact and queues replaced, membership follows
    assert store.add_agent("alice", "user/2001", {"vip": 5}) is False
    a = store.get_agent("alice")
    assert a["contact"] == "user/2001" and a["queues"] == {"vip": 5}
    assert r.zscore(Keys().queue_members("sales"), "alice") is None
    assert r.zscore(Keys().queue_members("support"), "alice") is None
    assert r.zscore(Keys().queue_members("vip"), "alice") == 5

    assert [a["id"] for a in store.list_agents()] == ["alice", "b.o-b@x_1"]
    assert store.get_agent("nobody") is None
    assert [e["type"] for e in event_list(r, "agent-added", "agent-updated")] == [
        "agent-added",
        "agent-added",
        "agent-updated",
    ]


@pytest.mark.parametrize(
    "agent_id, contact, match",
    [
        ("", "user/1", "invalid agent id"),
        ("a b", "user/1", "invalid agent id"),
        ("a:b", "user/1", "invalid agent id"),
        ("x" * 65, "user/1", "invalid agent id"),
        ("a1", "", "contact must not be empty"),
        ("a1", "user/1,user/2", "','"),
        ("a1", "user/1|user/2", "'|'"),
        ("a1", "user/1\r\nuuid_kill x", "not allowed"),
        ("a1", "user/1 extra", "not allowed"),
        ("a1", "{x=1}user/1", "must not start"),
        ("a1", "[x=1]user/1", "must not start"),
    ],
)
def test_add_agent_validation(store, agent_id, contact, match):
    with pytest.raises(ValueError, match=match):
        store.add_agent(agent_id, contact, {"sales": 1})


def test_add_agent_unknown_queue_and_bad_position(store):
    with pytest.raises(UnknownQueue) as exc:
        store.add_agent("a1", "user/1", {"sales": 1, "nosuch": 2})
    assert "'nosuch'" in str(exc.value) and "sales" in str(exc.value)
    assert store.get_agent("a1") is None
    with pytest.raises(ValueError, match="position"):
        store.add_agent("a1", "user/1", {"sales": -1})
    with pytest.raises(ValueError, match="position"):
        store.add_agent("a1", "user/1", {"sales": "1"})


def test_add_agent_in_a_pipeline(store, r):
    pipe = r.pipeline()
    assert store.add_agent("a1", "user/1", {"sales": 1}, pipe=pipe) is None
    assert store.add_agent("a2", "user/2", {"sales": 2}, pipe=pipe) is None
    pipe.execute()
    assert [a["id"] for a in store.list_agents()] == ["a1", "a2"]


def test_status_changes(store, r, clock):
    add_agents(store, 1, login=False)
    assert store.login("a1") == "logged-out"
    assert store.get_agent("a1")["login_at"] == T0
    clock.advance(5)
    assert store.login("a1") == "available"  # again: login_at kept
    assert store.get_agent("a1")["login_at"] == T0
    assert store.set_break("a1", "lunch") == "available"
    a = store.get_agent("a1")
    assert (a["status"], a["break_reason"]) == ("on-break", "lunch")
    assert store.set_available("a1") == "on-break"
    assert store.get_agent("a1")["break_reason"] == ""
    assert store.logout("a1") == "available"
    assert store.get_agent("a1")["status"] == "logged-out"
    statuses = [(e["status"], e.get("old")) for e in event_list(r, "agent-status")]
    assert statuses == [
        ("available", "logged-out"),
        ("available", "available"),
        ("on-break", "available"),
        ("available", "on-break"),
        ("logged-out", "available"),
    ]
    with pytest.raises(ValueError):
        store.set_break("a1", "bad\nreason")


@pytest.mark.parametrize("op", ["login", "logout", "set_available", "remove_agent"])
def test_unknown_agent(store, op):
    with pytest.raises(UnknownAgent) as exc:
        getattr(store, op)("ghost")
    assert str(exc.value) == "unknown agent 'ghost'"
    assert isinstance(exc.value, KeyError)
    with pytest.raises(UnknownAgent):
        store.set_break("ghost", "x")


def test_remove_agent(store, r):
    add_agents(store, 2)
    enqueue(store, "c1")
    offer = match_one(store, "sales", "first-available")
    with pytest.raises(AgentBusy, match="reserved"):
        store.remove_agent("a1")
    store.remove_agent("a2")
    assert store.get_agent("a2") is None
    assert r.zscore(Keys().queue_members("sales"), "a2") is None
    assert not r.sismember(Keys().agents(), "a2")
    store.answered(offer, "a1")
    with pytest.raises(AgentBusy, match="in-call"):
        store.remove_agent("a1")
    store.finish_call("c1", "answered", wrap_up=30)
    store.remove_agent("a1")  # wrap-up is fine
    assert r.zscore(Keys().ready(), "a1") is None
    assert store.list_agents() == []


# --- calls and queues -------------------------------------------------------------------


def test_enqueue_orders_by_priority_then_arrival(store, r):
    enqueue(store, "low1", priority=0)
    enqueue(store, "high1", priority=5)
    enqueue(store, "low2", priority=0)
    enqueue(store, "high2", priority=5)
    enqueue(store, "top", priority=PRIORITY_MAX)
    assert waiting(r) == ["top", "high1", "high2", "low1", "low2"]
    assert [store.position(c) for c in ("top", "high2", "low2")] == [1, 3, 5]
    assert store.position("nosuch") is None
    c = store.get_call("high2")
    assert c["priority"] == 5 and c["seq"] == 4 and c["state"] == "waiting"
    assert (
        c["score"] == waiting_score(5, 4) == int(r.zscore(Keys().queue_waiting("sales"), "high2"))
    )
    assert c["owner"] == "c1" and c["number"] == "+4930123456" and c["entered_at"] == T0
    for bad in (-1, PRIORITY_MAX + 1, 1.5, True, "3"):
        with pytest.raises(ValueError):
            enqueue(store, "x", priority=bad)
    with pytest.raises(ValueError):
        store.enqueue({"id": "bad id"}, "sales", 0)


def test_reentry_keeps_seq(store, r, clock):
    enqueue(store, "c1")
    enqueue(store, "c2")
    clock.advance(10)
    # c1 re-enters (e.g. back from an IVR) in another queue and then back here: keeps its seq
    enqueue(store, "c1", queue="support")
    assert waiting(r) == ["c2"] and waiting(r, "support") == ["c1"]
    c = enqueue(store, "c1")
    assert c["seq"] == 1 and c["entered_at"] == T0
    assert waiting(r) == ["c1", "c2"]
    assert event_list(r, "call-entered")[-1]["reentry"] == "1"


def test_enqueue_refused_while_offering(store):
    add_agents(store, 1)
    enqueue(store, "c1")
    match_one(store, "sales", "first-available")
    with pytest.raises(CallBusy, match="offering"):
        enqueue(store, "c1")


def test_queue_view(store, clock):
    add_agents(store, 3)
    store.set_break("a3", "lunch")
    enqueue(store, "c1")
    clock.advance(5)
    enqueue(store, "c2", priority=3)
    enqueue(store, "c3")
    clock.advance(5)
    store.logout("a2")  # a1 alone is free: the matcher makes one offer
    offer = match_one(store, "sales", "first-available")  # c2 (priority) to a1
    assert offer.call_id == "c2"
    store.login("a2")
    v = store.queue_view("sales")
    assert [(w["id"], w["position"], w["waited"]) for w in v["waiting"]] == [
        ("c1", 1, 10.0),
        ("c3", 2, 5.0),
    ]
    assert [(m["id"], m["position"], m["status"], m["state"]) for m in v["members"]] == [
        ("a1", 1, "available", "reserved"),
        ("a2", 2, "available", "idle"),
        ("a3", 3, "on-break", "idle"),
    ]
    assert [(a["id"], a["state"], a["agents"]) for a in v["active"]] == [("c2", "offering", ["a1"])]
    assert v["counts"] == {
        "waiting": 2,
        "offering": 1,
        "bridged": 0,
        "members": 3,
        "logged_in": 3,
        "available": 2,
        "on_break": 1,
        "free": 1,
        "in_call": 0,
    }
    with pytest.raises(UnknownQueue):
        store.queue_view("nosuch")


# --- strategies end to end: candidates + order + reserve ---------------------------------------


def serve_one(store, strategy, call_id, queue="sales", rng=None):
    """Enqueue a call, match it, answer by the first agent, finish without wrap-up."""
    enqueue(store, call_id, queue)
    head, snaps = store.candidates(queue)
    assert head == call_id
    ordered = strategies.order(strategy, snaps, rr_last=store.rr_last(queue), rng=rng)
    offer = store.reserve(queue, head, ordered, 0 if strategies.wants_all(strategy) else 1)
    assert offer is not None
    assert store.answered(offer, offer.agents[0])
    assert store.finish_call(call_id, "answered", 0)
    return offer.agents


def test_first_available_always_from_position_one(store):
    add_agents(store, 3)
    assert [serve_one(store, "first-available", f"c{i}") for i in range(3)] == [["a1"]] * 3
    store.set_break("a1", "x")
    assert serve_one(store, "first-available", "c9") == ["a2"]


def test_round_robin_rotates(store):
    add_agents(store, 3)
    got = [serve_one(store, "round-robin", f"c{i}")[0] for i in range(5)]
    assert got == ["a1", "a2", "a3", "a1", "a2"]
    store.set_break("a3", "x")
    assert serve_one(store, "round-robin", "c9") == ["a1"]  # after a2, a3 away: wraps


def test_most_idle(store, r, clock):
    add_agents(store, 3)
    r.hset(Keys().agent("a1"), "last_call_end", T0 - 10)
    r.hset(Keys().agent("a2"), "last_call_end", T0 - 50)
    # a3 never had a call: counts from its login (T0)
    clock.advance(1)
    got = [serve_one(store, "most-idle", f"c{i}")[0] for i in range(3)]
    assert got == ["a2", "a1", "a3"]


def test_fewest_calls_and_least_talk_time(store, r):
    add_agents(store, 3)
    for agent_id, answered, talk in (("a1", 5, 10), ("a2", 1, 900), ("a3", 3, 5)):
        r.hset(Keys().agent(agent_id), mapping={"answered": answered, "talk_time": talk})
    assert serve_one(store, "fewest-calls", "c1") == ["a2"]
    assert serve_one(store, "least-talk-time", "c2") == ["a3"]


def test_ring_all_takes_every_free_agent(store):
    add_agents(store, 4)
    store.set_break("a2", "x")
    assert serve_one(store, "ring-all", "c1") == ["a1", "a3", "a4"]


def test_random_follows_the_rng(store):
    add_agents(store, 5)
    enqueue(store, "c1")
    first = match_one(store, "sales", "random", rng=random.Random(3))
    store.cancel_offer(first)
    again = match_one(store, "sales", "random", rng=random.Random(3))
    assert again.agents == first.agents and again.agents[0] in {f"a{i}" for i in range(1, 6)}


# --- reserve: the atomic match --------------------------------------------------------------


def test_reserve_refuses_a_call_that_is_not_the_head(store, r):
    add_agents(store, 2)
    enqueue(store, "c1")
    enqueue(store, "c2")
    before = event_list(r)
    assert store.reserve("sales", "c2", ["a1", "a2"], 1) is None
    assert waiting(r) == ["c1", "c2"]
    assert state(store, "a1") == ("available", "idle", "")
    assert event_list(r) == before
    offer = store.reserve("sales", "c1", ["a2", "a1"], 1)
    assert offer.agents == ["a2"] and offer.owner == "c1" and offer.queue == "sales"
    assert store.get_agent("a2")["last_offer_at"] == T0
    assert store.rr_last("sales") == 2


def test_reserve_takes_only_free_members(store, r, clock):
    add_agents(store, 2)
    add_agents(store, 1, queue="support", start=3)  # not a member of sales
    enqueue(store, "c1")
    r.hset(Keys().agent("a1"), "ready_at", T0 + 5)  # in a delay
    store.set_break("a2", "x")
    assert store.reserve("sales", "c1", ["a3", "a1", "a2"], 0) is None
    assert store.get_call("c1")["state"] == "waiting"
    clock.advance(5)
    assert store.reserve("sales", "c1", ["a3", "a1", "a2"], 0).agents == ["a1"]


def test_reserve_drops_a_broken_head(store, r):
    add_agents(store, 1)
    enqueue(store, "c1")
    enqueue(store, "c2")
    r.delete(Keys().call("c1"))  # should never happen; must not block the queue
    assert store.reserve("sales", "c1", ["a1"]) is None
    assert waiting(r) == ["c2"]
    assert match_one(store, "sales", "first-available").call_id == "c2"


# --- match: a whole pass in one script -----------------------------------------------------


def test_match_serves_the_head_calls_in_order_with_the_next_agents(store, r):
    add_agents(store, 3)
    for c in ("c1", "c2", "c3", "c4"):
        enqueue(store, c)
    enqueue(store, "c0", priority=5)  # heads the queue
    offers = store.match("sales", "first-available", 5)
    assert [(o.call_id, o.agents) for o in offers] == [
        ("c0", ["a1"]),
        ("c1", ["a2"]),
        ("c2", ["a3"]),
    ]
    assert len({o.offer_id for o in offers}) == 3
    assert waiting(r) == ["c3", "c4"]
    for o in offers:
        assert store.get_call(o.call_id)["offer"] == o.offer_id
        a = store.get_agent(o.agents[0])
        assert (a["state"], a["call"], a["offer"]) == ("reserved", o.call_id, o.offer_id)
    assert store.rr_last("sales") == 3  # the position of the last agent taken
    offered = [e["call"] for e in event_list(r, "call-offered")]
    assert offered == ["c0", "c1", "c2"]


def test_match_ring_all_serves_one_call(store, r):
    add_agents(store, 3)
    enqueue(store, "c1")
    enqueue(store, "c2")
    offers = store.match("sales", "ring-all", 2)
    assert [(o.call_id, o.agents) for o in offers] == [("c1", ["a1", "a2", "a3"])]
    assert waiting(r) == ["c2"]


def test_match_skips_broken_calls_and_agents_not_free(store, r):
    add_agents(store, 2)
    enqueue(store, "c1")
    enqueue(store, "c2")
    enqueue(store, "c3")
    r.delete(Keys().call("c1"))  # should never happen; must not block the queue
    store.set_break("a1", "x")
    offers = store.match("sales", "first-available", 3)
    assert [(o.call_id, o.agents) for o in offers] == [("c2", ["a2"])]
    assert waiting(r) == ["c3"]
    assert store.match("sales", "first-available", 3) == []


def test_a_paused_queue_offers_nothing(store, r):
    add_agents(store, 2)
    enqueue(store, "c1")
    r.hset(Keys().queue("sales"), "paused", "1")
    pool = store.pool("sales")
    assert (pool.head, pool.waiting, pool.paused, pool.free) == ("c1", 1, True, [])
    assert store.match("sales", "first-available", 1) == []
    assert store.reserve("sales", "c1", ["a1"]) is None
    r.hdel(Keys().queue("sales"), "paused")
    assert [s.id for s in store.pool("sales").free] == ["a1", "a2"]
    assert store.reserve("sales", "c1", ["a1"]).agents == ["a1"]


def test_pool_reads_the_snapshot_fields(store, r, clock):
    add_agents(store, 2)
    enqueue(store, "c1")
    r.hset(Keys().agent("a2"), mapping={"answered": 4, "talk_time": "12.5",
                                         "last_call_end": T0 - 3})
    r.hset(Keys().queue("sales"), "rr_last", 1)
    pool = store.pool("sales")
    assert (pool.head, pool.waiting, pool.rr_last, pool.paused) == ("c1", 1, 1, False)
    a1, a2 = pool.free
    assert (a1.id, a1.position, a1.login_at, a1.answered) == ("a1", 1, T0, 0)
    assert (a2.id, a2.answered, a2.talk_time, a2.last_call_end) == ("a2", 4, 12.5, T0 - 3)
    assert store.pool("support") == store_mod.Pool(None, 0, None, False, [])


def test_strict_order_under_priorities(store, r):
    add_agents(store, 1)
    arrivals = [("n1", 0), ("h1", 9), ("n2", 0), ("m1", 4), ("h2", 9), ("n3", 0), ("m2", 4)]
    for call_id, prio in arrivals:
        enqueue(store, call_id, priority=prio)
    served = []
    while True:
        offer = match_one(store, "sales", "first-available")
        if offer is None:
            break
        served.append(offer.call_id)
        if len(served) % 2:  # every other offer fails first: the call keeps its place
            assert store.offer_failed(offer, {"a1": "none"}, RULES)
            offer = match_one(store, "sales", "first-available")
            assert offer.call_id == served[-1]
        store.answered(offer, "a1")
        store.finish_call(offer.call_id, "answered", 0)
    assert served == ["h1", "h2", "m1", "m2", "n1", "n2", "n3"]


def test_failed_offer_returns_call_to_its_old_place(store, r, clock):
    add_agents(store, 1)
    for c in ("c1", "c2", "c3"):
        enqueue(store, c)
    offer = match_one(store, "sales", "first-available")
    assert offer.call_id == "c1" and waiting(r) == ["c2", "c3"]
    assert store.position("c1") is None
    clock.advance(20)
    enqueue(store, "c4", priority=0)
    assert store.offer_failed(offer, {"a1": "no-answer"}, RULES)
    assert waiting(r) == ["c1", "c2", "c3", "c4"]
    assert store.get_call("c1")["state"] == "waiting" and store.position("c1") == 1
    ev = event_list(r, "call-requeued")[-1]
    assert (ev["call"], ev["reason"], ev["offer"]) == ("c1", "failed", offer.offer_id)


def test_overflow_keeps_priority_and_seq(store, r):
    add_agents(store, 1, queue="support")
    enqueue(store, "old", queue="sales", priority=2)
    enqueue(store, "s1", queue="support", priority=2)
    enqueue(store, "s0", queue="support", priority=1)
    assert store.move_call("old", "support", reason="max-wait")
    assert waiting(r, "sales") == []
    assert waiting(r, "support") == ["old", "s1", "s0"]
    c = store.get_call("old")
    assert c["queue"] == "support" and c["seq"] == 1 and c["overflows"] == 1
    ev = event_list(r, "call-overflowed")[-1]
    assert (ev["call"], ev["queue"], ev["from"], ev["reason"]) == (
        "old",
        "support",
        "sales",
        "max-wait",
    )
    offer = match_one(store, "support", "first-available")
    assert offer.call_id == "old"
    assert not store.move_call("old", "vip")  # offering: not moved
    store.offer_failed(offer, {}, None)  # back in support, at the head again
    assert waiting(r, "support")[0] == "old"
    assert not store.move_call("nosuch", "vip")


# --- offer lifecycle ------------------------------------------------------------------------


def test_no_answer_streak_puts_agent_on_break(store, r, clock):
    add_agents(store, 1)
    enqueue(store, "c1")
    offer = match_one(store, "sales", "first-available")
    assert store.mark_ringing(offer)
    assert state(store, "a1") == ("available", "ringing", "c1")
    store.offer_failed(offer, {"a1": "no-answer"}, RULES)
    a = store.get_agent("a1")
    assert (a["state"], a["missed"], a["no_answer_streak"], a["ready_at"]) == (
        "idle",
        1,
        1,
        T0 + 30,
    )
    assert match_one(store, "sales", "first-available") is None  # delayed
    assert store.next_due() == T0 + 30
    clock.advance(30)
    assert store.free_due_agents() == ["sales"]
    offer = match_one(store, "sales", "first-available")
    store.offer_failed(offer, {"a1": "no-answer"}, RULES)
    a = store.get_agent("a1")
    assert (a["status"], a["break_reason"], a["missed"], a["no_answer_streak"]) == (
        "on-break",
        "no-answer",
        2,
        2,
    )
    missed = event_list(r, "agent-missed")
    assert [(e["agent"], e["outcome"], e["streak"]) for e in missed] == [
        ("a1", "no-answer", "1"),
        ("a1", "no-answer", "2"),
    ]
    assert event_list(r, "agent-status")[-1]["reason"] == "no-answer"
    # back from break: streak cleared
    store.set_available("a1")
    assert store.get_agent("a1")["no_answer_streak"] == 0


def test_answer_resets_the_streak(store, clock):
    add_agents(store, 1)
    enqueue(store, "c1")
    store.offer_failed(match_one(store, "sales", "first-available"), {"a1": "no-answer"}, RULES)
    clock.advance(31)
    offer = match_one(store, "sales", "first-available")
    assert store.answered(offer, "a1")
    assert store.get_agent("a1")["no_answer_streak"] == 0


@pytest.mark.parametrize(
    "outcome, delay, missed, streak",
    [
        ("busy", 10, 0, 0),
        ("reject", 20, 0, 0),
        ("unreachable", 30, 1, 1),
        ("error", 30, 0, 0),
        ("lose-race", 0, 0, 0),
        ("cancel", 0, 0, 0),
        ("none", 0, 0, 0),
    ],
)
def test_outcome_effects(store, r, outcome, delay, missed, streak):
    add_agents(store, 1)
    enqueue(store, "c1")
    store.offer_failed(match_one(store, "sales", "first-available"), {"a1": outcome}, RULES)
    a = store.get_agent("a1")
    assert (a["status"], a["state"], a["call"], a["offer"]) == ("available", "idle", "", "")
    assert a["ready_at"] == (T0 + delay if delay else 0.0)
    assert (a["missed"], a["no_answer_streak"]) == (missed, streak)
    assert (match_one(store, "sales", "first-available") is None) == bool(delay)
    assert len(event_list(r, "agent-missed")) == (1 if delay else 0)


def test_answered_releases_the_others_at_once(store, r):
    add_agents(store, 3)
    enqueue(store, "c1")
    enqueue(store, "c2")
    offer = match_one(store, "sales", "ring-all")
    assert offer.agents == ["a1", "a2", "a3"]
    store.mark_ringing(offer)
    assert store.answered(offer, "a2")
    assert state(store, "a2") == ("available", "in-call", "c1")
    for other in ("a1", "a3"):
        a = store.get_agent(other)
        assert (a["state"], a["call"], a["missed"], a["ready_at"]) == ("idle", "", 0, 0.0)
    c = store.get_call("c1")
    assert (c["state"], c["agent"], c["answered_at"]) == ("bridged", "a2", T0)
    assert not store.answered(offer, "a1")  # the race is over
    assert not store.answered(offer, "a2")  # duplicate
    nxt = match_one(store, "sales", "ring-all")  # the others are free for the next call at once
    assert nxt.call_id == "c2" and nxt.agents == ["a1", "a3"]


def test_finish_call_wrap_up_then_free_due_agents(store, r, clock):
    add_agents(store, 2)
    enqueue(store, "c1")
    offer = match_one(store, "sales", "first-available")
    clock.advance(2)
    store.answered(offer, "a1")
    clock.advance(60)
    assert store.finish_call("c1", "answered", wrap_up=15)
    a = store.get_agent("a1")
    assert (a["state"], a["call"], a["answered"], a["talk_time"]) == ("wrap-up", "", 1, 60.0)
    assert a["last_call_end"] == T0 + 62 and a["ready_at"] == T0 + 77
    c = store.get_call("c1")
    assert (c["state"], c["outcome"], c["ended_at"]) == ("ended", "answered", T0 + 62)
    assert not r.sismember(Keys().calls(), "c1")
    assert 0 < r.ttl(Keys().call("c1")) <= 86400
    ended = event_list(r, "call-ended")[-1]
    assert (ended["outcome"], ended["agent"], ended["waited"], ended["talk"]) == (
        "answered",
        "a1",
        "2.000",
        "60.000",
    )
    # idempotent
    assert not store.finish_call("c1", "error", wrap_up=15)
    assert store.get_call("c1")["outcome"] == "answered"
    assert store.get_agent("a1")["answered"] == 1
    assert len(event_list(r, "call-ended")) == 1

    enqueue(store, "c2")
    assert match_one(store, "sales", "first-available").agents == ["a2"]  # a1 in wrap-up
    assert store.free_due_agents() == []
    clock.advance(15)
    assert store.candidates("sales") == (None, [])  # c2 is being offered
    assert store.free_due_agents() == ["sales"]
    assert state(store, "a1") == ("available", "idle", "")
    assert store.next_due() is None


def test_wrap_up_over_is_free_before_free_due_agents(store, clock):
    add_agents(store, 1)
    enqueue(store, "c1")
    store.answered(match_one(store, "sales", "first-available"), "a1")
    store.finish_call("c1", "answered", wrap_up=5)
    clock.advance(5)
    enqueue(store, "c2")
    assert match_one(store, "sales", "first-available").agents == ["a1"]  # still "wrap-up" in Redis
    assert store.free_due_agents() == []


def test_finish_while_offering_releases_without_penalty(store, r):
    add_agents(store, 2)
    enqueue(store, "c1")
    offer = match_one(store, "sales", "ring-all")
    store.mark_ringing(offer)
    assert store.finish_call("c1", "abandoned", wrap_up=10)
    for agent_id in ("a1", "a2"):
        a = store.get_agent(agent_id)
        assert (a["state"], a["call"], a["missed"], a["ready_at"]) == ("idle", "", 0, 0.0)
    # late events for the dead offer change nothing
    assert not store.answered(offer, "a1")
    assert not store.offer_failed(offer, {"a1": "no-answer"}, RULES)
    assert store.get_agent("a1")["missed"] == 0
    assert not store.mark_ringing(offer)


def test_abandon_while_waiting(store, r, clock):
    enqueue(store, "c1")
    enqueue(store, "c2")
    clock.advance(7)
    assert store.abandon("c2")
    assert waiting(r) == ["c1"]
    ev = event_list(r, "call-abandoned")
    assert [(e["call"], e["outcome"], e["waited"], e["position"]) for e in ev] == [
        ("c2", "abandoned", "7.000", "2")
    ]
    assert not store.finish_call("c2", "error")  # the finally of the call flow: no-op
    assert event_list(r, "call-ended") == []


def test_stale_offer_ids_are_refused(store, r):
    add_agents(store, 1)
    enqueue(store, "c1")
    old = match_one(store, "sales", "first-available")
    store.offer_failed(old, {"a1": "none"}, RULES)
    new = match_one(store, "sales", "first-available")  # same call, same agent, new offer
    assert new.offer_id != old.offer_id
    # late/duplicate events for the old offer
    assert not store.mark_ringing(old)
    assert not store.answered(old, "a1")
    assert not store.offer_failed(old, {"a1": "no-answer"}, RULES)
    assert not store.cancel_offer(old)
    a = store.get_agent("a1")
    assert (a["state"], a["offer"], a["missed"]) == ("reserved", new.offer_id, 0)
    assert store.get_call("c1")["state"] == "offering"
    # a forged offer naming the agent but another call
    forged = Offer("x", "c9", "sales", ["a1"], "c1")
    assert not store.cancel_offer(forged)
    assert store.get_agent("a1")["state"] == "reserved"
    assert store.answered(new, "a1")
    # a late failure of the answered offer cannot free the agent in-call
    assert not store.offer_failed(new, {"a1": "no-answer"}, RULES)
    assert state(store, "a1") == ("available", "in-call", "c1")


def test_stale_offer_cannot_free_agent_now_on_another_call(store, r):
    add_agents(store, 1)
    enqueue(store, "c1")
    enqueue(store, "c2")
    o1 = match_one(store, "sales", "first-available")
    store.cancel_offer(o1)
    store.finish_call("c1", "abandoned")
    o2 = match_one(store, "sales", "first-available")
    assert o2.call_id == "c2"
    store.cancel_offer(o1)
    store.offer_failed(o1, {"a1": "busy"}, RULES)
    assert not store.finish_call("c1", "abandoned")
    assert state(store, "a1") == ("available", "reserved", "c2")


def test_cancel_offer(store, r):
    add_agents(store, 2)
    enqueue(store, "c1")
    offer = match_one(store, "sales", "ring-all")
    assert store.cancel_offer(offer)
    assert waiting(r) == ["c1"]
    assert all(store.get_agent(a)["state"] == "idle" for a in ("a1", "a2"))
    assert event_list(r, "call-requeued")[-1]["reason"] == "cancel"
    assert event_list(r, "agent-missed") == []
    assert not store.cancel_offer(offer)  # twice


def test_offer_roundtrips_as_json():
    o = Offer("o1", "c1", "sales", ["a1", "a2"], "ctl-1")
    assert Offer.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    with pytest.raises(TypeError):
        Offer.from_dict({"offer_id": "o", "call_id": "c", "queue": "q", "agents": "a1"})


def test_logout_during_a_call(store, clock):
    add_agents(store, 1)
    enqueue(store, "c1")
    store.answered(match_one(store, "sales", "first-available"), "a1")
    store.logout("a1")
    assert state(store, "a1") == ("logged-out", "in-call", "c1")
    assert store.get_call("c1")["state"] == "bridged"
    enqueue(store, "c2")
    store.finish_call("c1", "answered", wrap_up=1)
    clock.advance(5)
    store.free_due_agents()
    assert state(store, "a1") == ("logged-out", "idle", "")
    assert store.candidates("sales") == ("c2", [])
    assert store.reserve("sales", "c2", ["a1"]) is None
    store.login("a1")
    assert match_one(store, "sales", "first-available").agents == ["a1"]


def test_logout_while_reserved_then_offer_fails(store):
    add_agents(store, 1)
    enqueue(store, "c1")
    offer = match_one(store, "sales", "first-available")
    store.logout("a1")
    store.offer_failed(offer, {"a1": "no-answer"}, QueueRules(max_no_answer=1))
    a = store.get_agent("a1")
    assert (a["status"], a["state"]) == ("logged-out", "idle")  # not turned into a break


# --- wake-ups and events ----------------------------------------------------------------------


def test_wake_published(store, r, clock):
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(Keys().wake_channel())
    add_agents(store, 1, login=False)
    store.add_agent("a2", "user/2", {"support": 1, "vip": 1})
    store.login("a1")  # sales
    enqueue(store, "c1", queue="vip")
    store.login("a2")  # support, vip
    store.wake(["sales", "sales", "vip"])
    pipe = r.pipeline()
    store.wake(["support"], pipe=pipe)
    pipe.execute()
    got = []
    deadline = time.monotonic() + 2
    while len(got) < 7 and time.monotonic() < deadline:
        msg = sub.get_message(timeout=0.2)
        if msg:
            got.append(msg["data"])
    assert sub.get_message(timeout=0.05) is None
    sub.close()
    # login a1, call entered, login a2 (both its queues), wake(), wake() on a pipeline
    assert got == ["sales", "vip", "support", "vip", "sales", "vip", "support"]


def test_event_helper(store, r):
    pipe = r.pipeline()
    store.event("call-rejected", pipe=pipe, call="c1", reason="unknown target", agents=["a", "b"])
    store.event("x", waited=1.5, skip=None, flag=True)
    pipe.execute()  # after the direct one
    assert event_list(r) == [
        {"type": "x", "ts": f"{T0:.3f}", "waited": "1.500", "flag": "1"},
        {
            "type": "call-rejected",
            "ts": f"{T0:.3f}",
            "call": "c1",
            "reason": "unknown target",
            "agents": "a,b",
        },
    ]
    assert [e["type"] for e in store.recent_events(1)] == ["call-rejected"]


def test_handle_times_are_capped_newest_first(store, r):
    for i in range(store_mod.HANDLE_TIMES_KEPT + 5):
        store.record_handle_time("sales", float(i))
    with store.batch() as pipe:
        store.record_handle_time("sales", 99.04, pipe=pipe)
        assert store.handle_times("sales")[0] == 54.0  # not sent before the batch ends
    times = store.handle_times("sales")
    assert len(times) == store_mod.HANDLE_TIMES_KEPT
    assert times[:3] == [99.0, 54.0, 53.0]
    assert store.handle_times("support") == []


def test_control_hand_off_and_dial_claims(store, r):
    sub = store.subscribe([Keys().control_channel(), Keys().ctl_channel("ctl-b")])
    try:
        assert store.control("reload") == 1
        offer = Offer("o1", "c1", "sales", ["a1"], "ctl-b")
        assert store.hand_off(offer) == 1
        assert Store(r).hand_off(Offer("o2", "c2", "sales", ["a1"], "nobody")) == 0
        got = []
        deadline = time.monotonic() + 2
        while len(got) < 2 and time.monotonic() < deadline:
            msg = sub.get_message(timeout=0.2)
            if msg:
                got.append((msg["channel"], msg["data"]))
        assert got[0] == (Keys().control_channel(), "reload")
        assert got[1][0] == Keys().ctl_channel("ctl-b")
        assert Offer.from_dict(json.loads(got[1][1])) == offer
    finally:
        sub.close()
    assert store.claim_dial_request("rq1")
    assert not Store(r, controller_id="c2").claim_dial_request("rq1")
    assert r.get(Keys().dial_request("rq1")) == "c1" and 0 < r.ttl(Keys().dial_request("rq1"))


def test_agent_fields_and_all_events(store, r):
    add_agents(store, 1, login=False)
    store.set_agent_fields("a1", rec_consent="given", no_answer_streak=0)
    a = store.get_agent("a1")
    assert a["rec_consent"] == "given" and a["no_answer_streak"] == 0
    with pytest.raises(ValueError):
        store.set_agent_fields("bad id", x="1")
    evs = store.all_events()
    assert [e["type"] for e in evs] == ["agent-added"] and evs[0]["id"]


def test_events_of_a_whole_call(store, r):
    add_agents(store, 2)
    r.delete(Keys().events())
    enqueue(store, "c1")
    offer = match_one(store, "sales", "first-available")
    store.mark_ringing(offer)
    store.offer_failed(offer, {"a1": "busy"}, RULES)
    offer = match_one(store, "sales", "first-available")
    store.answered(offer, "a2")
    store.finish_call("c1", "answered", 5)
    got = [
        (e["type"], e.get("agent", ""), e.get("state", e.get("outcome", ""))) for e in event_list(r)
    ]
    assert got == [
        ("call-entered", "", ""),
        ("agent-state", "a1", "reserved"),
        ("call-offered", "", ""),
        ("agent-state", "a1", "ringing"),
        ("agent-missed", "a1", "busy"),
        ("agent-state", "a1", "idle"),
        ("call-requeued", "", ""),
        ("agent-state", "a2", "reserved"),
        ("call-offered", "", ""),
        ("agent-state", "a2", "in-call"),
        ("call-bridged", "a2", ""),
        ("agent-state", "a2", "wrap-up"),
        ("call-ended", "a2", "answered"),
    ]
    assert all(e["ts"] == f"{T0:.3f}" and e.get("call", "c1") == "c1" for e in event_list(r))


# --- races ------------------------------------------------------------------------------------


def test_concurrent_reserves_give_an_agent_one_call(redis_url, store, r):
    """Many clients race to reserve one agent for calls of two queues at once."""
    store.add_agent("solo", "user/1", {"sales": 1, "support": 1})
    store.login("solo")
    clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(6)]
    stores = [Store(c, controller_id=f"ctl{i}") for i, c in enumerate(clients)]
    try:
        for round_ in range(15):
            enqueue(store, f"sales-{round_}", queue="sales")
            enqueue(store, f"support-{round_}", queue="support")
            jobs = [
                gevent.spawn(st.reserve, q, f"{q}-{round_}", ["solo"], 1)
                for st in stores
                for q in ("sales", "support")
                for _ in range(2)
            ]
            gevent.joinall(jobs, raise_error=True)
            won = [j.value for j in jobs if j.value is not None]
            assert len(won) == 1
            offer = won[0]
            assert store.get_agent("solo")["call"] == offer.call_id
            store.finish_call(f"sales-{round_}", "done")
            store.finish_call(f"support-{round_}", "done")
    finally:
        for c in clients:
            c.close()


WORKER = textwrap.dedent(
    """
    import random, sys, time
    import redis
    from fsacd.state.store import Store
    from tests.matching import match
    r = redis.Redis.from_url(sys.argv[1], decode_responses=True)
    st = Store(r, controller_id="proc")
    rng = random.Random(99)
    r.set("test:proc-ready", "1")
    while not r.get("test:go"):
        time.sleep(0.005)
    deadline = time.monotonic() + 10
    while r.scard(st.keys.calls()) and time.monotonic() < deadline:
        queue, strategy = rng.choice(["sales", "support"]), rng.choice(["ring-all", "most-idle"])
        offers = match(st, queue, strategy, controller_id="setup")
        if not offers:
            time.sleep(0.001)
            continue
        for offer in offers:
            st.mark_ringing(offer)
            if rng.random() < 0.3:
                st.offer_failed(offer, {a: "no-answer" for a in offer.agents}, None)
            else:
                st.answered(offer, offer.agents[-1])
                st.finish_call(offer.call_id, "answered", rng.choice([0, 0.01]))
            st.free_due_agents()
            r.incr("test:proc-offers")
    """
)


def audit_events(events, scores):
    """Replay the event log (it is written in the same atomic steps as the state) and check:
    no agent is reserved while it holds a call, transitions only for the call it holds, call
    states move legally, and each queue makes its first offers in score order."""
    held: dict[str, str | None] = {}
    calls: dict[str, str] = {}
    first_offers: dict[str, list[str]] = {}
    for e in events:
        t, call, agent = e["type"], e.get("call"), e.get("agent")
        if t == "agent-state":
            st = e["state"]
            if st == "reserved":
                assert held.get(agent) is None, (
                    f"{agent} reserved for {call} while on {held[agent]}"
                )
                held[agent] = call
            elif st in ("ringing", "in-call"):
                assert held.get(agent) == call, e
            elif call:
                assert held.get(agent) == call, e
                held[agent] = None
            else:
                assert held.get(agent) is None, e
        elif t == "call-entered":
            calls[call] = "waiting"
        elif t == "call-offered":
            assert calls[call] == "waiting", e
            calls[call] = "offering"
            if call not in first_offers.setdefault(e["queue"], []):
                first_offers[e["queue"]].append(call)
        elif t == "call-requeued":
            assert calls[call] == "offering", e
            calls[call] = "waiting"
        elif t == "call-bridged":
            assert calls[call] == "offering", e
            calls[call] = "bridged"
        elif t in ("call-ended", "call-abandoned"):
            assert calls[call] != "ended", e
            calls[call] = "ended"
    for queue, order in first_offers.items():
        assert [scores[c] for c in order] == sorted(scores[c] for c in order), queue
    return held, calls


def test_concurrent_matching_invariants(redis_url, r):
    """Greenlets on their own clients plus another process match, ring, fail, answer and finish
    calls of two queues sharing agents; the event log is audited afterwards."""
    base = Store(r, controller_id="setup")
    base.sync_queues(["sales", "support"])
    for i in range(1, 11):
        base.add_agent(f"a{i}", f"user/{i}", {"sales": i, "support": 11 - i})
        base.login(f"a{i}")
    rng = random.Random(1)
    for n in range(150):
        base.enqueue({"id": f"c{n}"}, rng.choice(["sales", "support"]), rng.choice([0, 0, 1, 5]))
    scores = {f"c{n}": base.get_call(f"c{n}")["score"] for n in range(150)}

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", WORKER, redis_url], env=env, cwd=ROOT)
    holding: dict[str, str] = {}
    clients = []

    def worker(i):
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        clients.append(client)
        st = Store(client, controller_id=f"g{i}")
        wrng = random.Random(i)
        deadline = time.monotonic() + 10
        while client.scard(st.keys.calls()) and time.monotonic() < deadline:
            strategy = wrng.choice(["first-available", "ring-all", "round-robin", "random"])
            queue = wrng.choice(["sales", "support"])
            # the calls are the setup's: the matcher delivers to it as their owner
            offers = match(st, queue, strategy, rng=wrng, controller_id="setup")
            if not offers:
                gevent.sleep(0.001)
                continue
            for offer in offers:  # a pass matches every call it can, as in production
                serve(st, wrng, offer)

    def serve(st, wrng, offer):
        for a in offer.agents:
            if a in holding:  # another greenlet's offer still holds it
                raise AssertionError(f"{a} offered {offer.call_id} while on {holding[a]}")
            holding[a] = offer.call_id
        gevent.sleep(wrng.random() * 0.002)
        assert st.mark_ringing(offer)
        roll = wrng.random()
        if roll < 0.3:
            results = {a: wrng.choice(["no-answer", "busy", "lose-race"]) for a in offer.agents}
            for a in offer.agents:
                del holding[a]
            assert st.offer_failed(offer, results, None)
        elif roll < 0.4:
            for a in offer.agents:
                del holding[a]
            assert st.cancel_offer(offer)
        else:
            winner = wrng.choice(offer.agents)
            for a in offer.agents:
                if a != winner:
                    del holding[a]
            assert st.answered(offer, winner)
            gevent.sleep(wrng.random() * 0.002)
            del holding[winner]
            assert st.finish_call(offer.call_id, "answered", 0)

    try:
        deadline = time.monotonic() + 10
        while not r.get("test:proc-ready"):
            assert proc.poll() is None and time.monotonic() < deadline
            gevent.sleep(0.01)
        r.set("test:go", "1")
        gevent.joinall([gevent.spawn(worker, i) for i in range(8)], raise_error=True)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in clients:
            c.close()

    gevent.sleep(0.05)  # the last wrap-ups (10 ms) are over
    base.free_due_agents()
    assert r.scard(base.keys.calls()) == 0
    assert waiting(r, "sales") == [] and waiting(r, "support") == []
    for a in base.list_agents():
        assert (a["state"], a["call"], a["offer"]) == ("idle", "", ""), a
    events = event_list(r)
    held, calls = audit_events(events, scores)
    assert all(v is None for v in held.values())
    assert set(calls.values()) == {"ended"} and len(calls) == 150
    assert sum(1 for e in events if e["type"] == "call-offered") >= 150
    assert int(r.get("test:proc-offers") or 0) > 0  # the other process took part


def test_head_scores_of_several_queues_in_one_call(store):
    enqueue(store, "c1", "sales", priority=0)
    enqueue(store, "c2", "support", priority=5)
    scores = store.head_scores(["sales", "support", "vip", "sales"])
    assert set(scores) == {"sales", "support"}  # vip has nobody waiting
    assert scores["sales"] == store.head_score("sales")
    assert scores["support"] == store.head_score("support")
    assert scores["support"] < scores["sales"]  # the higher priority heads the order
    assert store.head_scores([]) == {}
