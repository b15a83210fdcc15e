"""Behaviour of the FreeSWITCH stand-in beyond the recorded transcripts (real TCP sockets)."""

from __future__ import annotations

import gevent
import pytest

from fsacd.esl.framing import url_decode
from fsacd.standin import Call, FakeFreeSwitch, PhoneBehaviour
from fsacd.standin.testing import ScriptedController


@pytest.fixture
def ctl():
    c = ScriptedController()
    yield c
    c.shutdown()


@pytest.fixture
def fs(ctl):
    f = FakeFreeSwitch(socket_target=ctl.address, heartbeat_interval=None)
    f.start()
    yield f
    f.stop()
    assert not f.errors


def start(fs: FakeFreeSwitch, ctl: ScriptedController, linger: bool = True, **kw) -> Call:
    call = fs.place_call(**kw)
    ctl.accept()
    ctl.connect()
    assert ctl.command("myevents").headers["Reply-Text"] == "+OK Events Enabled"
    if linger:
        assert ctl.command("linger").headers["Reply-Text"] == "+OK will linger"
    return call


def reply(frame) -> str:
    return frame.headers.get("Reply-Text", "")


# --- connect, commands ------------------------------------------------------------------------


def test_connect_reply_carries_channel_data_url_encoded(fs, ctl):
    call = fs.place_call(
        caller_number="+4922129191999",
        caller_name="Erika Muster",
        variables={"fsacd_route": "queue:support"},
    )
    ctl.accept()
    data = ctl.connect()
    assert data.headers["Content-Type"] == "command/reply"
    assert data.headers["Reply-Text"] == "%2BOK%0A"
    assert data.headers["Socket-Mode"] == "async"
    assert data.headers["Control"] == "full"
    assert data.headers["Caller-Caller-ID-Number"] == "%2B4922129191999"
    assert data.headers["Channel-Caller-ID-Name"] == "Erika%20Muster"
    assert data.headers["variable_fsacd_route"] == "queue%3Asupport"
    assert url_decode(data.headers["Unique-ID"]) == call.uuid
    assert data.raw_header_names[:2] == ["Event-Name", "Core-UUID"]
    assert data.raw_header_names[-4:] == ["Content-Type", "Reply-Text", "Socket-Mode", "Control"]
    assert reply(ctl.command("myevents")) == "+OK Events Enabled"
    assert reply(ctl.command("myevents")) == "-ERR aready enabled."
    assert reply(ctl.command("getvar fsacd_route")) == "queue:support"
    assert reply(ctl.command("getvar nothing_here")) == "-ERR command not found"
    assert reply(ctl.command("no_such_thing")) == "-ERR command not found"
    assert reply(ctl.command("linger 5")) == "+OK will linger 5 seconds"
    assert reply(ctl.command("nolinger")) == "+OK will not linger"
    assert reply(ctl.command("filter Event-Name CHANNEL_ANSWER")).startswith("+OK filter added.")
    assert reply(ctl.command("filter delete all")).startswith("+OK filter deleted.")
    assert reply(ctl.command("resume")) == "+OK"
    call.hangup()


def test_json_events_and_app_uuid(fs, ctl):
    call = fs.place_call()
    ctl.accept()
    ctl.connect()
    assert reply(ctl.command("myevents json")) == "+OK Events Enabled"
    ctl.sendmsg("answer", event_uuid="my-app-uuid-1")
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="answer")
    assert ev.get("Application-UUID") == "my-app-uuid-1"
    assert ev.get("Application-Response") == "_none_"
    frame = next(f for f in ctl.frames if f.content_type == "text/event-json")
    assert frame.body.startswith(b'{"Event-Name":"CHANNEL_PARK","Core-UUID":')
    call.hangup()


def test_sendmsg_body_is_used_only_without_execute_app_arg(fs, ctl):
    call = start(fs, ctl)
    ctl.command(
        "sendmsg",
        {"call-command": "execute", "execute-app-name": "set", "event-lock": "true",
         "content-type": "text/plain"},
        "from_body=yes",
    )  # fmt: skip
    ctl.command(
        "sendmsg",
        {"call-command": "execute", "execute-app-name": "set", "execute-app-arg": "from_arg=1",
         "content-type": "text/plain"},
        "ignored_body=1",
    )  # fmt: skip
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application_data="from_arg=1")
    assert call.variables["from_body"] == "yes"
    assert call.variables["from_arg"] == "1"
    assert "ignored_body" not in call.variables
    assert call.apps[:2] == [
        ("socket", f"127.0.0.1:{ctl.port} async full"),
        ("set", "from_body=yes"),
    ]
    call.hangup()


def test_loops_repeat_long_applications_only(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("set", "x=1", loops="3")
    ctl.sendmsg("playback", "silence_stream://500", loops="2")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="playback")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="playback")
    assert [a for a, _ in call.apps].count("set") == 1  # under 0.5 s: no repeat
    call.hangup()


# --- what FreeSWITCH does when the controller lets go ------------------------------------------


def test_controller_closing_socket_keeps_call_and_moh(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("playback", "local_stream://moh")
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.close()
    gevent.sleep(0.3)
    assert call.is_up and call.uuid in fs.channels
    assert call.heard[-1][0] == "moh"
    assert call.variables["current_application"] == "playback"
    assert fs.execute_api(f"uuid_exists {call.uuid}") == "true"
    gevent.sleep(0.3)
    assert call.is_up and call.heard[-1][0] == "moh"  # still holding, nobody controls it
    call.hangup("NORMAL_CLEARING")
    assert call.wait_hangup(2) == "NORMAL_CLEARING"


def test_controller_closing_socket_when_idle_ends_the_dialplan(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="answer")
    ctl.close()
    # the park ends, ``socket`` returns, the dialplan has nothing left: NORMAL_CLEARING
    assert call.wait_hangup(2) == "NORMAL_CLEARING"
    assert ("last_instruction", "") in [(w, d) for _, w, d in call.log]


def test_socket_resume_interrupts_and_runs_after_socket_dialplan(fs, ctl):
    call = start(
        fs,
        ctl,
        variables={"socket_resume": "true"},
        dialplan_after_socket=[("playback", "tone_stream://%(100,0,440)"), ("hangup", "USER_BUSY")],
    )
    ctl.sendmsg("answer")
    ctl.sendmsg("playback", "local_stream://moh")
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.close()
    assert call.wait_hangup(2) == "USER_BUSY"
    names = [a for a, _ in call.apps]
    assert names == ["socket", "answer", "playback", "playback", "hangup"]
    kinds = [k for k, _ in call.heard]
    assert kinds[-3:] == ["moh", "silence", "tone"] or kinds[-4:-1] == ["moh", "silence", "tone"]


def test_resume_command_default_after_socket_hangs_up(fs, ctl):
    call = start(fs, ctl)
    assert reply(ctl.command("resume")) == "+OK"
    ctl.sendmsg("answer")
    ctl.sendmsg("playback", "local_stream://moh")
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.close()
    assert call.wait_hangup(2) == "NORMAL_CLEARING"
    assert call.variables["current_application_response"] == "PLAYBACK ERROR"


def test_after_socket_callback_reconnects_to_another_controller(fs, ctl):
    other = ScriptedController()
    try:

        def reconnect(c: Call) -> None:
            c.execute("socket", f"127.0.0.1:{other.port} async full")

        call = start(fs, ctl, variables={"socket_resume": "true"}, dialplan_after_socket=reconnect)
        ctl.sendmsg("answer")
        ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="answer")
        ctl.close()
        other.accept()
        data = other.connect()
        assert url_decode(data.headers["Unique-ID"]) == call.uuid
        assert data.headers["Answer-State"] == "answered"
        other.command("myevents")
        other.sendmsg("hangup", "NORMAL_CLEARING")
        assert call.wait_hangup(2) == "NORMAL_CLEARING"
    finally:
        other.shutdown()


# --- linger, disconnect ---------------------------------------------------------------------


def test_linger_keeps_socket_until_controller_closes(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("hangup", "NORMAL_CLEARING")
    ctl.wait_event("CHANNEL_HANGUP_COMPLETE")
    notice = ctl.wait_for(
        lambda: [f for f in ctl.frames if f.content_type == "text/disconnect-notice"]
    )
    assert notice[0].headers["Content-Disposition"] == "linger"
    assert ctl.frames[-1].content_type == "text/disconnect-notice"  # after HANGUP_COMPLETE
    # FreeSWITCH still answers: sendmsg is queued (+OK), api finds no channel
    assert reply(ctl.sendmsg("playback", "ivr/foo.wav")) == "+OK"
    assert ctl.api(f"uuid_kill {call.uuid}") == "-ERR No such channel!\n"
    assert ctl.api(f"uuid_exists {call.uuid}") == "false"
    gevent.sleep(0.2)
    assert not ctl.closed
    assert call.uuid in fs.all_channels  # not destroyed while the socket lingers
    ctl.close()
    call.channel.destroyed.wait(2)
    assert call.uuid not in fs.all_channels


def test_no_linger_disconnects_after_hangup(fs, ctl):
    call = start(fs, ctl, linger=False)
    ctl.sendmsg("answer")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="answer")
    call.hangup("ORIGINATOR_CANCEL")
    ctl.wait_closed(2)
    notice = [f for f in ctl.frames if f.content_type == "text/disconnect-notice"]
    assert len(notice) == 1
    assert notice[0].headers["Content-Disposition"] == "disconnect"
    assert notice[0].body.startswith(b"Disconnected, goodbye.")
    assert [e.name for e in ctl.events()][-1] == "CHANNEL_HANGUP"


def test_external_hangup_order_with_linger(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("playback", "local_stream://moh")
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    call.hangup("ORIGINATOR_CANCEL")
    ctl.wait_event("CHANNEL_HANGUP_COMPLETE")
    frames = list(ctl.frames)
    hangup = next(i for i, f in enumerate(frames) if b"Event-Name: CHANNEL_HANGUP\n" in f.body)
    assert frames[hangup + 1].content_type == "text/disconnect-notice"  # before the rest
    ev = ctl.events("CHANNEL_EXECUTE_COMPLETE")
    assert ev[-2].get("Application-Response") == "PLAYBACK ERROR"
    assert call.hangup_cause == "ORIGINATOR_CANCEL"
    assert "CHANNEL_HANGUP_COMPLETE" in call.events_sent


# --- applications ---------------------------------------------------------------------------


def test_unknown_application_hangs_up_without_execute(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("no_such_app", "x")
    assert call.wait_hangup(2) == "DESTINATION_OUT_OF_ORDER"
    ctl.wait_event("CHANNEL_HANGUP_COMPLETE")
    assert not [e for e in ctl.events("CHANNEL_EXECUTE") if e.get("Application") == "no_such_app"]


def test_event_lock_makes_queued_apps_wait_and_unlocked_run_nested(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("playback", "local_stream://moh", lock=False)
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.sendmsg("set", "nested=1", lock=False)
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="set")
    assert call.variables["nested"] == "1"  # ran while the playback is still running
    assert not [
        e for e in ctl.events("CHANNEL_EXECUTE_COMPLETE") if e.get("Application") == "playback"
    ]
    assert ctl.api(f"uuid_break {call.uuid}") == "+OK\n"
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="playback")
    # now an event-locked playback: a queued app waits for it
    ctl.sendmsg("playback", "local_stream://moh")
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.sendmsg("set", "waited=1")
    gevent.sleep(0.2)
    assert "waited" not in call.variables
    ctl.api(f"uuid_break {call.uuid}")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="set")
    assert call.variables["waited"] == "1"
    call.hangup()


def test_uuid_break_all_flushes_queued_commands(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("playback", "local_stream://moh")
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.sendmsg("set", "never=1")
    ctl.api(f"uuid_break {call.uuid} all")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="playback")
    gevent.sleep(0.1)
    assert "never" not in call.variables
    call.hangup()


def test_variables_set_export_unset_multiset_and_expansion(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("set", "a=1")
    ctl.sendmsg("export", "b=2")
    ctl.sendmsg("multiset", "c=3 d='x y'")
    ctl.sendmsg("set", "e=${a}-${c}")
    ctl.sendmsg("unset", "a")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="unset")
    v = call.variables
    assert "a" not in v and v["b"] == "2" and v["c"] == "3" and v["d"] == "x y"
    assert v["e"] == "1-3" and v["export_vars"] == "b"
    assert ctl.api(f"uuid_getvar {call.uuid} e") == "1-3"
    assert ctl.api(f"uuid_setvar {call.uuid} f 9") == "+OK\n"
    assert ctl.api(f"uuid_getvar {call.uuid} nope") == "_undef_"
    assert call.variables["f"] == "9"
    call.hangup()


def test_play_and_get_digits_regex_and_invalid(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    arg = "2 2 1 1000 # tone_stream://%(200,0,440) silence_stream://50 choice ^[12]3$ 500"
    ctl.sendmsg("play_and_get_digits", arg)
    ctl.wait_event("CHANNEL_EXECUTE", application="play_and_get_digits")
    call.send_dtmf("13")
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="play_and_get_digits")
    assert ev.var("read_result") == "success" and ev.var("choice") == "13"
    ctl.sendmsg("play_and_get_digits", arg)
    ctl.wait_event("CHANNEL_EXECUTE", application="play_and_get_digits")
    call.send_dtmf("44")
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="play_and_get_digits")
    assert ev.var("read_result") == "success"
    assert ev.var("choice") is None and ev.var("choice_invalid") == "44"
    assert len(ctl.events("DTMF")) == 4
    call.hangup()


def test_dtmf_pressed_during_sleep_breaks_it_and_is_read_next(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("sleep", "3000")
    ctl.sendmsg("play_and_get_digits", "1 1 1 1000 # silence_stream://50 silence_stream://50 d \\d")
    ctl.wait_event("CHANNEL_EXECUTE", application="sleep")
    call.send_dtmf("5")
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="play_and_get_digits", timeout=2)
    assert ev.var("d") == "5"
    call.hangup()


# --- bridging -------------------------------------------------------------------------------


def test_failed_bridge_without_continue_on_fail_hangs_caller_up(fs, ctl):
    fs.phones.register("user/1001@pbx", PhoneBehaviour.busy())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("bridge", "user/1001@pbx")
    assert call.wait_hangup(2) == "USER_BUSY"
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="bridge")
    assert ev.var("originate_failed_cause") == "USER_BUSY"
    assert ev.var("DIALSTATUS") == "BUSY"
    assert ev.get("Answer-State") == "hangup"
    order = [(e.name, e.get("Application")) for e in ctl.events()]
    assert order.index(("CHANNEL_HANGUP", None)) < order.index(
        ("CHANNEL_EXECUTE_COMPLETE", "bridge")
    )


def test_failed_bridge_with_continue_on_fail_runs_next_app(fs, ctl):
    fs.phones.register("user/1001@pbx", PhoneBehaviour.rejects())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("set", "continue_on_fail=USER_BUSY,CALL_REJECTED")
    ctl.sendmsg("bridge", "user/1001@pbx")
    ctl.sendmsg("set", "after=1")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application_data="after=1")
    assert call.is_up
    assert call.variables["originate_disposition"] == "CALL_REJECTED"
    assert call.variables["DIALSTATUS"] == "DONTCALL"
    call.hangup()


def test_unregistered_default_and_no_answer_continue(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("bridge", "user/nobody@pbx")
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="bridge")
    assert ev.var("originate_disposition") == "USER_NOT_REGISTERED"
    assert ev.var("originated_legs") is None  # no channel was created
    assert call.wait_hangup(2) == "USER_NOT_REGISTERED"


def test_call_timeout_caps_leg_timeout_and_reports_no_answer(fs, ctl):
    fs.phones.register("user/1002@pbx", PhoneBehaviour.never_answers())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("set", "call_timeout=1")
    ctl.sendmsg("bridge", "[leg_timeout=5]user/1002@pbx")
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="bridge", timeout=3)
    assert ev.var("originate_disposition") == "NO_ANSWER"
    assert ev.var("DIALSTATUS") == "NOANSWER"
    assert call.is_up  # NO_ANSWER always continues
    leg = fs.leg("user/1002@pbx")
    assert leg is not None and leg.hangup_cause == "NO_ANSWER"
    call.hangup()


def test_leg_timeout_allotted_timeout_hangs_up_without_continue_on_fail(fs, ctl):
    fs.phones.register("user/1003@pbx", PhoneBehaviour.never_answers())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("bridge", "{leg_timeout=1}user/1003@pbx")
    assert call.wait_hangup(3) == "ALLOTTED_TIMEOUT"
    assert call.variables["last_bridge_hangup_cause"] == "ALLOTTED_TIMEOUT"


def test_failover_groups_accumulate_results(fs, ctl):
    fs.phones.register("user/a@pbx", PhoneBehaviour.busy())
    fs.phones.register("user/b@pbx", PhoneBehaviour.rejects())
    fs.phones.register("user/c@pbx", PhoneBehaviour.answers(talk=0.2))
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("set", "hangup_after_bridge=true")
    ctl.sendmsg("bridge", "[x=1]user/a@pbx,[x=2]user/b@pbx|user/c@pbx")
    ev = ctl.wait_event("CHANNEL_BRIDGE")
    causes = ev.var("originate_causes") or ""
    assert causes.startswith("ARRAY::") and causes.count("|:") == 2
    assert causes.endswith(";NONE")
    assert ev.var("originate_disposition") == "SUCCESS"
    assert ev.get("Other-Leg-Unique-ID") == fs.leg("user/c@pbx").uuid
    assert call.wait_hangup(2) == "NORMAL_CLEARING"  # hangup_after_bridge
    ctl.wait_event("CHANNEL_HANGUP_COMPLETE")
    names = [e.name for e in ctl.events()]
    assert names.index("CHANNEL_UNBRIDGE") < names.index("CHANNEL_HANGUP")


def test_ring_all_caller_keeps_hearing_moh_while_agents_ring(fs, ctl):
    fs.phones.register("user/a@pbx", PhoneBehaviour.never_answers())
    fs.phones.register("user/b@pbx", PhoneBehaviour.answers(after=0.3))
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("set", "transfer_ringback=local_stream://moh")
    ctl.sendmsg("playback", "local_stream://moh", lock=False)
    ctl.wait_event("CHANNEL_EXECUTE", application="playback")
    ctl.api(f"uuid_break {call.uuid} all")
    ctl.sendmsg(
        "bridge", "{instant_ringback=true}[fsacd_agent=a]user/a@pbx,[fsacd_agent=b]user/b@pbx"
    )
    leg = call.wait_bridged(3)
    assert leg.endpoint == "user/b@pbx" and leg.variables["fsacd_agent"] == "b"
    kinds = [k for k, _ in call.heard]
    before_bridge = kinds[: kinds.index("bridged")]
    assert before_bridge[-1] == "moh" and "ringback" not in before_bridge
    loser = fs.leg("user/a@pbx")
    assert loser.hangup_cause == "LOSE_RACE"
    assert [leg.endpoint for leg in call.legs] == ["user/a@pbx", "user/b@pbx"]
    call.hangup()


def test_transfer_ringback_in_dial_string_vars_is_not_used(fs, ctl):
    fs.phones.register("user/b@pbx", PhoneBehaviour.answers(after=0.2))
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("bridge", "{transfer_ringback=local_stream://moh,instant_ringback=true}user/b@pbx")
    call.wait_bridged(2)
    assert "moh" not in [k for k, _ in call.heard]  # FreeSWITCH reads it from the caller only
    call.hangup()


def test_early_media_wins_unless_ignored(fs, ctl):
    fs.phones.register("user/e@pbx", PhoneBehaviour.early_media())
    fs.phones.register("user/s@pbx", PhoneBehaviour.answers(after=0.3))
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("set", "continue_on_fail=true")
    ctl.sendmsg("bridge", "user/e@pbx,user/s@pbx")
    ev = ctl.wait_event("CHANNEL_BRIDGE")
    assert ev.get("Other-Leg-Unique-ID") == fs.leg("user/e@pbx").uuid
    fs.leg("user/e@pbx").hangup("NO_ANSWER")
    ctl.wait_event("CHANNEL_UNBRIDGE")
    ctl.sendmsg("bridge", "{ignore_early_media=true}user/e@pbx,user/s@pbx")
    ev = ctl.wait_event("CHANNEL_BRIDGE")
    assert ev.get("Other-Leg-Unique-ID") == fs.leg("user/s@pbx").uuid
    call.hangup()


def test_agent_hangup_while_bridged_then_queued_app_runs(fs, ctl):
    fs.phones.register("user/1001@pbx", PhoneBehaviour.answers())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("bridge", "{origination_uuid=aaaaaaaa-0000-4000-8000-000000000001}user/1001@pbx")
    ctl.sendmsg("set", "after_bridge=1")
    leg = call.wait_bridged(2)
    assert leg.uuid == "aaaaaaaa-0000-4000-8000-000000000001"
    gevent.sleep(0.1)
    assert "after_bridge" not in call.variables  # waits: the bridge holds the event lock
    leg.send_dtmf("9")
    call.send_dtmf("1")
    call.wait_for(lambda: ("dtmf", "9") in call.heard)
    leg.hangup()
    ctl.wait_event("CHANNEL_UNBRIDGE")
    ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application_data="after_bridge=1")
    assert call.variables["last_bridge_hangup_cause"] == "NORMAL_CLEARING"
    assert call.bridged_leg is None and call.is_up
    assert any(w == "dtmf_from_caller" for _, w, _ in leg.log)
    call.hangup()


def test_caller_hangup_while_ringing_cancels_legs(fs, ctl):
    fs.phones.register("user/r@pbx", PhoneBehaviour.never_answers())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("bridge", "user/r@pbx")
    leg = call.wait_for(lambda: fs.leg("user/r@pbx"))
    call.wait_for(lambda: leg.state == "ringing")
    call.hangup("ORIGINATOR_CANCEL")
    assert leg.wait_hangup(2) == "ORIGINATOR_CANCEL"
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="bridge")
    assert ev.var("originate_disposition") == "ORIGINATOR_CANCEL"


def test_privacy_and_caller_id_shown_to_agent(fs, ctl):
    fs.phones.register("user/p@pbx", PhoneBehaviour.answers())
    fs.phones.register("user/q@pbx", PhoneBehaviour.answers())
    call = start(fs, ctl, caller_number="+4922129191999", caller_name="Erika Muster")
    ctl.sendmsg("answer")
    ctl.sendmsg("privacy", "number")
    ctl.sendmsg("set", "continue_on_fail=true")
    ctl.sendmsg("bridge", "user/p@pbx")
    ev = ctl.wait_event("CHANNEL_BRIDGE")
    assert ev.get("Caller-Privacy-Hide-Number") == "true"
    assert ev.get("Other-Leg-Privacy-Hide-Number") == "true"  # inherited from the caller
    shown = fs.leg("user/p@pbx").display
    assert (shown.number, shown.name, shown.hide_number) == ("+4922129191999", "Erika Muster", True)
    fs.leg("user/p@pbx").hangup()
    ctl.wait_event("CHANNEL_UNBRIDGE")
    spec = (
        "{origination_privacy=hide_number,sip_cid_type=pid,origination_caller_id_number=+4930111,"
        "origination_caller_id_name=Support,sip_h_X-Queue=support}user/q@pbx"
    )
    ctl.sendmsg("bridge", spec)
    ev = ctl.wait_event("CHANNEL_BRIDGE")
    assert ev.get("Other-Leg-Caller-ID-Number") == "+4930111"
    assert ev.get("Other-Leg-Screen-Bit") == "false"
    shown = fs.leg("user/q@pbx").display
    assert shown.sip_headers["Privacy"] == "id"
    assert shown.sip_headers["P-Preferred-Identity"] == '"Support" <sip:+4930111@127.0.0.1>'
    assert shown.sip_headers["X-Queue"] == "support"
    call.hangup()


def test_effective_caller_id_on_caller_is_what_agents_see(fs, ctl):
    fs.phones.register("user/e@pbx", PhoneBehaviour.answers())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("set", "effective_caller_id_number=+4930999")
    ctl.sendmsg("bridge", "user/e@pbx")
    call.wait_bridged(2)
    assert fs.leg("user/e@pbx").display.number == "+4930999"
    call.hangup()


def test_record_session_and_uuid_record_stop(fs, ctl):
    fs.phones.register("user/r@pbx", PhoneBehaviour.answers())
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("record_session", "/tmp/rec.wav")
    ctl.sendmsg("bridge", "user/r@pbx")
    call.wait_bridged(2)
    assert ctl.api(f"uuid_record {call.uuid} stop all") == "+OK Success\n"
    assert ctl.api(f"uuid_record {call.uuid} stop all") == "-ERR Cannot stop record session!\n"
    assert call.recordings and call.recordings[0][0] == "/tmp/rec.wav"
    assert call.variables["record_completion_cause"] == "success-maxtime"
    call.hangup()


def test_place_call_options_dtmf_and_hangup_after(fs, ctl):
    call = start(fs, ctl, dtmf=[(0.25, "7")], hangup_after=0.6, hangup_cause="ORIGINATOR_CANCEL")
    ctl.sendmsg("answer")
    ctl.sendmsg(
        "play_and_get_digits", "1 1 1 2000 # silence_stream://100 silence_stream://50 v \\d"
    )
    ev = ctl.wait_event("CHANNEL_EXECUTE_COMPLETE", application="play_and_get_digits")
    assert ev.var("v") == "7"
    assert call.wait_hangup(2) == "ORIGINATOR_CANCEL"
    ev = ctl.wait_event("CHANNEL_HANGUP_COMPLETE")
    assert ev.var("digits_dialed") == "7"


def test_sync_socket_mode_runs_commands_inline(fs, ctl):
    call = fs.place_call(socket_arg="full")
    ctl.accept()
    data = ctl.connect()
    assert data.headers["Socket-Mode"] == "static"
    ctl.command("myevents")
    frame = ctl.sendmsg("playback", "silence_stream://200")
    assert reply(frame) == "+OK"
    names = [e.name for e in ctl.events()]
    assert "CHANNEL_EXECUTE_COMPLETE" in names  # the reply came after the app finished
    call.hangup()


def test_transfer_to_unknown_extension(fs, ctl):
    call = start(fs, ctl)
    ctl.sendmsg("answer")
    ctl.sendmsg("transfer", "9999")
    assert call.wait_hangup(2) == "NO_ROUTE_DESTINATION"
