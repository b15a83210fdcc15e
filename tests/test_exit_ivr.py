"""Issue 11 item 15: the exit key into an IVR that leads back to a queue starts a fresh stay
(no recursion into the queue loop, nothing carried over): a caller who overflowed once, left
through the IVR and came back overflows again, as a new caller would."""

from __future__ import annotations

import gc

import greenlet

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
max_wait = 1
overflow = "sales"

[queues.sales]
strategy = "first-available"
ring_timeout = 2
exit_key = "9"
exit_target = "ivr:back"

[ivr.back]
prompt = "tone_stream://%(100,0,600)"
timeout = 1
max_tries = 1
default = "queue:support"

[ivr.back.options]
"1" = "queue:support"
"""


def serve_depth() -> int:
    """How deeply ``_serve_queue`` is nested in any call greenlet of this process now."""
    deepest = 0
    for g in gc.get_objects():
        if isinstance(g, greenlet.greenlet) and g.gr_frame is not None:
            f, n = g.gr_frame, 0
            while f is not None:
                n += f.f_code.co_name == "_serve_queue"
                f = f.f_back
            deepest = max(deepest, n)
    return deepest


def test_exit_into_an_ivr_and_back_is_a_fresh_stay(redis_url):
    acd = Acd(redis_url, queues=QUEUES)
    try:
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")

        def overflows() -> list[dict]:
            return [e for e in acd.events("call-overflowed") if e.get("reason") == "max-wait"]

        wait_for(lambda: len(overflows()) == 1, what="first overflow to sales")
        call.send_dtmf("9")  # out through the IVR, whose default leads back to support
        wait_for(lambda: acd.events("call-ivr"), what="the IVR")
        wait_for(lambda: len(overflows()) == 2, timeout=15, what="second overflow to sales")
        assert [e["queue"] for e in overflows()] == ["sales", "sales"]
        assert serve_depth() == 1  # the second stay runs from the top, not inside the first
        rec = acd.store.get_call(call.uuid)
        assert rec["state"] == "waiting" and rec["queue"] == "sales"
        # served at last: the record of the second stay ends answered
        acd.agent("2001", P.answers(after=0.1, talk=0.3), {"sales": 1})
        call.wait_bridged(8)
        wait_for(
            lambda: any(e.get("outcome") == "answered" for e in acd.events("call-ended")),
            what="answered",
        )
        outcomes = [e["outcome"] for e in acd.events("call-ended")]
        assert outcomes == ["exit-with-key", "answered"]
    finally:
        acd.stop()
