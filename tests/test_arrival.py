"""A caller's arrival in one round trip: ``arrive.lua`` (enqueue + the queue's matching pass),
``Batch``/``Reply`` (several stores' commands sent together), the screen pop prepared with
the arrival and offered with the ringing (``prepare_in``/``offered_in``), ``Matcher.arrive``."""

from __future__ import annotations

import json

import pytest
import redis

from fsacd.acd.matcher import Matcher
from fsacd.config import load_text
from fsacd.state.keys import Keys
from fsacd.state.store import CallBusy, MatchSpec, Offer, Store
from tests.test_pop import E164, NUM, make_pop, stream
from tests.test_store import add_agents, enqueue

K = Keys()


@pytest.fixture
def store(r):
    s = Store(r, controller_id="c1")
    s.sync_queues(["sales", "support"])
    return s


def spec(strategy: str = "first-available", **kw) -> MatchSpec:
    return MatchSpec(strategy, 64, **kw)


def wake_messages(ps) -> list[str]:
    out = []
    while (msg := ps.get_message(timeout=0.2)) is not None:
        if msg["type"] == "message":
            out.append(msg["data"])
    return out


def test_arrival_with_a_free_agent_is_offered_in_the_same_script(store, r):
    add_agents(store, 2)
    ps = r.pubsub()
    ps.subscribe(K.wake_channel())
    ps.get_message(timeout=1)
    arrival = store.arrive({"id": "c1", "number": "+4930123"}, "sales", 0, match=spec())
    assert arrival.moved_from is None
    assert arrival.call["id"] == "c1" and arrival.call["entered_at"] is not None
    assert arrival.call["state"] == "offering"
    [offer] = arrival.offers
    assert (offer.call_id, offer.agents, offer.owner) == ("c1", ["a1"], "c1")
    assert store.get_agent("a1")["state"] == "reserved"
    assert r.zrange(K.queue_waiting("sales"), 0, -1) == []
    # the pass served what the arrival made possible: no wake-up for the other matchers
    assert wake_messages(ps) == []
    ps.close()


def test_arrival_without_a_pass_waits_and_wakes_the_queue(store, r):
    add_agents(store, 1)
    ps = r.pubsub()
    ps.subscribe(K.wake_channel())
    ps.get_message(timeout=1)
    arrival = store.arrive({"id": "c1"}, "sales", 0)
    assert arrival.offers == [] and arrival.call["state"] == "waiting"
    assert r.zrange(K.queue_waiting("sales"), 0, -1) == ["c1"]
    assert wake_messages(ps) == ["sales"]
    ps.close()


def test_parked_arrival_gets_no_pass(store, r):
    add_agents(store, 1)
    arrival = store.arrive({"id": "c1"}, "sales", 0, parked=True, match=spec())
    assert arrival.offers == [] and arrival.call["parked"] == "1"
    assert r.zrange(K.queue_waiting("sales"), 0, -1) == []
    assert store.get_agent("a1")["state"] == "idle"


def test_the_pass_serves_the_head_call_first(store, r):
    enqueue(store, "early")  # nobody free yet
    add_agents(store, 1)
    arrival = store.arrive({"id": "late"}, "sales", 0, match=spec())
    assert [(o.call_id, o.agents) for o in arrival.offers] == [("early", ["a1"])]
    assert store.get_call("late")["state"] == "waiting"
    assert r.zrange(K.queue_waiting("sales"), 0, -1) == ["late"]


def test_a_call_another_controller_holds_is_left_alone(store, r):
    add_agents(store, 1)
    other = Store(r, controller_id="c2")
    held = other.arrive({"id": "c1"}, "sales", 0, match=spec())
    assert held.offers
    arrival = store.arrive({"id": "c1"}, "sales", 0, match=spec())
    assert arrival.moved_from == "c2" and arrival.call is None and arrival.offers == []
    c = store.get_call("c1")
    assert (c["state"], c["owner"], c["offer"]) == ("offering", "c2", held.offers[0].offer_id)


def test_arrival_sent_again_after_a_lost_reply_returns_its_own_offer(store):
    add_agents(store, 2)
    s = spec()
    first = store.arrive({"id": "c1"}, "sales", 0, match=s)
    again = store.arrive({"id": "c1"}, "sales", 0, match=s)
    assert again.offers == first.offers
    assert store.get_agent("a2")["state"] == "idle"  # nothing reserved twice
    with pytest.raises(CallBusy):  # another arrival while offering: refused as by enqueue
        store.arrive({"id": "c1"}, "sales", 0, match=spec())


def test_arrival_respects_the_strategy_and_busy_agents(store):
    add_agents(store, 3)
    arrival = store.arrive({"id": "c1"}, "sales", 0, match=spec(busy=frozenset({"a1"})))
    assert arrival.offers[0].agents == ["a2"]
    arrival = store.arrive({"id": "c2"}, "sales", 0, match=spec("ring-all"))
    assert arrival.offers[0].agents == ["a1", "a3"]


def test_batch_sends_several_stores_commands_at_once(store, r):
    add_agents(store, 1)
    sp = make_pop(r)
    sp.contacts.put({"id": "k1", "name": "Anna", "numbers": [{"label": "p", "number": E164}]})
    batch = store.round_trip()
    arrival = store.arrive({"id": "c1"}, "sales", 0, match=spec(), batch=batch)
    found = sp.contacts.find_in(batch, E164)
    with pytest.raises(RuntimeError):
        arrival.get()  # not sent yet
    batch.send()
    assert arrival.get().offers[0].agents == ["a1"]
    contacts, total = found.get()
    assert total == 1 and contacts[0]["name"] == "Anna"


def test_batch_loads_a_script_the_server_forgot(store, r):
    add_agents(store, 1)
    r.script_flush()
    batch = store.round_trip()
    arrival = store.arrive({"id": "c1"}, "sales", 0, match=spec(), batch=batch)
    batch.send()
    assert arrival.get().offers[0].call_id == "c1"


def test_batch_raises_an_error_nobody_claimed(store, r):
    r.set("plain", "x")
    batch = store.round_trip()
    batch.pipe.hget("plain", "f")  # WRONGTYPE
    with pytest.raises(redis.ResponseError):
        batch.send()


def test_pop_prepared_with_the_arrival_is_the_same_pop(r):
    """prepare_in + offered_in (one round trip each, with the arrival and the ringing) give
    what prepare + offered give, and leave the same record behind."""
    sp = make_pop(r)
    sp.contacts.put({"id": "k1", "name": "Anna", "tier": "gold",
                     "numbers": [{"label": "p", "number": E164}]})  # fmt: skip
    sp.history.record("old", NUM, False, "support", "x", "answered", 1_700_000_000)

    sp.prepare("call-a", "support", NUM, False, "ANNA", {"menu": "2"})
    headers_a = sp.offered("call-a", ["1001"], 3.0)

    batch = sp.db.round_trip()
    reply = sp.prepare_in(batch, "call-b", "support", NUM, False, "ANNA", {"menu": "2"})
    batch.send()
    prepared = reply.get()
    batch = sp.db.round_trip()
    popped = sp.offered_in(batch, prepared, ["1002"], 3.0, "support")
    batch.send()
    popped.sent()

    a, b = stream(r, "1001")[0], stream(r, "1002")[0]
    for p in (a, b):
        p.pop("ts")
        p.pop("agent")
        p.pop("call")
    assert a == b and a["contacts"][0]["name"] == "Anna" and a["history"]
    assert headers_a["1001"]["sip_h_X-Fsacd-Call"] == "call-a"
    assert popped.headers["1002"]["sip_h_X-Fsacd-Contact-Name"] == "Anna"
    ha, hb = r.hgetall(K.call_pop("call-a")), r.hgetall(K.call_pop("call-b"))
    assert json.loads(ha["data"])["contacts"] == json.loads(hb["data"])["contacts"]
    assert (hb["agents"], hb["hist"], hb["queue"]) == ("1002", E164, "support")
    # the end of the call finds what it needs: history recorded, the pop dropped
    sp.finished("call-b", "1002", "answered")
    assert [h["agent"] for h in sp.history.previous(NUM, False)] == ["1002", "x"]
    assert not r.exists(K.call_pop("call-b"))


def test_pop_offered_again_withdraws_the_earlier_agents(r):
    sp = make_pop(r)
    batch = sp.db.round_trip()
    reply = sp.prepare_in(batch, "c", "support", NUM, False, "")
    batch.send()
    prepared = reply.get()
    for agents in (["a1"], ["a2"]):
        batch = sp.db.round_trip()
        sp.offered_in(batch, prepared, agents, 1.0, "support").sent()
        batch.send()
    assert [p["stage"] for p in stream(r, "a1")] == ["offer", "withdrawn"]
    assert r.hget(K.call_pop("c"), "agents") == "a2"


def test_pop_with_a_crm_is_prepared_beside_the_call(r):
    sp = make_pop(r, '\n[crm]\nurl = "http://127.0.0.1:9/{e164}"\n')
    assert sp.prepare_in(sp.db.round_trip(), "c", "support", NUM, False, "") is None


def test_matcher_arrival_waits_while_the_queue_is_held(store):
    add_agents(store, 1)
    cfg = load_text('[queues.sales]\nstrategy = "first-available"\n', env={})
    inbox: list[Offer] = []
    matcher = Matcher(store, cfg, "c1", lambda o: inbox.append(o) or True)
    sent: list[MatchSpec | None] = []

    def run(s: MatchSpec | None):
        sent.append(s)
        return store.arrive({"id": f"c{len(sent)}"}, "sales", 0, match=s)

    with matcher.holding("sales", timeout=0.1):
        arrival = matcher.arrive("sales", run)
        assert sent == [None] and arrival.offers == [] and inbox == []
    arrival = matcher.arrive("sales", run)
    assert sent[1] is not None
    assert [o.call_id for o in inbox] == ["c1"]  # the head, held back before, served first


def test_a_caller_another_controller_still_holds_is_taken_over_and_served(redis_url):
    """The caller came back (its controller died while it was offered): the old stay ends
    ``controller-lost`` (its agent released), then the caller arrives afresh and is served,
    with its screen pop (prepared with the arrival)."""
    from fsacd.standin import PhoneBehaviour as P
    from tests.acd_harness import Acd, wait_for

    acd = Acd(redis_url)
    try:
        acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
        acd.ctl.contacts.put({"id": "k1", "name": "Erika", "numbers": [
            {"label": "p", "number": "+4922129191999"}]})  # fmt: skip
        uuid = "5b7a2c1e-0000-4000-8000-00000000c0de"
        dead = Store(acd.r, controller_id="dead-ctl")
        held = dead.arrive({"id": uuid}, "support", 0, match=spec())
        assert held.offers and acd.agent_state("1001")["state"] == "reserved"
        call = acd.fs.place_call(destination="5000", uuid=uuid)
        wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="1001 in call")
        ended = [e for e in acd.events("call-ended") if e.get("call") == uuid]
        assert [e["outcome"] for e in ended] == ["controller-lost"]
        c = acd.store.get_call(uuid)
        assert (c["state"], c["owner"], c["agent"]) == ("bridged", "test-ctl", "1001")
        pops = stream(acd.r, "1001")
        assert pops[0]["stage"] == "offer" and pops[0]["call"] == uuid
        assert pops[0]["match"] == "found"
        assert [leg.variables.get("fsacd_agent") for leg in call.legs] == ["1001"]
        call.hangup()
    finally:
        acd.stop()
