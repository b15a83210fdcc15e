"""Issue 11 item 16: an offer for a call without a socket is handled the same way whether the
owner's own matcher made it or another controller handed it over: the agent is freed and the
call ends (``controller-lost``), instead of a requeue that the other controller matches and
hands back again and again."""

from __future__ import annotations

import time

from fsacd.acd.controller import Controller
from fsacd.esl.client import FreeSwitchClient
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, make_config, wait_for


def test_a_handed_off_offer_for_a_call_gone_from_its_owner_is_not_bounced(redis_url):
    acd = Acd(redis_url)
    other = None
    try:
        host, port = acd.fs.inbound_address
        cfg = make_config(redis_url, controller_id="other-ctl", inbound=f"{host}:{port}")
        other = Controller(cfg, acd.r, fs=FreeSwitchClient(acd.fs.inbound_address, "ClueCon"))
        other.start()
        acd.agent("1001", P.answers(after=0.1, talk=1), {"support": 1}, login=False)
        # a call owned by the other (live) controller that has no socket for it there
        acd.store.enqueue({"id": "lost-call", "owner": "other-ctl"}, "support", 0)
        acd.store.login("1001")
        wait_for(
            lambda: (acd.store.get_call("lost-call") or {}).get("state") == "ended",
            what="the call ended",
        )
        time.sleep(0.5)  # a bouncing match would go on meanwhile
        offered = [e for e in acd.events("call-offered") if e.get("call") == "lost-call"]
        assert len(offered) == 1
        assert acd.store.get_call("lost-call")["outcome"] == "controller-lost"
        assert acd.agent_state("1001")["state"] == "idle"
    finally:
        if other is not None:
            other.stop(timeout=1)
        acd.stop()
