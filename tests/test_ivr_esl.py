"""fsacd.acd.ivr_esl: the play_and_get_digits argument, and menus walked over real TCP through the
FreeSWITCH stand-in with injected DTMF."""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.queue import Queue

from fsacd.acd.ivr_esl import (
    EslIvrCall,
    IvrHangup,
    SessionRunner,
    digits_result,
    pagd_arg,
    render_prompt,
)
from fsacd.config import load_text
from fsacd.core import ivr
from fsacd.esl.framing import Event
from fsacd.esl.server import OutboundServer
from fsacd.standin import FakeFreeSwitch
from fsacd.standin.fsstrings import separate_string

# --- the argument string --------------------------------------------------------------------


def split(arg: str) -> list[str]:
    """How FreeSWITCH's play_and_get_digits splits its argument (switch_separate_string)."""
    return separate_string(arg, " ", 11)


def test_pagd_arg_exact():
    arg = pagd_arg(1, 1, 1, 5000, "#", ("ivr/main.wav",), (), "fsacd_ivr_choice", "[12]", 3000)
    assert arg == "1 1 1 5000 # ivr/main.wav silence_stream://100 fsacd_ivr_choice [12] 3000"
    arg = pagd_arg(
        4, 10, 1, 5000, "#", ("say:Your account, please", "beep.wav"), (), "v", "\\d+", 2000
    )
    assert arg == (
        "4 10 1 5000 # 'file_string://say:Your account, please!beep.wav' silence_stream://100"
        " v [0-9]+ 2000"
    )
    assert split(arg) == [
        "4", "10", "1", "5000", "#", "file_string://say:Your account, please!beep.wav",
        "silence_stream://100", "v", "[0-9]+", "2000",
    ]  # fmt: skip
    assert pagd_arg(1, 1, 1, 1000, "#", (), ("bad.wav",), "v", "1", 1000).split()[5:7] == [
        "silence",
        "bad.wav",
    ]


@pytest.mark.parametrize(
    "evil",
    [
        "say:x' 1 1 1 1 # a.wav b.wav uuid_kill .* 1 '",
        "say:${system(rm -rf /)} $${x}",
        "say:a\nb\r\nsendmsg\tx",
        "say:one!two.wav:three",
        "say:\\' ^^:x",
        "file with spaces.wav",
        "a.wav!/etc/passwd ${x}",
        "'quoted'.wav",
    ],
)
def test_prompt_text_cannot_inject(evil):
    arg = pagd_arg(1, 1, 1, 5000, "#", (evil, "menu.wav"), (evil,), "fsacd_ivr_choice", "[1]", 100)
    parts = split(arg)
    assert len(parts) == 10, parts
    assert parts[:5] == ["1", "1", "1", "5000", "#"]
    assert parts[7:] == ["fsacd_ivr_choice", "[1]", "100"]
    assert "$" not in arg and "\\" not in arg and "\n" not in arg and "\r" not in arg
    assert arg.count("'") in (0, 2, 4)
    file_ = parts[5]
    assert file_.startswith("file_string://") and file_.endswith("!menu.wav")
    assert file_.count("!") == 1  # nothing joined in from the text


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"var": "a b"}, "variable"),
        ({"var": "x;y"}, "variable"),
        ({"regex": "\\s+"}, "regex"),
        ({"regex": "1 2"}, "regex"),
        ({"regex": "${x}"}, "regex"),
        ({"terminators": "x"}, "terminator"),
        ({"min_digits": 3, "max_digits": 2}, "digit counts"),
        ({"timeout_ms": 0}, "timeout"),
        ({"tries": True}, "whole numbers"),
    ],
)
def test_pagd_arg_refuses(kwargs, words):
    args = dict(
        min_digits=1,
        max_digits=1,
        tries=1,
        timeout_ms=5000,
        terminators="#",
        prompt=("a.wav",),
        invalid_prompt=(),
        var="v",
        regex="[1]",
        digit_timeout_ms=100,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        pagd_arg(**args)


def test_render_prompt():
    assert render_prompt(("a.wav",)) == "a.wav"
    assert render_prompt(("say:Hello there",)) == "say:Hello there"  # playback: whole arg
    assert render_prompt(("say:Hello there",), quote=True) == "'say:Hello there'"
    assert render_prompt(("say:Press 1: support!",)) == "say:Press 1 support"
    assert render_prompt(("say: '' ",)) == ""
    assert render_prompt(()) == ""


def test_digits_result_reads_the_variables():
    ev = Event(
        {
            "Event-Name": "CHANNEL_EXECUTE_COMPLETE",
            "variable_read_result": "success",
            "variable_menu_choice_invalid": "7",
        }
    )
    assert digits_result(ev, "menu_choice") == ivr.DigitsResult("success", "", "7")
    ev = Event({"variable_read_result": "success", "variable_v": "4711"})
    assert digits_result(ev, "v") == ivr.DigitsResult("success", "4711", "")
    assert digits_result(Event({}), "v") == ivr.DigitsResult("", "", "")


def test_adapter_with_a_function_runner_and_hangup():
    calls = []

    def runner(app, arg):
        calls.append((app, arg))
        return Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Answer-State": "answered"})

    call = EslIvrCall(runner)
    call.set_language("de", "/snd/de", "flite|kal")
    call.set_language("en", None, None)
    assert calls == [
        ("multiset", "default_language=de sound_prefix=/snd/de tts_engine=flite tts_voice=kal"),
        ("set", "default_language=en"),
    ]
    assert call.playback(("a.wav",)) is False  # no "FILE PLAYED"

    def gone(app, arg):
        return Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Answer-State": "hangup"})

    with pytest.raises(IvrHangup):
        EslIvrCall(gone).playback(("a.wav",))


# --- over TCP through the stand-in ----------------------------------------------------------

CONFIG = """
[queues.support]
[queues.sales]
[queues.billing]

[ivr.main]
prompt = "ivr/main.wav"
invalid_prompt = "ivr/invalid.wav"
no_input_prompt = "ivr/no-input.wav"
timeout = 1
max_tries = 2
default = "queue:support"
options = { "1" = "queue:sales", "2" = "ivr:account", "0" = "hangup" }

[ivr.account]
greeting = "say:Billing. Your account number, please"
timeout = 1
digit_timeout = 1
max_tries = 2
default = "queue:support"
collect = { var = "account", min = 4, max = 10, prompt = "ivr/account.wav", next = "queue:billing" }
"""


@pytest.fixture(scope="module")
def cfg():
    return load_text(CONFIG, env={})


class Rig:
    """An outbound server whose handler runs one menu per call; a stand-in FreeSWITCH."""

    def __init__(self, cfg, media=None):
        self.cfg = cfg
        self.results: Queue = Queue()
        self.server = OutboundServer(("127.0.0.1", 0), self.handle, command_timeout=5)
        self.server.start()
        self.fs = FakeFreeSwitch(
            socket_target=self.server.address,
            inbound=None,
            heartbeat_interval=None,
            default_file_duration=0.05,
            media_durations=media or {},
        )
        self.fs.start()

    def handle(self, session):
        session.connect()
        session.myevents()
        session.linger()
        runner = SessionRunner(session, timeout=10)
        try:
            runner.run_app("answer")
            menu = session.channel_data.get("variable_menu", "main")
            result = ivr.run_menu(menu, EslIvrCall(runner), self.cfg)
            self.results.put(result)
            runner.run_app("hangup", "NORMAL_CLEARING")
        except IvrHangup as exc:
            self.results.put(exc)

    def call(self, menu="main", dtmf=(), **kw):
        c = self.fs.place_call(variables={"menu": menu}, dtmf=dtmf, **kw)
        return c, self.results.get(timeout=10)

    def stop(self):
        self.fs.stop()
        self.server.stop(timeout=1)


@pytest.fixture
def rig(cfg):
    r = Rig(cfg)
    yield r
    r.stop()


def pagd_args(call) -> list[list[str]]:
    return [split(arg) for app, arg in call.apps if app == "play_and_get_digits"]


def test_menu_routes_on_a_key(rig):
    call, res = rig.call(dtmf=[(0.3, "1")])
    assert (res.action, res.target, res.path) == ("queue", "sales", ["main:1"])
    (args,) = pagd_args(call)
    assert args == [
        "1", "1", "1", "1000", "#", "ivr/main.wav", "silence_stream://100",
        "fsacd_ivr_choice", "[012]", "3000",
    ]  # fmt: skip
    call.wait_hangup(5)


def test_invalid_key_then_valid(rig):
    call, res = rig.call(dtmf=[(0.3, "5"), (1.0, "1")])
    assert (res.action, res.target) == ("queue", "sales")
    assert res.path == ["main:invalid", "main:1"]
    second = pagd_args(call)[1]
    assert second[5] == "file_string://ivr/invalid.wav!ivr/main.wav"
    assert call.variables.get("fsacd_ivr_choice") == "1"


def test_missing_input_goes_to_the_default(rig):
    call, res = rig.call()
    assert (res.action, res.target, res.reason) == ("queue", "support", "default")
    assert res.path == ["main:no-input", "main:no-input", "main:default"]
    prompts = [a[5] for a in pagd_args(call)]
    assert prompts == ["ivr/main.wav", "file_string://ivr/no-input.wav!ivr/main.wav"]


def test_sub_menu_and_multi_digit_input_with_terminator(rig):
    call, res = rig.call(dtmf=[(0.3, "2"), (0.8, "4711#")])
    assert (res.action, res.target, res.reason) == ("queue", "billing", "selected")
    assert res.inputs == {"account": "4711"}
    assert res.path == ["main:2", "account:account"]
    args = pagd_args(call)[1]
    assert args[:5] == ["4", "10", "1", "1000", "#"]
    assert args[5] == "file_string://say:Billing. Your account number, please!ivr/account.wav"
    assert args[7:] == ["fsacd_ivr_in_account", "[0-9]+", "1000"]
    # the menu speaks text: the TTS voice from [numbers] was set on the channel
    assert call.variables.get("tts_engine") == "flite" and call.variables["tts_voice"] == "kal"


def test_too_short_input_is_invalid_and_retried(rig):
    call, res = rig.call(menu="account", dtmf=[(0.3, "12#"), (1.0, "98765")])
    assert res.inputs == {"account": "98765"}  # ended by the digit timeout, no terminator
    assert res.path == ["account:invalid", "account:account"]


def test_press_ahead_during_a_long_prompt(cfg):
    rig = Rig(cfg, media={"ivr/main.wav": 3.0})
    try:
        started = time.time()
        call, res = rig.call(dtmf=[(0.3, "1")])
        assert (res.action, res.target) == ("queue", "sales")
        assert time.time() - started < 2.0  # the prompt was cut short by the key
    finally:
        rig.stop()


def test_hangup_during_the_menu(rig):
    call, res = rig.call(hangup_after=0.3)
    assert isinstance(res, IvrHangup)


def test_many_calls_at_once(rig):
    calls = [rig.fs.place_call(variables={"menu": "main"}, dtmf=[(0.3, key)]) for key in "1100"]
    results = [rig.results.get(timeout=10) for _ in calls]
    assert sorted(str(r.action) for r in results) == ["hangup", "hangup", "queue", "queue"]
    gevent.sleep(0)


def test_long_prompts_are_not_cut():
    text = "say:" + "word " * 99
    arg = pagd_arg(1, 1, 1, 5000, "#", [text] * 5, (), "v", "[1]", 100)
    assert len(arg) > 1024
    assert split(arg)[7:] == ["v", "[1]", "100"]
