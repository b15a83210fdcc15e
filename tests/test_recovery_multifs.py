"""Several FreeSWITCH servers: a controller never judges calls on a FreeSWITCH it can't ask."""

from __future__ import annotations

import gevent
import pytest

from fsacd.acd.recovery import Recovery, format_legs
from fsacd.config import load_text
from fsacd.esl.client import FreeSwitchClient
from fsacd.standin import FakeFreeSwitch
from fsacd.standin import PhoneBehaviour as P
from fsacd.state.store import Store
from tests.acd_harness import wait_for

CFG = load_text("[queues.support]\nwrap_up = 0\n", env={})


@pytest.fixture
def switches():
    fs = [
        FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None).start() for _ in range(2)
    ]
    yield fs
    for f in fs:
        f.stop()


def recovery(r, fs: FakeFreeSwitch, cid: str) -> Recovery:
    store = Store(r, controller_id=cid)
    store.renew_lease(30)
    client = FreeSwitchClient(fs.inbound_address, "ClueCon")
    return Recovery(store, client, lambda: CFG, set)


def test_a_bridged_call_of_a_dead_controller_is_judged_only_by_its_own_freeswitch(r, switches):
    fs1, fs2 = switches
    # the agent talks on FreeSWITCH 1 (a live leg there), fsacd's record: bridged, owner dead
    fs1.phones.register("user/1001@pbx.example", P.answers(after=0.0, talk=60))
    leg = "aaaaaaaa-1111-2222-3333-444444444444"
    gevent.spawn(
        fs1.execute_api, f"originate {{origination_uuid={leg}}}user/1001@pbx.example &park"
    )
    wait_for(lambda: fs1.execute_api(f"uuid_exists {leg}").strip() == "true", what="leg up")
    s = Store(r, controller_id="ghost")
    s.sync_queues(["support"])
    s.add_agent("1001", "user/1001@pbx.example", {"support": 1})
    s.login("1001")
    s.enqueue({"id": "call-1", "owner": "ghost", "fs_core": fs1.core_uuid}, "support", 0)
    head, snaps = s.candidates("support")
    offer = s.reserve("support", head, [a.id for a in snaps], 1)
    s.mark_ringing(offer)
    s.answered(offer, "1001")
    s.set_call_fields("call-1", legs=format_legs({leg: "1001"}))
    # a controller of FreeSWITCH 2 must not adopt or free it (uuid_exists there says false)
    other = recovery(r, fs2, "ctl-fs2").run_pass()
    assert "call-1" not in other.adopted and "call-1" not in other.ended
    assert s.get_agent("1001")["state"] == "in-call"
    # a controller of FreeSWITCH 1 adopts it and keeps the agent busy while the leg is up
    mine = recovery(r, fs1, "ctl-fs1")
    report = mine.run_pass()
    assert report.adopted == ["call-1"] and report.watching == ["call-1"]
    assert s.get_agent("1001")["state"] == "in-call"
    fs1.execute_api(f"uuid_kill {leg}")
    wait_for(lambda: fs1.execute_api(f"uuid_exists {leg}").strip() == "false", what="leg down")
    report = mine.run_pass()
    assert report.ended == ["call-1"]
    assert s.get_agent("1001")["state"] == "idle" and s.get_agent("1001")["answered"] == 1
