"""The call flow on FreeSWITCH's clock: what is sent to a channel, in which order, per tick.

A real channel runs what it is sent at its next 20 ms media tick; ``uuid_break <uuid> all``
flushes what is queued and not yet started, silently. The stand-in keeps that clock (its
transcript replay checks it against recordings), so these tests see what a real switch does.
They check the sequence of applications, not speed (speed lives in ``scripts/bench``).
"""

from __future__ import annotations

import time

import gevent
import pytest

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for

#: the stand-in's clock is checked here, not the garbage collector's (conftest.no_gc)
pytestmark = pytest.mark.usefixtures("no_gc")

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
wrap_up = 0.2

[queues.sales]
strategy = "ring-all"
"""

CONSENT = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
wrap_up = 0.2
recording = "ask"
recording_notice = ["rec/notice.wav"]
consent_key = "1"

[queues.sales]
strategy = "ring-all"
"""

PRE_ANSWER = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
wrap_up = 0.2
answer_mode = "pre-answer"

[queues.sales]
strategy = "ring-all"
"""


@pytest.fixture
def acd(redis_url):
    h = Acd(redis_url, queues=QUEUES)
    yield h
    h.stop()


def apps(call) -> list[str]:
    """Applications the caller's channel ran, by name (the socket app first)."""
    return [name for name, _ in call.channel.app_log]


def executed_at(call, name: str) -> list[float]:
    return [
        t
        for t, what, detail in call.channel.log
        if what == "execute" and detail.split(" ")[0] == name
    ]


def test_free_agent_gets_the_bridge_in_the_first_tick_without_music(acd):
    acd.agent("1001", P.answers(after=0.05, talk=30), {"support": 1})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
    call.wait_bridged(5)
    # no answer, no hold music, no awaited sets: one multiset and the bridge
    assert apps(call) == ["socket", "multiset", "bridge"]
    (multiset,) = [arg for name, arg in call.channel.app_log if name == "multiset"]
    assert "socket_resume=false" in multiset and "hangup_after_bridge=true" in multiset
    # both ran in the same tick
    assert abs(executed_at(call, "bridge")[0] - executed_at(call, "multiset")[0]) < 0.015
    assert call.channel.answered  # the bridge answered the caller
    call.hangup()
    wait_for(acd.all_agents_free, what="agent free")


def test_waiting_caller_gets_answer_variables_and_music_in_one_tick(acd):
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191002")
    wait_for(lambda: "playback" in apps(call), what="hold music")
    assert apps(call) == ["socket", "answer", "multiset", "playback"]
    times = [executed_at(call, a)[0] for a in ("answer", "multiset", "playback")]
    assert max(times) - min(times) < 0.015
    # an agent logs in: a plain break (the queue is left alone), then the bridge
    acd.agent("1002", P.answers(after=0.05, talk=30), {"support": 1})
    call.wait_bridged(5)
    assert apps(call)[-2:] == ["multiset", "bridge"]
    breaks = [detail for _, what, detail in call.channel.log if what == "break"]
    assert breaks == [""], breaks  # uuid_break <uuid>, never "all"
    call.hangup()
    wait_for(acd.all_agents_free, what="agent free")


def test_agent_not_answering_puts_the_caller_back_on_music(acd):
    acd.agent("1003", P.never_answers(), {"support": 1})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191003")
    wait_for(lambda: apps(call).count("playback") >= 1, timeout=8, what="music after no answer")
    seq = apps(call)
    assert seq[:3] == ["socket", "multiset", "bridge"]
    # back to waiting: answered now (answer_mode "answer"), socket_resume true, music
    assert seq[3:6] == ["multiset", "answer", "playback"] or seq[3:6] == [
        "answer",
        "multiset",
        "playback",
    ], seq
    wait_for(lambda: acd.agent_state("1003")["state"] in ("idle", "wrap-up"), what="released")
    assert int(acd.agent_state("1003")["missed"]) == 1
    call.hangup()


def test_pre_answer_mode_plays_music_as_early_media(redis_url):
    acd = Acd(redis_url, queues=PRE_ANSWER)
    try:
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191004")
        wait_for(lambda: "playback" in apps(call), what="hold music")
        assert apps(call) == ["socket", "pre_answer", "multiset", "playback"]
        assert call.channel.early and not call.channel.answered
        acd.agent("1004", P.answers(after=0.05, talk=30), {"support": 1})
        call.wait_bridged(5)
        wait_for(lambda: call.channel.answered, what="answered by the bridge")
        call.hangup()
        wait_for(acd.all_agents_free, what="agent free")
    finally:
        acd.stop()


def test_a_flushed_application_is_not_waited_for(redis_url, caplog):
    """Someone flushes the caller's queue (``uuid_break <uuid> all``) before the consent
    notice started: no event will ever come for it. The call flow notices within
    APP_START_TIMEOUT, says why, and ends the call instead of waiting for ever."""
    acd = Acd(redis_url, queues=CONSENT)
    try:
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191005")
        # the notice is queued (answer, multiset, play_and_get_digits) for the next tick
        deadline = time.time() + 5
        while not any(
            c.get("execute-app-name") == "play_and_get_digits" for c in call.channel.private_queue
        ):
            assert time.time() < deadline, "notice never queued"
            gevent.sleep(0.001)
        assert acd.fs.execute_api(f"uuid_break {call.uuid} all").startswith("+OK")
        wait_for(
            lambda: (acd.store.get_call(call.uuid) or {}).get("state") == "ended",
            timeout=6,
            what="call ended",
        )
        rec = acd.store.get_call(call.uuid)
        assert rec["outcome"] == "error"
        assert "play_and_get_digits" not in apps(call)
        assert any("did not start within" in r.getMessage() for r in caplog.records)
    finally:
        acd.stop()
