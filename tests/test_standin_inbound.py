"""The stand-in's inbound event socket (port 8021 style) and API commands."""

from __future__ import annotations

import json

import gevent
import pytest

from fsacd.esl.framing import encode_command
from fsacd.standin import FakeFreeSwitch, PhoneBehaviour
from fsacd.standin.testing import InboundClient, ScriptedController


@pytest.fixture
def fs():
    f = FakeFreeSwitch(socket_target=("127.0.0.1", 9), heartbeat_interval=None)
    f.phones.register("loopback/agent-*", PhoneBehaviour.answers())
    f.phones.register("user/ring@pbx", PhoneBehaviour.never_answers())
    f.start()
    yield f
    f.stop()
    assert not f.errors


def reply(frame) -> str:
    return frame.headers.get("Reply-Text", "")


def test_commands_before_auth_and_exit(fs):
    c = InboundClient(fs.inbound_address, password=None)
    assert reply(c.command("api status")) == "-ERR command not found"
    assert reply(c.command("auth ClueCon")) == "+OK accepted"
    assert reply(c.command("auth ClueCon")) == "-ERR command not found"
    assert reply(c.command("linger")) == "-ERR not controlling a session"
    assert reply(c.command("event plain")) == "-ERR no keywords supplied"
    assert reply(c.command("noevents")) == "-ERR not listening for events"
    assert reply(c.command("event json CHANNEL_CREATE CUSTOM my::sub")) == (
        "+OK event listener enabled json"
    )
    assert reply(c.command("nixevent CHANNEL_CREATE")) == "+OK events nixed"
    assert reply(c.command("noevents")) == "+OK no longer listening for events"
    assert reply(c.command("log 7")) == "+OK log level 7 [7]"
    assert reply(c.command("nolog")) == "+OK no longer logging"
    assert reply(c.command("exit")) == "+OK bye"
    c.wait_closed()
    notice = c.frames[-1]
    assert notice.content_type == "text/disconnect-notice"
    assert notice.body == b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def test_api_replies(fs):
    c = InboundClient(fs.inbound_address)
    assert c.api("no_such_command") == "-ERR no_such_command Command not found!\n"
    assert c.api("uuid_kill 00000000-0000-0000-0000-000000000000") == "-ERR No such channel!\n"
    assert c.api("uuid_exists 00000000-0000-0000-0000-000000000000") == "false"
    assert c.api("uuid_break 00000000-0000-0000-0000-000000000000") == "-ERR No such channel!\n"
    assert c.api("uuid_getvar nope x") == "-ERR No such channel!\n"
    assert c.api("show channels") == "\n0 total.\n"
    assert c.api("show channels as json") == '{"row_count": 0}\n'
    assert c.api("status").startswith("UP 0 years, 0 days, 0 hours, 0 minutes,")
    assert "FreeSWITCH (Version 1.11.1" in c.api("status")
    assert "internal" in c.api("sofia status")
    assert c.api("originate error/USER_BUSY &park") == "-ERR USER_BUSY\n"
    assert c.api("originate user/nobody@pbx &park") == "-ERR USER_NOT_REGISTERED\n"
    assert c.api("originate").startswith("-USAGE:")


def test_originate_park_events_and_uuid_commands(fs):
    c = InboundClient(fs.inbound_address)
    assert reply(c.command("event plain ALL")) == "+OK event listener enabled plain"
    uid = "11111111-2222-3333-4444-555555555555"
    assert c.api(f"originate {{origination_uuid={uid}}}loopback/agent-1/default &park") == (
        f"+OK {uid}\n"
    )
    c.wait_event("CHANNEL_PARK", unique_id=uid)
    assert c.api(f"uuid_exists {uid}") == "true"
    assert c.api(f"uuid_setvar {uid} foo bar baz") == "+OK\n"
    assert c.api(f"uuid_getvar {uid} foo") == "bar baz"
    rows = json.loads(c.api("show channels as json"))
    assert rows["row_count"] == 2  # the loopback A and B legs
    assert {r["name"] for r in rows["rows"]} == {"loopback/agent-1-a", "loopback/agent-1-b"}
    table = c.api("show channels")
    assert table.startswith("uuid,direction,created,") and table.endswith("\n2 total.\n")
    assert c.api(f"uuid_recv_dtmf {uid} 12") == f"+OK {uid} received DTMF 12.\n"
    c.wait_event("DTMF", unique_id=uid)
    assert c.api(f"uuid_kill {uid} USER_BUSY") == "+OK\n"
    ev = c.wait_event("CHANNEL_HANGUP_COMPLETE", unique_id=uid)
    assert ev.get("Hangup-Cause") == "USER_BUSY"
    assert ev.var("channel_cid_flipped") == "yes"


def test_bgapi_background_job_and_filter(fs):
    c = InboundClient(fs.inbound_address)
    c.command("event plain BACKGROUND_JOB CHANNEL_CREATE")
    frame = c.command("bgapi originate user/ring@pbx &park", {"Job-UUID": "job-1"})
    assert reply(frame) == "+OK Job-UUID: job-1"
    assert frame.headers["Job-UUID"] == "job-1"
    c.wait_event("CHANNEL_CREATE")
    leg = fs.leg("user/ring@pbx")
    assert leg is not None and leg.state == "ringing"
    leg.answer()
    job = c.wait_event("BACKGROUND_JOB", job_uuid="job-1")
    assert job.body == f"+OK {leg.uuid}\n"
    assert job.get("Job-Command") == "originate"
    assert job.get("Job-Owner-UUID") is None
    # filters: only events of one channel
    assert reply(c.command(f"filter Unique-ID {leg.uuid}")).startswith("+OK filter added.")
    before = len(c.events())
    c.command("event plain CHANNEL_HANGUP_COMPLETE")
    c.command("bgapi originate {originate_timeout=1}user/ring@pbx &park")
    gevent.sleep(0.1)  # another channel rings; its events are filtered out
    fs.execute_api(f"uuid_kill {leg.uuid}")
    ev = c.wait_event("CHANNEL_HANGUP_COMPLETE")
    assert ev.get("Unique-ID") == leg.uuid
    assert all(e.get("Unique-ID") in (leg.uuid, None) for e in c.events()[before:])


def test_filter_without_or_with_an_empty_value_as_freeswitch(fs):
    """mod_event_socket (checked on FreeSWITCH 1.11): ``filter X`` is refused; ``filter add
    X`` stores nothing (its value is NULL); ``filter X `` (an empty value) deletes X's filters,
    whatever the case of X; ``filter X +`` is a filter nothing matches but an empty value."""
    c = InboundClient(fs.inbound_address)
    assert reply(c.command("filter Unique-ID")) == "-ERR invalid syntax"
    assert reply(c.command("filter add Unique-ID")) == "+OK filter added. [Unique-ID]=[(null)]"
    c.command("event plain BACKGROUND_JOB")

    def job_event_comes() -> bool:
        before = len(c.events())
        c.command("bgapi status")
        gevent.sleep(0.2)
        return any(e.name == "BACKGROUND_JOB" for e in c.events()[before:])

    assert job_event_comes()  # no filter was stored
    c.command("filter Unique-ID bogus")
    assert not job_event_comes()  # a BACKGROUND_JOB has no Unique-ID: filtered out
    assert reply(c.command("filter unique-id ")) == "+OK filter added. [unique-id]=[]"
    assert job_event_comes()  # the empty value deleted the Unique-ID filter
    assert reply(c.command("filter Unique-ID +")) == "+OK filter added. [Unique-ID]=[+]"
    assert not job_event_comes()


def test_heartbeat_and_sendevent(fs):
    fs.heartbeat_interval = 0.05
    fs.spawn(fs._heartbeat)
    c = InboundClient(fs.inbound_address)
    c.command("event plain HEARTBEAT CUSTOM my::thing")
    hb = c.wait_event("HEARTBEAT", timeout=2)
    assert hb.get("Event-Info") == "System Ready"
    assert hb.get("Up-Time").startswith("0 years, 0 days")
    frame = c.command("sendevent CUSTOM", {"Event-Subclass": "my::thing", "x": "1"})
    assert reply(frame).startswith("+OK ")
    ev = c.wait_event("CUSTOM")
    assert ev.get("x") == "1"


def test_inbound_sendmsg_and_myevents_for_a_call(fs):
    ctl = ScriptedController()
    try:
        fs.socket_target = ctl.address
        call = fs.place_call()
        ctl.accept()
        ctl.connect()
        c = InboundClient(fs.inbound_address)
        assert reply(c.command(f"myevents {call.uuid} plain")) == "+OK Events Enabled"
        frame = c.command(
            f"sendmsg {call.uuid}", {"call-command": "execute", "execute-app-name": "answer"}
        )
        assert reply(frame) == "+OK"
        c.wait_event("CHANNEL_ANSWER", unique_id=call.uuid)
        bad = c.command("sendmsg 00000000-0000-0000-0000-000000000000", {"call-command": "hangup"})
        assert reply(bad) == "-ERR invalid session id [00000000-0000-0000-0000-000000000000]"
        c.command(f"sendmsg {call.uuid}", {"call-command": "hangup", "hangup-cause": "USER_BUSY"})
        assert call.wait_hangup(2) == "USER_BUSY"
        c.wait_closed(2)  # a session-bound inbound listener without linger goes away
    finally:
        ctl.shutdown()


def test_packet_parsing_tolerates_crlf_and_bodies(fs):
    c = InboundClient(fs.inbound_address, password=None)
    c.send(b"\r\n\r\nauth ClueCon\r\n\r\n")
    assert reply(c.next_reply()) == "+OK accepted"
    c.send(encode_command("api echo", {"content-length": "3"}, b"abc") + b"api hostname\n\n")
    assert c.next_reply().body == b"-ERR no reply\n"  # the api gets no argument: empty reply
    assert c.next_reply().body.decode() == fs.hostname


def test_bad_password_closes(fs):
    c = InboundClient(fs.inbound_address, password=None)
    assert reply(c.command("auth wrong")) == "-ERR invalid"
    c.wait_closed(2)
    gevent.sleep(0.05)
