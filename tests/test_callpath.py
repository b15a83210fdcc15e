"""The call path end to end: stand-in FreeSWITCH -> outbound socket -> Redis -> agents.

Real TCP sockets, a real Redis, the controller running in this process's greenlets.
"""

from __future__ import annotations

import socket
import time

import gevent
import pytest

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for


@pytest.fixture
def acd(redis_url):
    h = Acd(redis_url)
    yield h
    h.stop()


def make(redis_url, queues: str, **kw) -> Acd:
    return Acd(redis_url, queues=queues, **kw)


def rung_agents(call) -> list[str]:
    """Agent ids of every leg the stand-in placed for this call, in order."""
    return [leg.variables.get("fsacd_agent") for leg in call.legs]


def test_first_available_always_starts_at_position_one(acd):
    acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    acd.agent("1002", P.answers(after=0.1, talk=30), {"support": 2})
    acd.agent("1003", P.answers(after=0.1, talk=30), {"support": 3})
    c1 = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="1001 in call")
    c2 = acd.fs.place_call(destination="5000", caller_number="+4922129191002")
    wait_for(lambda: acd.agent_state("1002")["state"] == "in-call", what="1002 in call")
    assert rung_agents(c1) == ["1001"]
    assert rung_agents(c2) == ["1002"]
    assert acd.agent_state("1003")["state"] == "idle"
    # 1001 is free again: the next call goes to position 1 again, not on to 1003
    c1.hangup()
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", what="1001 idle after wrap-up")
    c3 = acd.fs.place_call(destination="5000", caller_number="+4922129191003")
    wait_for(lambda: rung_agents(c3), what="c3 rung")
    assert rung_agents(c3) == ["1001"]
    for c in (c2, c3):
        c.hangup()


def test_most_idle_prefers_the_longest_idle_agent(redis_url):
    acd = make(redis_url, DEFAULT_MOST_IDLE)
    try:
        for aid in ("2001", "2002", "2003"):
            acd.agent(aid, P.answers(after=0.1, talk=30), {"support": 1})
        now = time.time()
        # 2002 ended a call longest ago; 2003 never had a call but logged in recently
        acd.r.hset(acd.store.keys.agent("2001"), "last_call_end", f"{now - 10:.3f}")
        acd.r.hset(acd.store.keys.agent("2002"), "last_call_end", f"{now - 100:.3f}")
        acd.r.hset(acd.store.keys.agent("2003"), "login_at", f"{now - 50:.3f}")
        calls = []
        for i, expected in enumerate(("2002", "2003", "2001")):
            c = acd.fs.place_call(destination="5000", caller_number=f"+492212919100{i}")
            calls.append(c)
            wait_for(
                lambda aid=expected: acd.agent_state(aid)["state"] == "in-call",
                what=f"{expected} in call",
            )
            assert rung_agents(c) == [expected]
        for c in calls:
            c.hangup()
    finally:
        acd.stop()


DEFAULT_MOST_IDLE = """
[queues.support]
strategy = "most-idle"
ring_timeout = 1
wrap_up = 0.3

[queues.sales]
strategy = "ring-all"
ring_timeout = 2
wrap_up = 0.3
"""


def test_ring_all_first_answer_wins_and_losers_are_freed(acd):
    acd.agent("3001", P.answers(after=1.5, talk=30), {"sales": 1})
    acd.agent("3002", P.answers(after=0.2, talk=30), {"sales": 2})
    acd.agent("3003", P.never_answers(), {"sales": 3})
    call = acd.fs.place_call(destination="5001", caller_number="+4922129191999")
    wait_for(lambda: acd.agent_state("3002")["state"] == "in-call", what="3002 answers")
    assert sorted(rung_agents(call)) == ["3001", "3002", "3003"]
    # one bridge with all three legs: each contact rung once for this offer
    bridges = [arg for app, arg in call.apps if app == "bridge"]
    assert len(bridges) == 1 and bridges[0].count("user/") == 3
    wait_for(
        lambda: (
            acd.agent_state("3001")["state"] == "idle"
            and acd.agent_state("3003")["state"] == "idle"
        ),
        what="losers released",
    )
    for loser in ("3001", "3003"):
        a = acd.agent_state(loser)
        assert a["missed"] == 0 and a["no_answer_streak"] == 0
    call.hangup()
    wait_for(acd.all_agents_free, what="all agents free after the call")


def test_ring_timeout_moves_on_to_the_next_agent(acd):
    acd.agent("1001", P.never_answers(), {"support": 1})
    acd.agent("1002", P.answers(after=0.1, talk=30), {"support": 2})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    wait_for(
        lambda: acd.agent_state("1002")["state"] == "in-call",
        timeout=15,
        what="1002 answers after 1001 timed out",
    )
    assert rung_agents(call) == ["1001", "1002"]
    a = acd.agent_state("1001")
    assert a["missed"] == 1 and a["no_answer_streak"] == 1
    assert call.hangup_cause is None  # the caller was never dropped
    missed = acd.events("agent-missed")
    assert missed and missed[0]["agent"] == "1001" and missed[0]["outcome"] == "no-answer"
    call.hangup()


@pytest.mark.parametrize("behaviour,outcome", [(P.busy, "busy"), (P.rejects, "reject")])
def test_busy_or_reject_moves_on_and_keeps_the_caller(acd, behaviour, outcome):
    acd.agent("1001", behaviour(), {"support": 1})
    acd.agent("1002", P.answers(after=0.1, talk=30), {"support": 2})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    wait_for(lambda: acd.agent_state("1002")["state"] == "in-call", what="1002 answers")
    assert rung_agents(call) == ["1001", "1002"]
    a = acd.agent_state("1001")
    assert a["missed"] == 0 and a["no_answer_streak"] == 0  # only no-answers count
    assert float(a["ready_at"]) > 0  # but the delay applies
    assert [e["outcome"] for e in acd.events("agent-missed")] == [outcome]
    assert call.hangup_cause is None
    call.hangup()


def test_max_no_answer_puts_the_agent_on_break(redis_url):
    queues = """
[queues.support]
strategy = "first-available"
ring_timeout = 1
max_no_answer = 2
no_answer_delay = 0

[queues.sales]
strategy = "ring-all"
"""
    acd = make(redis_url, queues)
    try:
        acd.agent("1001", P.never_answers(), {"support": 1})
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
        wait_for(
            lambda: acd.agent_state("1001")["status"] == "on-break",
            timeout=10,
            what="agent on break",
        )
        a = acd.agent_state("1001")
        assert a["break_reason"] == "no-answer" and a["missed"] == 2
        assert a["state"] == "idle"
        # the caller is still waiting, not dropped
        assert call.hangup_cause is None
        assert acd.store.get_call(call.uuid)["state"] == "waiting"
        call.hangup()
    finally:
        acd.stop()


def test_caller_hangs_up_while_queued(acd):
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    wait_for(
        lambda: (acd.store.get_call(call.uuid) or {}).get("state") == "waiting", what="call waiting"
    )
    wait_for(lambda: call.heard and call.heard[-1][0] == "moh", what="hold music")
    call.hangup("ORIGINATOR_CANCEL")
    wait_for(
        lambda: (acd.store.get_call(call.uuid) or {}).get("state") == "ended", what="call ended"
    )
    rec = acd.store.get_call(call.uuid)
    assert rec["outcome"] == "abandoned"
    assert acd.store.queue_view("support")["waiting"] == []


def test_caller_hangs_up_while_agents_ring(acd):
    acd.agent("3001", P.never_answers(), {"sales": 1})
    acd.agent("3002", P.never_answers(), {"sales": 2})
    call = acd.fs.place_call(destination="5001", caller_number="+4922129191999")
    wait_for(lambda: acd.agent_state("3001")["state"] == "ringing", what="ringing")
    call.hangup("ORIGINATOR_CANCEL")
    wait_for(acd.all_agents_free, what="agents freed")
    for aid in ("3001", "3002"):
        a = acd.agent_state(aid)
        assert a["missed"] == 0 and a["call"] == ""
    assert acd.store.get_call(call.uuid)["outcome"] == "abandoned"


def test_caller_hangs_up_while_bridged(acd):
    acd.agent("1001", P.answers(after=0.1, talk=60), {"support": 1})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="in call")
    time.sleep(0.3)
    call.hangup()
    wait_for(lambda: acd.agent_state("1001")["state"] in ("wrap-up", "idle"), what="wrap-up")
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", what="idle after wrap-up")
    a = acd.agent_state("1001")
    assert a["answered"] == 1 and a["talk_time"] > 0.2 and a["call"] == ""
    rec = acd.store.get_call(call.uuid)
    assert rec["outcome"] == "answered" and rec["agent"] == "1001"


def test_agent_hangs_up_ends_the_call_and_wraps_up(acd):
    acd.agent("1001", P.answers(after=0.1, talk=0.5), {"support": 1})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    call.wait_hangup(timeout=10)  # hangup_after_bridge=true ends the caller's leg
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", what="idle after wrap-up")
    assert acd.store.get_call(call.uuid)["outcome"] == "answered"
    assert acd.agent_state("1001")["answered"] == 1


def test_strict_order_under_priorities(acd):
    """Calls are served by priority (higher first), then arrival; never out of order."""
    plan = [("a", 0), ("b", 10), ("c", 0), ("d", 10), ("e", 5)]
    calls = {}
    for name, prio in plan:
        calls[name] = acd.fs.place_call(
            destination="5000",
            caller_number="+4922129191999",
            variables={"fsacd_priority": str(prio)},
        )
        wait_for(
            lambda c=calls[name]: (acd.store.get_call(c.uuid) or {}).get("state") == "waiting",
            what=f"{name} queued",
        )
    by_uuid = {c.uuid: n for n, c in calls.items()}
    acd.agent("1001", P.answers(after=0.05, talk=0.2), {"support": 1})
    wait_for(lambda: len(acd.events("call-ended")) == len(plan), timeout=30, what="all served")
    served = [by_uuid[e["call"]] for e in acd.events("call-bridged")]
    assert served == ["b", "d", "e", "a", "c"]


def test_max_wait_overflows_to_the_next_queue(redis_url):
    queues = """
[queues.support]
strategy = "first-available"
max_wait = 1
overflow = "sales"

[queues.sales]
strategy = "ring-all"
ring_timeout = 2
"""
    acd = make(redis_url, queues)
    try:
        acd.agent("3001", P.answers(after=0.1, talk=30), {"sales": 1})
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
        wait_for(
            lambda: acd.agent_state("3001")["state"] == "in-call",
            timeout=8,
            what="served in overflow queue",
        )
        ev = acd.events("call-overflowed")
        assert ev and ev[0]["call"] == call.uuid
        assert acd.store.get_call(call.uuid)["queue"] == "sales"
        call.hangup()
    finally:
        acd.stop()


def test_max_wait_without_overflow_ends_the_call(redis_url):
    queues = """
[queues.support]
strategy = "first-available"
max_wait = 1

[queues.sales]
strategy = "ring-all"
"""
    acd = make(redis_url, queues)
    try:
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
        call.wait_hangup(timeout=8)
        assert acd.store.get_call(call.uuid)["outcome"] == "max-wait"
    finally:
        acd.stop()


def test_unknown_target_gets_error_tone_and_hangup(acd):
    acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    bad = acd.fs.place_call(
        destination="5000", caller_number="+4922129191999", variables={"fsacd_route": "queue:nope"}
    )
    cause = bad.wait_hangup(timeout=5)
    assert cause == "UNALLOCATED_NUMBER"
    assert any(app == "playback" and "tone_stream" in (arg or "") for app, arg in bad.apps)
    rejected = acd.events("call-rejected")
    assert rejected and "nope" in rejected[0]["reason"]
    # the server still serves
    good = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="next call served")
    good.hangup()


def test_hostile_caller_name_cannot_break_the_dial_string(acd):
    acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    evil = "Eve,}[x=y]user/666|\nsendmsg\n${system(rm)}'"
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191999", caller_name=evil)
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="in call")
    assert len(call.legs) == 1  # no extra leg smuggled in
    shown = call.legs[0].variables["origination_caller_id_name"]
    for ch in ",}[]|\n$'":
        assert ch not in shown
    call.hangup()


# --- a misbehaving "FreeSWITCH" must only drop its own call --------------------------------


def _raw_peer(address, payload: bytes) -> None:
    s = socket.create_connection(address, timeout=5)
    try:
        assert s.recv(100).startswith(b"connect")
        s.sendall(payload)
    finally:
        s.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"Content-Type: command/reply\nContent-Length: 500\n\nshort",  # short frame then EOF
        b"Reply-Text: +OK\nSocket-Mode: async\n\n",  # no Content-Type
        b"\x00\xff garbage without any framing\n\n",
    ],
)
def test_a_bad_peer_drops_only_its_own_call(acd, payload):
    acd.agent("1001", P.answers(after=0.3, talk=30), {"support": 1})
    good = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
    _raw_peer(acd.ctl.address, payload)
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="good call served")
    good.hangup()
    wait_for(lambda: acd.ctl.server.active_calls == 0, what="connections closed")


RULES = """
[queues.support]
strategy = "first-available"
ring_timeout = 1
join_empty = false
leave_empty = true
overflow = "sales"

[queues.sales]
strategy = "ring-all"
ring_timeout = 1
max_length = 1
"""


def test_join_empty_false_sends_callers_to_overflow(redis_url):
    acd = make(redis_url, RULES)
    try:
        acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1}, login=False)
        acd.agent("3001", P.answers(after=0.1, talk=30), {"sales": 1})
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
        wait_for(lambda: acd.agent_state("3001")["state"] == "in-call", what="served in sales")
        diverted = acd.events("call-diverted")
        assert diverted[0]["queue"] == "support" and diverted[0]["reason"] == "empty"
        call.hangup()
    finally:
        acd.stop()


def test_max_length_turns_callers_away(redis_url):
    acd = make(redis_url, RULES)
    try:
        first = acd.fs.place_call(destination="5001", caller_number="+4922129191001")
        wait_for(lambda: acd.store.waiting_count("sales") == 1, what="one waiting")
        second = acd.fs.place_call(destination="5001", caller_number="+4922129191002")
        assert second.wait_hangup(timeout=5) == "NORMAL_CIRCUIT_CONGESTION"
        assert second.variables.get("fsacd_result") == "full"
        rejected = acd.events("call-rejected")
        assert rejected and rejected[0]["reason"] == "full"
        assert first.is_up
        first.hangup()
    finally:
        acd.stop()


def test_leave_empty_moves_waiting_callers_when_the_last_agent_leaves(redis_url):
    acd = make(redis_url, RULES)
    try:
        acd.agent("1001", P.busy(), {"support": 1})
        acd.agent("3001", P.answers(after=0.1, talk=30), {"sales": 1}, login=False)
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
        wait_for(
            lambda: (acd.store.get_call(call.uuid) or {}).get("state") == "waiting",
            what="waiting in support",
        )
        acd.store.logout("1001")
        acd.store.login("3001")
        wait_for(
            lambda: acd.agent_state("3001")["state"] == "in-call",
            timeout=8,
            what="moved to sales and served",
        )
        moved = acd.events("call-overflowed")
        assert moved and moved[0]["reason"] == "empty"
        call.hangup()
    finally:
        acd.stop()


def test_agents_on_a_direct_call_are_skipped(acd):
    acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    acd.agent("1002", P.answers(after=0.1, talk=30), {"support": 2})
    acd.fs.phones.register("user/9999@pbx.example", P.answers(after=0.0, talk=60))
    # 1001 is on a direct call FreeSWITCH knows about (presence id of the agent's user)
    direct = "11111111-2222-3333-4444-555555555555"
    gevent.spawn(
        acd.fs.execute_api,
        f"originate {{origination_uuid={direct},"
        "presence_id=1001@pbx.example}user/9999@pbx.example &park",
    )
    wait_for(lambda: "1001" in acd.ctl.presence.busy_agents(), what="1001 seen busy")
    c1 = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
    wait_for(lambda: acd.agent_state("1002")["state"] == "in-call", what="1002 gets the call")
    assert rung_agents(c1) == ["1002"]
    # the direct call ends: 1001 is offered calls again
    acd.fs.execute_api(f"uuid_kill {direct}")
    wait_for(lambda: "1001" not in acd.ctl.presence.busy_agents(), what="1001 free again")
    c2 = acd.fs.place_call(destination="5000", caller_number="+4922129191002")
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="1001 gets the call")
    for c in (c1, c2):
        c.hangup()


def test_hold_music_plays_in_bounded_segments(redis_url):
    queues = """
[queues.support]
strategy = "first-available"
moh_segment = 2

[queues.sales]
strategy = "ring-all"
"""
    acd = make(redis_url, queues)
    try:
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191999")
        wait_for(
            lambda: sum(1 for kind, _ in call.heard if kind == "moh") >= 2,
            timeout=8,
            what="hold music restarted after one segment",
        )
        assert call.variables["playback_timeout_sec"] == "2"
        assert call.is_up
        call.hangup()
    finally:
        acd.stop()


def test_an_undiallable_contact_in_redis_benches_the_agent_not_the_caller(redis_url, caplog):
    """A contact written to Redis by hand (or before the checks) that cannot be dialled: the
    agent goes on break ``bad-contact`` once, the caller reaches the other free agent."""
    acd = make(
        redis_url,
        """
[queues.support]
strategy = "first-available"
ring_timeout = 2
wrap_up = 0.2

[queues.sales]
strategy = "ring-all"
""",
    )
    try:
        acd.agent("1001", P.answers(after=0.05, talk=30), {"support": 1})
        acd.agent("1002", P.answers(after=0.05, talk=30), {"support": 2})
        acd.store.set_agent_fields("1001", contact="${system(id)}")
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191007")
        call.wait_bridged(5)
        assert rung_agents(call) == ["1002"]
        a = acd.agent_state("1001")
        assert (a["status"], a["break_reason"]) == ("on-break", "bad-contact")
        warned = [r for r in caplog.records if "cannot be dialled" in r.getMessage()]
        assert len(warned) == 1
        assert [e["agent"] for e in acd.events("agent-bad-contact")] == ["1001"]
        # its pop went out with the ringing, before the contact was read: withdrawn at once
        pops = [f["stage"] for _, f in acd.r.xrange(acd.store.keys.agent_pops("1001"))]
        assert pops == ["offer", "withdrawn"]
        call.hangup()
    finally:
        acd.stop()
