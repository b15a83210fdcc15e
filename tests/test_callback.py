"""Callbacks (virtual hold) end to end: stand-in FreeSWITCH, real Redis, the controller.

Most tests create the waiting call straight in Redis (``store.enqueue``) and register the
callback with ``ctl.callbacks.register`` - exactly what the caller's dialog does before the
caller hangs up - so they show that a callback needs no caller socket at all. One test walks
the caller's dialog (callback key, confirm own number) through the stand-in.
"""

from __future__ import annotations

import time
import uuid

import pytest

from fsacd.acd.controller import Controller
from fsacd.config import ConfigError
from fsacd.esl.client import FreeSwitchClient
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, make_config, wait_for

CUSTOMER = "+4922129191999"
NETWORK = "+4922199990"
GATEWAY = "sofia/gateway/carrier/*"

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 1
wrap_up = 0.3
no_answer_delay = 5
callback_key = "5"
callback_retries = {retries}
callback_retry_delay = {delay}
network_number = "{network}"
gateway = "carrier"

[queues.sales]
strategy = "ring-all"
ring_timeout = 2
wrap_up = 0.3
network_number = "{network}"
gateway = "carrier"

[queues.plain]
callback_key = "5"
"""


def make(redis_url, retries=2, delay=0.5) -> Acd:
    acd = Acd(redis_url, queues=QUEUES.format(retries=retries, delay=delay, network=NETWORK))
    acd.ctl.callbacks.customer_ring_timeout = 1
    return acd


@pytest.fixture
def acd(redis_url):
    h = make(redis_url)
    yield h
    h.stop()


def waiting_call(acd: Acd, *, hidden: bool = False, queue: str = "support") -> str:
    """A call waiting in ``queue`` as the call flow records it (no caller channel)."""
    call_id = str(uuid.uuid4())
    acd.store.enqueue(
        {
            "id": call_id,
            "owner": acd.ctl.controller_id,
            "number": "" if hidden else CUSTOMER,
            "number_status": "hidden" if hidden else "valid",
            "name": "" if hidden else "Erika Muster",
            "destination": NETWORK,
        },
        queue,
        0,
    )
    return call_id


def outcome(acd: Acd, call_id: str) -> str | None:
    c = acd.store.get_call(call_id)
    return c.get("outcome") if c and c["state"] == "ended" else None


def legs_of(acd: Acd, call_id: str) -> list:
    return [leg for leg in acd.fs.legs if leg.variables.get("fsacd_call") == call_id]


def events_of(acd: Acd, call_id: str, *types: str) -> list[dict]:
    return [e for e in acd.events(*types) if e.get("call") == call_id]


def test_agent_is_called_first_then_the_customer_and_both_are_bridged(acd):
    acd.fs.phones.register(GATEWAY, P.answers(after=0.3, talk=1.0))
    call_id = waiting_call(acd)
    assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
    rec = acd.store.get_call(call_id)
    assert rec["state"] == "waiting" and rec["callback"] == "1"
    assert rec["callback_number"] == CUSTOMER and rec["callback_state"] == "waiting"
    assert acd.store.position(call_id) == 1
    (req,) = events_of(acd, call_id, "callback-requested")
    assert req["number"] == CUSTOMER and req["position"] == "1"

    acd.agent("1001", P.answers(after=0.2), {"support": 1})
    wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback answered")
    agent_leg, customer_leg = legs_of(acd, call_id)
    # the agent first; the customer's leg is created once the agent answered
    assert agent_leg.endpoint == "user/1001@pbx.example"
    assert customer_leg.endpoint == f"sofia/gateway/carrier/{CUSTOMER}"
    answered_at = next(t for t, what, _ in agent_leg.log if what == "answer")
    assert customer_leg.created >= answered_at
    assert ("bridged", agent_leg.uuid) in [(w, d) for _, w, d in customer_leg.log]
    # what each phone shows: the agent the number to call back, the customer the network number
    assert agent_leg.variables["origination_caller_id_number"] == CUSTOMER
    assert agent_leg.variables["origination_caller_id_name"] == "Callback Erika Muster"
    assert customer_leg.variables["origination_caller_id_number"] == NETWORK
    assert customer_leg.variables["sip_cid_type"] == "pid"
    assert customer_leg.variables["fsacd_cid"] == "network"
    types = [e["type"] for e in events_of(acd, call_id)]
    for t in ("callback-calling", "callback-dialing", "call-bridged", "call-ended"):
        assert t in types
    assert types.index("callback-dialing") < types.index("call-bridged")
    a = acd.agent_state("1001")
    assert a["answered"] == 1 and a["missed"] == 0
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", 5, "wrap-up over")
    assert not acd.ctl.callbacks.holds(call_id)
    assert call_id not in acd.ctl.local_calls()


def test_a_queue_that_cannot_call_out_refuses_the_callback(acd):
    call_id = waiting_call(acd, queue="plain")
    assert not acd.ctl.callbacks.register(call_id, CUSTOMER, "plain")
    rec = acd.store.get_call(call_id)
    assert rec["state"] == "waiting" and "callback" not in rec
    (refused,) = events_of(acd, call_id, "callback-refused")
    assert "network number" in refused["reason"]
    assert not acd.ctl.callbacks.holds(call_id)
    assert acd.ctl.callbacks.refusal("support", CUSTOMER) is None
    assert not acd.ctl.callbacks.register(call_id, "0221 2919", "support")  # not E.164


def test_agent_no_answer_goes_to_the_next_agent(acd):
    acd.fs.phones.register(GATEWAY, P.answers(after=0.2, talk=0.5))
    call_id = waiting_call(acd)
    assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
    acd.agent("1001", P.never_answers(), {"support": 1})
    acd.agent("1002", P.answers(after=0.1), {"support": 2})
    wait_for(lambda: outcome(acd, call_id) == "callback-answered", 15, "callback answered")
    endpoints = [leg.endpoint for leg in legs_of(acd, call_id)]
    assert endpoints == [
        "user/1001@pbx.example",
        "user/1002@pbx.example",
        f"sofia/gateway/carrier/{CUSTOMER}",
    ]
    assert acd.agent_state("1001")["missed"] == 1
    assert acd.agent_state("1002")["answered"] == 1
    (failed,) = events_of(acd, call_id, "callback-agent-failed")
    assert failed["outcome"] == "1001:no-answer"
    assert acd.store.get_call(call_id)["callback_tries"] == "0"


def test_ring_all_rings_every_free_agent_and_frees_the_others_at_once(acd):
    acd.fs.phones.register(GATEWAY, P.answers(after=0.5, talk=1.0))
    call_id = waiting_call(acd, queue="sales")
    assert acd.ctl.callbacks.register(call_id, CUSTOMER, "sales")
    acd.agent("3001", P.answers(after=1.0), {"sales": 1}, login=False)
    acd.agent("3002", P.answers(after=0.2), {"sales": 2}, login=False)
    acd.agent("3003", P.never_answers(), {"sales": 3}, login=False)
    for aid in ("3001", "3002", "3003"):
        acd.store.login(aid)
    wait_for(lambda: acd.agent_state("3002")["state"] == "ringing"
             and acd.store.get_call(call_id)["callback_state"] == "dialing-customer",
             5, "3002 answered, customer dialled")  # fmt: skip
    # the losers are free while the customer is dialled
    for loser in ("3001", "3003"):
        a = acd.agent_state(loser)
        assert a["state"] == "idle" and a["missed"] == 0
    wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback answered")
    assert acd.store.get_call(call_id)["agent"] == "3002"
    assert sorted(leg.endpoint for leg in legs_of(acd, call_id))[:3] == [
        f"sofia/gateway/carrier/{CUSTOMER}",
        "user/3001@pbx.example",
        "user/3002@pbx.example",
    ]


def test_a_dead_controllers_callback_is_taken_over_when_an_agent_is_free(acd):
    """An offer for a callback whose controller is dead is not dropped: the matching
    controller adopts the callback and serves it."""
    acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=0.5))
    call_id = waiting_call(acd)
    acd.r.hset(acd.store.keys.call(call_id), "owner", "dead-ctl")
    ok, _ = acd.store.callback_register(call_id, CUSTOMER, show_number=True, owner="dead-ctl")
    assert ok and not acd.ctl.callbacks.holds(call_id)
    acd.agent("1001", P.answers(after=0.1), {"support": 1})
    wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback answered")
    (adopted,) = events_of(acd, call_id, "call-adopted")
    assert adopted["old_owner"] == "dead-ctl" and adopted["owner"] == acd.ctl.controller_id


def test_customer_no_answer_retries_after_the_delay_keeping_its_place(redis_url):
    acd = make(redis_url, retries=2, delay=1.5)
    try:
        acd.fs.phones.register(GATEWAY, P.never_answers())
        cb = waiting_call(acd)
        assert acd.ctl.callbacks.register(cb, CUSTOMER, "support")
        # two callers queued after the callback
        b = acd.fs.place_call(destination="5000", caller_number="+4922129191002")
        wait_for(lambda: acd.store.position(b.uuid) == 2, 5, "b queued")
        c = acd.fs.place_call(destination="5000", caller_number="+4922129191003")
        wait_for(lambda: acd.store.position(c.uuid) == 3, 5, "c queued")
        acd.agent("1001", P.answers(after=0.1, talk=2.0), {"support": 1})
        # first try: the customer does not answer (leg_timeout); the agent is not blamed
        wait_for(lambda: events_of(acd, cb, "callback-retry"), 10, "callback retry")
        (retry,) = events_of(acd, cb, "callback-retry")
        assert retry["outcome"] == "no-answer" and retry["tries"] == "1"
        rec = acd.store.get_call(cb)
        assert rec["callback_state"] == "scheduled" and rec["state"] == "waiting"
        assert float(rec["callback_due"]) > time.time() - 1
        a = acd.agent_state("1001")
        assert a["missed"] == 0 and a["no_answer_streak"] == 0 and a["status"] == "available"
        # while the callback waits out its delay the agent serves b (documented choice) ...
        wait_for(lambda: acd.agent_state("1001")["call"] == b.uuid, 5, "b served meanwhile")
        # ... and when the delay is over it is back in front of c, in its old place
        wait_for(lambda: acd.store.position(cb) == 1, 5, "callback back in place")
        assert acd.store.position(c.uuid) == 2
        assert acd.store.get_call(cb)["score"] == rec["score"]
        acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=0.5))
        wait_for(lambda: outcome(acd, cb) == "callback-answered", 10, "second try answered")
        served = [leg.variables.get("fsacd_call") for leg in acd.fs.legs if "1001" in leg.endpoint]
        assert served[:3] == [cb, b.uuid, cb]  # the callback before c
        assert acd.store.get_call(cb)["callback_tries"] == "1"
        for call in (b, c):
            call.hangup()
    finally:
        acd.stop()


def test_retries_used_up_end_as_callback_failed(redis_url):
    acd = make(redis_url, retries=1, delay=0.2)
    try:
        acd.fs.phones.register(GATEWAY, P.busy())
        call_id = waiting_call(acd)
        assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
        acd.agent("1001", P.answers(after=0.1), {"support": 1})
        wait_for(lambda: outcome(acd, call_id) == "callback-failed", 15, "callback failed")
        customer_legs = [leg for leg in legs_of(acd, call_id) if "gateway" in leg.endpoint]
        assert len(customer_legs) == 2  # the first try and one retry
        (retry,) = events_of(acd, call_id, "callback-retry")
        assert retry["outcome"] == "busy"
        # the event follows the call's end by a round trip or two
        wait_for(lambda: events_of(acd, call_id, "callback-failed"), 5, "callback-failed event")
        (failed,) = events_of(acd, call_id, "callback-failed")
        assert failed["outcome"] == "busy" and failed["tries"] == "2"
        rec = acd.store.get_call(call_id)
        assert rec["callback_state"] == "failed" and rec["callback_tries"] == "2"
        wait_for(lambda: acd.agent_state("1001")["state"] == "idle", 5, "agent freed")
        a = acd.agent_state("1001")
        assert a["missed"] == 0 and a["answered"] == 0 and a["status"] == "available"
        # the callback's greenlet lets go after it recorded the end
        wait_for(lambda: not acd.ctl.callbacks.holds(call_id), 5, "callback let go")
    finally:
        acd.stop()


@pytest.mark.parametrize("new_id", [False, True], ids=["same-id", "other-controller"])
def test_a_restarted_controller_picks_up_a_pending_callback(redis_url, new_id):
    acd = make(redis_url)
    try:
        acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=0.5))
        call_id = waiting_call(acd)
        assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
        acd.ctl.stop(timeout=1)
        assert acd.store.get_call(call_id)["state"] == "waiting"
        host, port = acd.fs.inbound_address
        queues = QUEUES.format(retries=2, delay=0.5, network=NETWORK)
        cfg = make_config(
            redis_url,
            queues,
            controller_id="test-ctl-2" if new_id else "test-ctl",
            inbound=f"{host}:{port}",
        )
        acd.ctl = Controller(cfg, acd.r, fs=FreeSwitchClient(acd.fs.inbound_address, "ClueCon"))
        acd.ctl.start()
        acd.store = acd.ctl.store
        assert acd.ctl.callbacks.holds(call_id)
        rec = acd.store.get_call(call_id)
        assert rec["owner"] == cfg.server.controller_id and rec["state"] == "waiting"
        acd.agent("1001", P.answers(after=0.1), {"support": 1})
        wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback answered")
        if new_id:
            assert events_of(acd, call_id, "call-adopted")
    finally:
        acd.stop()


def test_a_restart_during_the_talk_ends_the_callback_when_the_legs_end(redis_url):
    acd = make(redis_url)
    try:
        acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=2.5))
        call_id = waiting_call(acd)
        assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
        acd.agent("1001", P.answers(after=0.1), {"support": 1})
        wait_for(lambda: acd.store.get_call(call_id)["state"] == "bridged", 10, "talking")
        acd.ctl.stop(timeout=1)
        cfg = acd.cfg
        acd.ctl = Controller(cfg, acd.r, fs=FreeSwitchClient(acd.fs.inbound_address, "ClueCon"))
        acd.ctl.start()
        acd.store = acd.ctl.store
        # still talking: the agent stays busy, the call bridged
        assert acd.store.get_call(call_id)["state"] == "bridged"
        assert acd.agent_state("1001")["state"] == "in-call"
        wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback over")
        assert acd.agent_state("1001")["answered"] == 1
    finally:
        acd.stop()


def test_a_lost_event_connection_during_the_talk_falls_back_to_asking_freeswitch(acd):
    acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=2.0))
    call_id = waiting_call(acd)
    assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
    acd.agent("1001", P.answers(after=0.1), {"support": 1})
    wait_for(lambda: acd.store.get_call(call_id)["state"] == "bridged", 10, "talking")
    feed = acd.ctl.callbacks.feed
    generation = feed.generation
    feed._client.close()  # the connection drops: events of the legs may be lost
    wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback over")
    assert feed.generation > generation
    assert acd.agent_state("1001")["answered"] == 1


def test_a_hidden_callers_number_never_appears_in_events(redis_url, monkeypatch):
    monkeypatch.setenv("FSACD_HISTORY_SALT", "test-salt-0123456789")
    acd = make(redis_url)
    try:
        acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=0.5))
        call_id = waiting_call(acd, hidden=True)
        assert acd.ctl.callbacks.register(call_id, CUSTOMER, "support")
        acd.agent("1001", P.answers(after=0.1), {"support": 1})
        wait_for(lambda: outcome(acd, call_id) == "callback-answered", 10, "callback answered")
        agent_leg, customer_leg = legs_of(acd, call_id)
        assert agent_leg.variables["origination_caller_id_number"] == "anonymous"
        assert customer_leg.endpoint.endswith(CUSTOMER)  # it is called, of course
        for e in acd.events():
            text = " ".join(e.values())
            assert CUSTOMER not in text and CUSTOMER[1:] not in text, e
        (req,) = events_of(acd, call_id, "callback-requested")
        assert "number" not in req
    finally:
        acd.stop()


def test_the_callers_dialog_registers_a_callback_through_the_standin(acd):
    """The caller presses the callback key, confirms their own number and hangs up."""
    acd.fs.phones.register(GATEWAY, P.answers(after=0.1, talk=0.5))
    call = acd.fs.place_call(
        destination="5000", caller_number=CUSTOMER, dtmf=[(1.0, "5"), (2.0, "1#")]
    )
    wait_for(lambda: events_of(acd, call.uuid, "callback-requested"), 10, "callback registered")
    call.wait_hangup(10)
    rec = acd.store.get_call(call.uuid)
    assert rec["state"] == "waiting" and rec["callback_number"] == CUSTOMER
    assert acd.store.position(call.uuid) == 1
    acd.agent("1001", P.answers(after=0.1), {"support": 1})
    wait_for(lambda: outcome(acd, call.uuid) == "callback-answered", 10, "callback answered")


def test_register_withdraws_an_offer_on_its_way_and_keeps_the_place(r):
    from fsacd.state.store import Store
    from tests.matching import match_one

    s = Store(r, controller_id="c1")
    s.sync_queues(["q"])
    s.add_agent("a1", "user/a1@pbx.example", {"q": 1})
    s.login("a1")
    first = s.enqueue({"id": "call-1", "number": CUSTOMER}, "q", 0)
    s.enqueue({"id": "call-2"}, "q", 0)
    offer = match_one(s, "q", "first-available")
    assert offer is not None and offer.call_id == "call-1"
    ok, position = s.callback_register("call-1", CUSTOMER, show_number=False)
    assert ok and position == "1"
    rec = s.get_call("call-1")
    assert rec["state"] == "waiting" and rec["score"] == first["score"]
    assert rec["callback"] == "1" and rec["callback_tries"] == "0"
    assert s.get_agent("a1")["state"] == "idle" and s.get_agent("a1")["missed"] == 0
    assert not s.mark_ringing(offer)  # the withdrawn offer is stale
    # schedule takes it out of waiting; requeue puts it back with the same score
    ok, tries = s.callback_schedule("call-1", None, time.time() + 60, "busy", count=True)
    assert ok and tries == "1"
    assert s.position("call-1") is None and s.position("call-2") == 1
    assert s.callback_requeue("call-1")
    assert s.position("call-1") == 1 and s.get_call("call-1")["score"] == first["score"]
    assert not s.callback_requeue("call-1")  # only a scheduled callback
    s.finish_call("call-1", "x")
    assert s.callback_register("call-1", CUSTOMER, show_number=True) == (False, "ended")


@pytest.mark.parametrize(
    "text, error",
    [
        ("callback_retries = -1\n", "queues.support.callback_retries: must be a whole number"),
        ("callback_retries = 1.5\n", "queues.support.callback_retries: must be a whole number"),
        ("callback_retry_delay = -5\n", "queues.support.callback_retry_delay: must be a number"),
        ('callback_retry_delay = "1m"\n', "queues.support.callback_retry_delay: must be a number"),
    ],
)
def test_callback_config_keys_are_validated(text, error):
    from fsacd.config import load_text

    base = '[server]\n[redis]\n[freeswitch]\n[queues.support]\ncallback_key = "5"\n'
    with pytest.raises(ConfigError) as exc:
        load_text(base + text, env={})
    assert any(e.startswith(error) for e in exc.value.errors), exc.value.errors
    q = load_text(base + "callback_retries = 0\ncallback_retry_delay = 2.5\n", env={})
    assert (q.queues["support"].callback_retries, q.queues["support"].callback_retry_delay) == (
        0,
        2.5,
    )
    d = load_text(base, env={}).queues["support"]
    assert (d.callback_retries, d.callback_retry_delay) == (2, 60.0)


def test_supervisor_dial_calls_an_agent_then_the_customer(acd, tmp_path, redis_url):
    from click.testing import CliRunner

    from fsacd.cli.main import main

    acd.fs.phones.register(GATEWAY, P.answers(after=0.2, talk=1.0))
    acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(f'[redis]\nurl = "{redis_url}"\n[queues.support]\n')
    res = CliRunner().invoke(
        main,
        ["--config", str(cfg), "call", "dial", "0221 29191999", "--queue", "support", "--json"],
    )
    assert res.exit_code == 0, res.output
    call_id = __import__("json").loads(res.output)["call"]
    wait_for(
        lambda: outcome(acd, call_id) == "callback-answered",
        timeout=15,
        what="the supervisor's call connected and ended",
    )
    rec = acd.store.get_call(call_id)
    assert rec["origin"] == "supervisor" and rec["agent"] == "1001"
    bad = CliRunner().invoke(
        main, ["--config", str(cfg), "call", "dial", "12", "--queue", "support"]
    )
    assert bad.exit_code == 1 and "not a dialable number" in bad.output


def test_ivr_callback_option_registers_a_callback(redis_url):
    ivr = """
[ivr.main]
prompt = "tone_stream://%(100,0,600)"
timeout = 2

[ivr.main.options]
"3" = "callback:support"
"""
    queues = QUEUES.format(retries=1, delay=0.5, network=NETWORK) + ivr
    acd = Acd(redis_url, queues=queues, extra_routes='"5003" = "ivr:main"\n')
    try:
        call = acd.fs.place_call(
            destination="5003", caller_number=CUSTOMER, dtmf=[(0.3, "3"), (1.0, "1")]
        )
        call.wait_hangup(15)
        rec = acd.store.get_call(call.uuid)
        assert rec["callback"] == "1" and rec["callback_number"] == CUSTOMER
        assert rec["state"] == "waiting" and rec["queue"] == "support"
        ev = acd.events("call-ivr")[0]
        assert ev["action"] == "callback" and ev["target"] == "support"
    finally:
        acd.stop()
