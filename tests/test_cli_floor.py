"""``fsacd calls``, ``call show|hangup|transfer|move|priority``, ``queue pause|resume|drain``
against a running controller, the FreeSWITCH stand-in (real sockets) and a real Redis."""

from __future__ import annotations

import pytest

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import wait_for
from tests.floor_harness import Floor


@pytest.fixture
def floor(redis_url, tmp_path):
    f = Floor(redis_url, tmp_path)
    yield f
    f.stop()


def waiting(floor, call, queue="support"):
    wait_for(
        lambda: (
            (c := floor.acd.store.get_call(call.uuid))
            and c["state"] == "waiting"
            and c["queue"] == queue
        ),
        what=f"call waiting in {queue}",
    )


def test_calls_lists_waiting_and_talking_calls_with_the_anonymous_caller_masked(floor):
    acd = floor.acd
    acd.agent("1001", P.answers(after=0.1, talk=30), {"sales": 1})
    talking = acd.fs.place_call(destination="5001", caller_number="+4922129191999")
    talking.wait_bridged(8)
    wait_for(lambda: acd.store.get_call(talking.uuid)["state"] == "bridged", what="bridged")
    hidden = acd.fs.place_call(
        destination="5000",
        caller_number="+4922129191998",
        caller_name="Secret",
        variables={"privacy": "yes"},
    )
    waiting(floor, hidden)
    rows = {r["id"]: r for r in floor.json("calls")}
    assert set(rows) == {talking.uuid, hidden.uuid}
    t, h = rows[talking.uuid], rows[hidden.uuid]
    assert (t["state"], t["queue"], t["agent"], t["caller"]) == (
        "bridged",
        "sales",
        "1001",
        "+4922129191999",
    )
    assert (h["state"], h["queue"], h["agent"]) == ("waiting", "support", "")
    assert h["caller"] == "anonymous" and h["name"] == ""
    assert acd.store.get_call(hidden.uuid)["number_status"] == "hidden"
    assert h["talked"] == 0 and h["waited"] >= 0
    table = floor.ok("calls").stdout
    assert "anonymous" in table and "1001" in table and "bridged" in table
    show = floor.json("call", "show", talking.uuid)
    types = [e["type"] for e in show["events"]]
    assert types[0] == "call-entered" and "call-bridged" in types
    assert show["call"]["caller"] == "+4922129191999"
    talking.hangup()
    hidden.hangup()


def test_move_a_waiting_call_to_another_queue_where_an_agent_takes_it(floor):
    acd = floor.acd
    call = acd.fs.place_call(destination="5000")
    waiting(floor, call)
    acd.agent("2001", P.answers(after=0.1, talk=30), {"sales": 1})
    out = floor.json("call", "move", call.uuid, "sales")
    assert out["from"] == "support" and out["queue"] == "sales"
    leg = call.wait_bridged(8)
    assert leg.endpoint == "user/2001@pbx.example"
    wait_for(lambda: acd.store.get_call(call.uuid).get("agent") == "2001", what="answered by 2001")
    assert any(e["type"] == "call-moved" and e["from"] == "support" for e in acd.events())
    # a bridged call cannot be moved
    res = floor.cli("call", "move", call.uuid, "support")
    assert res.exit_code == 1 and "is bridged, not waiting" in res.output
    call.hangup()


def test_priority_puts_a_later_call_first_and_drain_moves_all_in_order(floor):
    acd = floor.acd
    first = acd.fs.place_call(destination="5000", caller_number="+4922129191991")
    waiting(floor, first)
    second = acd.fs.place_call(destination="5000", caller_number="+4922129191992")
    waiting(floor, second)
    assert acd.store.position(second.uuid) == 2
    out = floor.json("call", "priority", second.uuid, "5")
    assert (out["previous"], out["position"]) == (0, 1)
    assert acd.store.waiting_ids("support") == [second.uuid, first.uuid]
    res = floor.cli("queue", "drain", "support", "--to", "sales", input="n\n")
    assert res.exit_code == 1 and acd.store.waiting_ids("support")  # not confirmed: nothing
    out = floor.json("queue", "drain", "support", "--to", "sales", "--yes")
    assert out["moved"] == [second.uuid, first.uuid]
    assert acd.store.waiting_ids("sales") == [second.uuid, first.uuid]
    assert acd.store.waiting_ids("support") == []
    res = floor.cli("call", "priority", first.uuid, "99999")
    assert res.exit_code == 1 and "PRIORITY must be 0 to" in res.output
    first.hangup()
    second.hangup()


def test_hangup_asks_first_then_ends_the_call_through_freeswitch(floor):
    acd = floor.acd
    call = acd.fs.place_call(destination="5000")
    waiting(floor, call)
    res = floor.cli("call", "hangup", call.uuid, input="n\n")
    assert res.exit_code == 1 and call.is_up
    floor.ok("call", "hangup", call.uuid, "--yes")
    assert call.wait_hangup(5) == "NORMAL_CLEARING"
    wait_for(lambda: acd.store.get_call(call.uuid)["state"] == "ended", what="call ended")
    res = floor.cli("call", "hangup", call.uuid, "--yes")
    assert res.exit_code == 1 and "no live call" in res.output


def test_transfer_to_a_dial_string_bridges_the_caller_there(floor):
    acd = floor.acd
    acd.fs.phones.register("user/3000@pbx.example", P.answers(after=0.1, talk=30))
    call = acd.fs.place_call(destination="5000")
    waiting(floor, call)
    wait_for(lambda: any(kind == "moh" for kind, _ in call.heard), what="hold music")
    floor.ok("call", "transfer", call.uuid, "user/3000@pbx.example")
    leg = wait_for(lambda: acd.fs.leg("user/3000@pbx.example"), what="transfer target dialled")
    wait_for(lambda: leg.answered, what="transfer target answered")
    wait_for(lambda: acd.store.get_call(call.uuid)["state"] == "ended", what="call left fsacd")
    assert call.is_up and acd.store.get_call(call.uuid)["outcome"] == "transferred"
    call.hangup()


@pytest.mark.parametrize(
    "dest, message",
    [
        ("user/1002@x,user/1003@x", "not allowed in a dial string leg"),
        ("${system(reboot)}", "the functions a contact may use"),
        ("1002 XML public", "an extension is 1-64 of"),
        ("1002'", "an extension is 1-64 of"),
    ],
)
def test_transfer_refuses_unsafe_destinations(floor, dest, message):
    call = floor.acd.fs.place_call(destination="5000")
    waiting(floor, call)
    res = floor.cli("call", "transfer", call.uuid, dest)
    assert res.exit_code == 1 and message in res.output, res.output
    assert call.is_up
    call.hangup()


def test_a_paused_queue_gets_no_offer_and_a_resumed_one_does(floor):
    acd = floor.acd
    floor.ok("queue", "pause", "support")
    call = acd.fs.place_call(destination="5000")
    waiting(floor, call)
    acd.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    acd.ctl.matcher.match_now("support")  # the match an agent logging in triggers, done now
    assert acd.store.get_call(call.uuid)["state"] == "waiting"
    assert acd.fs.leg("user/1001@pbx.example") is None
    floor.ok("queue", "resume", "support")
    call.wait_bridged(8)
    call.hangup()


def test_pause_and_resume_record_the_flag_and_events(floor):
    acd = floor.acd
    out = floor.json("queue", "pause", "support")
    assert out == {"ok": True, "queue": "support", "paused": True, "was_paused": False}
    assert acd.store.queue_paused("support")
    assert acd.r.hget(acd.store.keys.queue("support"), "paused") == "1"
    rows = {q["name"]: q for q in floor.json("queue", "list")}
    assert rows["support"]["paused"] is True and rows["sales"]["paused"] is False
    assert "already paused" in floor.ok("queue", "pause", "support").stdout
    floor.ok("queue", "resume", "support")
    assert not acd.store.queue_paused("support")
    types = [e["type"] for e in acd.events("queue-paused", "queue-resumed")]
    assert types == ["queue-paused", "queue-paused", "queue-resumed"]
    res = floor.cli("queue", "pause", "nosuch")
    assert res.exit_code == 1 and "unknown queue 'nosuch'" in res.output


def test_break_reasons_come_from_the_config(floor):
    acd = floor.acd
    acd.agent("1001", P.answers(), {"support": 1})
    floor.ok("agent", "break", "1001", "--reason", "coaching")
    assert acd.store.get_agent("1001")["break_reason"] == "coaching"
    floor.ok("agent", "break", "1001")
    assert acd.store.get_agent("1001")["break_reason"] == "break"
    res = floor.cli("agent", "break", "1001", "--reason", "smoking")
    assert res.exit_code == 1
    assert (
        "unknown break reason 'smoking' (agents.break_reasons: break, lunch, coaching)"
        in res.output
    )


MOVE_QUEUES = """
[queues.support]
max_wait = 1
overflow = "spill"

[queues.vip]
max_wait = 1
overflow = "sales"

[queues.spill]

[queues.sales]
"""


def test_a_moved_call_follows_the_rules_of_its_new_queue(redis_url, tmp_path):
    floor = Floor(redis_url, tmp_path, queues=MOVE_QUEUES)
    try:
        acd = floor.acd
        call = acd.fs.place_call(destination="5000")
        waiting(floor, call)
        floor.ok("call", "move", call.uuid, "vip")
        # support's max_wait would overflow it to spill; vip's sends it to sales
        ev = wait_for(lambda: acd.events("call-overflowed"), what="overflow")[0]
        assert (ev["from"], ev["queue"]) == ("vip", "sales")
        assert acd.store.get_call(call.uuid)["queue"] == "sales"
        call.hangup()
    finally:
        floor.stop()


def test_queue_show_says_paused(floor):
    floor.ok("queue", "pause", "sales")
    assert (
        "(paused: no offers until fsacd queue resume)" in floor.ok("queue", "show", "sales").stdout
    )
    assert floor.json("queue", "show", "sales")["paused"] is True
    assert "paused" not in floor.ok("queue", "show", "support").stdout.split("\n")[0]
