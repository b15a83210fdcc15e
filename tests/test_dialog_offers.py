"""Issue 11 item 13: no agent stays ``reserved`` while a queued caller is in a dialog.

The recording notice and the callback dialog park the caller (out of the queue's waiting
list, place kept): an agent who becomes free meanwhile is not reserved for them; once the
dialog is over the caller is back in its place and served. An announcement is stopped by an
offer: the agent rings at once."""

from __future__ import annotations

import time

from fsacd.core.announce import Sounds
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for

#: a prompt far longer than any wait below: only the caller's key or an offer ends it
LONG = "tone_stream://%(60000,0,500)"

QUEUES = f"""
[queues.support]
strategy = "first-available"
ring_timeout = 2
recording = "{{recording}}"
recording_notice = "{LONG}"
announce_every = {{announce}}
callback_key = "5"
callback_prompt = ["{LONG}"]
network_number = "+4922199990"
gateway = "carrier"

[queues.sales]
"""


def make(redis_url, recording="off", announce=0) -> Acd:
    return Acd(redis_url, queues=QUEUES.format(recording=recording, announce=announce))


def _record(acd: Acd, call) -> dict:
    return acd.store.get_call(call.uuid) or {}


def _bridged(acd: Acd, call, decided: bool = False) -> dict | None:
    """The call's record once bridged (and, with ``decided``, its recording decided)."""
    rec = _record(acd, call)
    ok = rec.get("state") == "bridged" and (rec.get("recorded") or not decided)
    return rec if ok else None


def _playing(call, needle: str) -> bool:
    return any(needle in (arg or "") for _, arg in call.apps)


def test_an_agent_free_during_the_recording_notice_is_not_held_for_it(redis_url):
    acd = make(redis_url, recording="ask")
    try:
        acd.agent("1001", P.answers(after=0.2, talk=None), {"support": 1}, login=False)
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        wait_for(lambda: _playing(call, "60000"), what="the notice")
        assert _record(acd, call).get("parked") == "1"
        acd.store.login("1001")
        time.sleep(0.5)  # a matcher pass or two
        assert acd.agent_state("1001")["state"] == "idle"  # not reserved for the dialog
        assert _record(acd, call)["state"] == "waiting"
        call.send_dtmf("1")  # the caller consents: the dialog ends, the caller is served
        call.wait_bridged(10)
        rec = wait_for(lambda: _bridged(acd, call, decided=True), what="bridged in Redis")
        assert rec["agent"] == "1001" and rec["rec_reason"] == "agent-no-consent"
        assert "parked" not in rec
        call.hangup()
    finally:
        acd.stop()


def test_an_agent_free_during_the_callback_dialog_serves_the_caller_after_it(redis_url):
    acd = make(redis_url)
    try:
        acd.agent("1001", P.answers(after=0.2, talk=None), {"support": 1}, login=False)
        call = acd.fs.place_call(
            destination="5000", caller_number="+4922129191001", dtmf=[(0.6, "5")]
        )
        wait_for(
            lambda: any(app == "play_and_get_digits" for app, _ in call.apps),
            what="callback dialog",
        )
        acd.store.login("1001")
        time.sleep(0.5)
        assert acd.agent_state("1001")["state"] == "idle"
        for _ in range(2):  # no number, twice: the caller declines and keeps waiting
            call.send_dtmf("#")
            time.sleep(0.4)
        call.wait_bridged(10)
        rec = wait_for(lambda: _bridged(acd, call), what="bridged in Redis")
        assert rec.get("callback") != "1" and rec["agent"] == "1001"
        assert acd.events("callback-declined")
        call.hangup()
        wait_for(acd.all_agents_free, what="agent free")
    finally:
        acd.stop()


def test_an_offer_stops_an_announcement(redis_url):
    acd = make(redis_url, announce=10)
    try:
        acd.cfg.queues["support"].__dict__["announce_every"] = 1.0  # short for the test
        acd.fs.media_durations[Sounds().you_are_number] = 60.0
        acd.agent("1001", P.answers(after=0.2, talk=None), {"support": 1}, login=False)
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        wait_for(lambda: _playing(call, Sounds().you_are_number), what="announcement")
        acd.store.login("1001")
        call.wait_bridged(10)  # the 60 s prompt was stopped for the agent
        rec = wait_for(lambda: _bridged(acd, call), what="bridged in Redis")
        assert rec["agent"] == "1001"
        call.hangup()
    finally:
        acd.stop()
