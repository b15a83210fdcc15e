"""An agent is released when its leg is gone, not when the caller's channel is.

The switch hangs an agent's leg up in the leg's own thread, a tick or so after the caller's
end reaches fsacd; an agent released at the caller's end could be offered the next call
while the last one's leg was still up (two legs to one phone: 16-34 double offers in
``scripts/bench horizontal --standins 2 --rate 250``). The watcher of the leg's switch
(fsacd/acd/presence.py) reports the leg's CHANNEL_HANGUP_COMPLETE; the call waits for it at
most ``LEG_END_WAIT``, and not at all when no watcher of that switch is up.
"""

from __future__ import annotations

import logging
import time

import pytest

from fsacd.acd import callflow
from fsacd.acd.presence import Presence
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for
from tests.test_switch_e2e import CALLER, STEP, make_acd, queues, settle, switch  # noqa: F401

QUEUE = """
[queues.support]
strategy = "first-available"
ring_timeout = 5
wrap_up = 0

[queues.sales]
"""


@pytest.fixture
def acd(redis_url):
    h = Acd(redis_url, queues=QUEUE)
    wait_for(lambda: h.ctl.presence.connected and h.ctl.presence.core, what="presence up")
    yield h
    h.stop()


def _talking(acd: Acd) -> tuple[object, object]:
    acd.agent("1001", P.answers(after=0.0, talk=None), {"support": 1})
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
    leg = call.wait_bridged(5)
    wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="in call")
    return call, leg


def _released_at(acd: Acd, call_id: str) -> float:
    for e in acd.events("agent-state"):
        if e.get("call") == call_id and e.get("state") in ("idle", "wrap-up"):
            return float(e["ts"])
    raise AssertionError("no release recorded")


def test_the_agent_is_released_after_its_leg_is_gone(acd):
    call, leg = _talking(acd)
    call.hangup()
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", what="agent idle")
    hungup = leg.channel.profile.times.hungup / 1e6
    assert hungup > 0
    assert _released_at(acd, call.uuid) >= hungup - 0.002  # ts has ms resolution


def test_a_leg_end_never_reported_holds_the_agent_at_most_leg_end_wait(acd, caplog):
    for watcher in acd.ctl.presences:
        watcher.on_own_hangup = None  # the switch's report is lost
    call, leg = _talking(acd)
    caplog.set_level(logging.INFO, logger="fsacd.acd.callflow")
    t0 = time.time()
    call.hangup()
    time.sleep(callflow.LEG_END_WAIT / 2)
    assert acd.agent_state("1001")["state"] == "in-call"  # still waiting for the report
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", timeout=5, what="released")
    assert time.time() - t0 >= callflow.LEG_END_WAIT - 0.05
    assert any("not reported gone" in r.getMessage() for r in caplog.records)


def test_without_a_watcher_of_the_switch_the_agent_is_released_at_once(acd):
    acd.ctl.presence.stop()
    call, _ = _talking(acd)
    t0 = time.time()
    call.hangup()
    wait_for(lambda: acd.agent_state("1001")["state"] == "idle", what="agent idle")
    assert time.time() - t0 < callflow.LEG_END_WAIT


def test_the_switch_reports_the_agent_legs_end(switch, make_acd):  # noqa: F811
    """On the stand-in and a real FreeSWITCH: the watcher hears the agent leg's end, so the
    call waits for it (and does not run into LEG_END_WAIT)."""
    acd = make_acd(queues())
    assert acd.ctl.presence.wait_connected(STEP)
    acd.agent("agent", "1001", {"support": 1})
    call = switch.place_call(destination="5000", caller_number=CALLER)
    call.wait_bridged(STEP)
    acd.wait_call(call.uuid, "bridged")
    t0 = time.time()
    call.hangup()
    acd.wait_state("1001", "wrap-up", "idle")  # released
    assert time.time() - t0 < callflow.LEG_END_WAIT  # the report came, not the timeout
    assert acd.ctl.leg_ends_seen == 1
    settle(acd, call)


# --- the watcher's raw look at an event ---------------------------------------------------


def _body(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n\n").encode()


def test_the_watcher_parses_only_the_leg_ends_it_is_asked_for(r):
    from fsacd.state.store import Store

    w = Presence(Store(r), ("127.0.0.1", 9), None)
    waited = {"leg-1"}
    w.wants_leg = waited.__contains__
    ours_end = _body("Event-Name: CHANNEL_HANGUP_COMPLETE", "Unique-ID: leg-1",
                     "variable_fsacd_agent: 1001")  # fmt: skip
    assert w._wanted(ours_end)
    assert not w._wanted(ours_end.replace(b"leg-1", b"leg-2"))  # nobody waits for it
    assert not w._wanted(_body("Event-Name: CHANNEL_CREATE", "Unique-ID: leg-1",
                               "variable_fsacd_call: c1"))  # fmt: skip
    # another channel (maybe an agent's own call): always parsed
    assert w._wanted(_body("Event-Name: CHANNEL_CREATE", "Unique-ID: x",
                           "variable_presence_id: 1001@pbx.example"))  # fmt: skip
    # an empty fsacd_agent is not ours (as is_ours reads it)
    assert w._wanted(_body("Event-Name: CHANNEL_CREATE", "Unique-ID: x", "variable_fsacd_agent: "))
    assert w._wanted(_body("Event-Name: DTMF", "Unique-ID: leg-1", "DTMF-Digit: 5"))
