"""Pure parts of the stand-in: FreeSWITCH string splitting, dial strings, media, variables."""

from __future__ import annotations

import pytest

from fsacd.standin.causes import dialstatus, q850, str2cause
from fsacd.standin.chanvars import VarStore
from fsacd.standin.dialstring import DialStringError, parse_dialstring
from fsacd.standin.fsstrings import expand_variables, is_true, separate_string
from fsacd.standin.listener import parse_packets
from fsacd.standin.media import classify, tone_duration
from fsacd.standin.phones import PhoneBehaviour, PhoneRegistry


def test_separate_string_like_freeswitch():
    arg = "1 1 2 3000 # tone_stream://%(100,0,600) silence_stream://250 ivr_choice \\d 1000"
    assert separate_string(arg, " ", 11) == [
        "1", "1", "2", "3000", "#", "tone_stream://%(100,0,600)", "silence_stream://250",
        "ivr_choice", "\\d", "1000",
    ]  # fmt: skip
    assert separate_string("a b  c d e", " ", 3) == ["a", "b", "c d e"]  # last keeps the rest
    assert separate_string("x='a b' c", " ") == ["x=a b", "c"]
    assert separate_string("a\\,b,c", ",") == ["a,b", "c"]
    assert separate_string("^^:a,b:c", ",") == ["a,b", "c"]


def test_dial_string_groups_legs_and_variables():
    ds = parse_dialstring(
        "{leg_timeout=8,origination_caller_id_name='Erika, M'}"
        "[fsacd_agent=1002]loopback/noanswer-1002/default,[fsacd_agent=1003,x=a\\,b]user/1003@pbx"
        "|sofia/gateway/gw/+4930"
    )
    assert ds.variables == [("leg_timeout", "8"), ("origination_caller_id_name", "Erika, M")]
    assert [[leg.endpoint for leg in g] for g in ds.groups] == [
        ["loopback/noanswer-1002/default", "user/1003@pbx"],
        ["sofia/gateway/gw/+4930"],
    ]
    assert ds.groups[0][1].variables == [("fsacd_agent", "1003"), ("x", "a,b")]
    alt = parse_dialstring("[^^:a=1,2:b=3]user/x")
    assert alt.groups[0][0].variables == [("a", "1,2"), ("b", "3")]
    with pytest.raises(DialStringError):
        parse_dialstring("{a=1")


def test_media_durations():
    assert tone_duration("%(200,0,440);loops=1") == pytest.approx(0.2)
    assert tone_duration("%(2000,4000,440,480);loops=-1") is None
    assert classify("silence_stream://250").duration == pytest.approx(0.25)
    assert classify("local_stream://moh").duration is None
    assert classify("local_stream://moh").kind == "moh"
    assert classify("x.wav", {"x.wav": None}).exists is False
    assert classify("file_string://a.wav!b.wav", default_file=0.1).duration == pytest.approx(0.2)


def test_causes():
    assert str2cause("user_busy") == "USER_BUSY"
    assert str2cause("17") == "USER_BUSY"
    assert str2cause("bogus") == "NORMAL_CLEARING"
    assert q850("NO_ANSWER") == 19 and q850("ORIGINATOR_CANCEL") == 16
    assert dialstatus("CALL_REJECTED") == "DONTCALL"
    assert dialstatus("ALLOTTED_TIMEOUT") == "ALLOTTED_TIMEOUT"


def test_channel_variable_order_and_arrays():
    v = VarStore()
    v.set("a", "1")
    v.set("b", "2")
    v.set("A", "3")  # case-insensitive, moves to the end
    v.push("causes", "u1;USER_BUSY")
    v.push("causes", "u2;NONE")
    v.set("c", "")  # empty: not set
    assert [k for k, _ in v.items()] == ["b", "A", "causes"]
    assert v.get("causes") == "ARRAY::u1;USER_BUSY|:u2;NONE"
    assert expand_variables("x${a}y${missing}", v.get) == "x3y"
    assert is_true("yes") and is_true("1") and not is_true("false") and not is_true(None)


def test_command_packets():
    packets, rest = parse_packets(
        b"\n\nsendmsg\ncall-command: execute\ncontent-length: 5\n\nhelloapi status\r\n\r\npart"
    )
    assert packets == [
        ("sendmsg", [("call-command", "execute"), ("content-length", "5")], "hello"),
        ("api status", [], None),
    ]
    assert rest == b"part"


def test_phone_registry_matching():
    reg = PhoneRegistry(PhoneBehaviour.unregistered())
    reg.register("loopback/agent-*", PhoneBehaviour.answers(talk=1))
    reg.register("user/1001@pbx.example", PhoneBehaviour.busy())
    assert reg.behaviour_for("USER/1001@pbx.example").cause == "USER_BUSY"
    assert reg.behaviour_for("loopback/agent-7/default").action == "answer"
    assert reg.behaviour_for("user/x@y").action == "unregistered"
    assert PhoneBehaviour.parse("answers:1:20") == PhoneBehaviour.answers(1.0, 20.0)
    assert PhoneBehaviour.parse("fails:NO_ROUTE_DESTINATION").cause == "NO_ROUTE_DESTINATION"
