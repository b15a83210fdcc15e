"""Issue 11 item 12: FreeSWITCH bridges to an agent whose offer Redis no longer holds (the
offer was withdrawn while the phone rang): the records must say the agent is talking, so the
next caller is never offered to them."""

from __future__ import annotations

from fsacd.standin import PhoneBehaviour as P
from fsacd.state.store import Offer
from tests.acd_harness import Acd, wait_for


def test_a_stale_offer_that_freeswitch_bridged_is_recorded_as_bridged(redis_url):
    acd = Acd(redis_url)
    try:
        acd.agent("1001", P.answers(after=0.6, talk=None), {"support": 1})
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        wait_for(lambda: acd.agent_state("1001")["state"] == "ringing", what="agent ringing")
        rec = acd.store.get_call(call.uuid)
        offer = Offer(
            offer_id=rec["offer"], call_id=call.uuid, queue="support", agents=["1001"], owner=""
        )
        assert acd.store.cancel_offer(offer)  # withdrawn in Redis; the phone keeps ringing
        assert acd.agent_state("1001")["state"] == "idle"
        call.wait_bridged(5)
        wait_for(
            lambda: acd.agent_state("1001")["state"] == "in-call", what="agent shown in-call"
        )
        assert acd.agent_state("1001")["call"] == call.uuid
        rec = acd.store.get_call(call.uuid)
        assert rec["state"] == "bridged" and rec["agent"] == "1001"
        # a second caller is not offered to the talking agent
        second = acd.fs.place_call(destination="5000", caller_number="+4922129191002")
        wait_for(
            lambda: (acd.store.get_call(second.uuid) or {}).get("state") == "waiting",
            what="second caller waiting",
        )
        assert (acd.store.get_call(second.uuid) or {}).get("state") == "waiting"
        call.hangup()
        wait_for(
            lambda: {e["call"]: e["outcome"] for e in acd.events("call-ended")}.get(call.uuid),
            what="first call ended",
        )
        ended = {e["call"]: e["outcome"] for e in acd.events("call-ended")}
        assert ended[call.uuid] == "answered"
        assert int(acd.agent_state("1001")["answered"]) >= 1
        second.hangup()
    finally:
        acd.stop()
