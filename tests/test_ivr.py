"""fsacd.core.ivr: menu config validation and the engine, walked through a fake call (no
sockets)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fsacd.config import ConfigError, check, load_text
from fsacd.core import ivr
from fsacd.core.ivr import Action, DigitsResult, IvrResult, parse_action, parse_hours, run_menu

BERLIN = ZoneInfo("Europe/Berlin")

MENUS = """
[queues.support]
[queues.sales]
[queues.billing]

[ivr.main]
greeting = "ivr/welcome.wav"
prompt = "ivr/main.wav"
invalid_prompt = "ivr/invalid.wav"
no_input_prompt = "ivr/no-input.wav"
max_tries = 3
default = "queue:support"
[ivr.main.options]
"1" = "queue:sales"
"2" = "ivr:billing"
"0" = "hangup"
"9" = "voicemail:5099"
"7" = "transfer:6000 XML default"
"8" = "callback:support"
"*" = "ivr:main"

[ivr.billing]
prompt = "ivr/billing.wav"
options = { "1" = "ivr:account", "#" = "ivr:main" }
max_tries = 2
language = "de"
sound_prefix = "/usr/share/freeswitch/sounds/de/de/callie"

[ivr.account]
invalid_prompt = "say:That account number is not valid"
max_tries = 2
default = "queue:billing"
[ivr.account.collect]
var = "account"
min = 4
max = 8
prompt = "ivr/enter-account.wav"
next = "queue:billing"

[ivr.hours]
prompt = "ivr/main.wav"
options = { "1" = "queue:sales" }
hours = "mon-fri 08:00-18:00; sat 09:00-12:00"
timezone = "Europe/Berlin"
closed = "voicemail:5099"
closed_prompt = "ivr/closed.wav"
"""


@pytest.fixture(scope="module")
def cfg():
    return load_text(MENUS, env={})


class Hangup(Exception):
    pass


HANGUP = object()


class FakeCall:
    """An IvrCall acting like FreeSWITCH's play_and_get_digits with tries=1.

    ``keys``: what the caller types at each read, in order: a string (``"#"`` ends the input),
    None for nothing, a :class:`DigitsResult` to return as is, or HANGUP. When the list is
    used up the caller hangs up.
    """

    def __init__(self, keys):
        self.keys = list(keys)
        self.reads: list[dict] = []
        self.played: list[tuple[str, ...]] = []
        self.languages: list[tuple] = []

    def play_and_get_digits(
        self,
        min_digits,
        max_digits,
        tries,
        timeout_ms,
        terminators,
        prompt,
        invalid_prompt,
        var,
        regex,
        digit_timeout_ms,
    ):
        self.reads.append(
            dict(
                min=min_digits,
                max=max_digits,
                tries=tries,
                timeout=timeout_ms,
                terminators=terminators,
                prompt=tuple(prompt),
                invalid_prompt=tuple(invalid_prompt),
                var=var,
                regex=regex,
                digit_timeout=digit_timeout_ms,
            )
        )
        if not self.keys:
            raise Hangup()
        typed = self.keys.pop(0)
        if typed is HANGUP:
            raise Hangup()
        if isinstance(typed, DigitsResult):
            return typed
        if not typed:
            return DigitsResult("failure")
        buf = ""
        for ch in typed:
            if ch in terminators:
                break
            buf += ch
            if len(buf) >= max_digits:
                break
        if len(buf) < min_digits:
            return DigitsResult("failure", buf)
        if re.search(regex, buf):
            return DigitsResult("success", buf)
        return DigitsResult("success", "", buf)

    def playback(self, prompt):
        self.played.append(tuple(prompt))
        return True

    def set_language(self, language, sound_prefix, tts_voice):
        self.languages.append((language, sound_prefix, tts_voice))


WEEKDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=BERLIN)  # a Monday


@pytest.mark.parametrize(
    ("menu", "keys", "action", "target", "reason", "path", "inputs"),
    [
        ("main", ["1"], "queue", "sales", "selected", ["main:1"], {}),
        ("main", ["0"], "hangup", "", "selected", ["main:0"], {}),
        ("main", ["9"], "voicemail", "5099", "selected", ["main:9"], {}),
        ("main", ["7"], "transfer", "6000 XML default", "selected", ["main:7"], {}),
        ("main", ["8"], "callback", "support", "selected", ["main:8"], {}),
        (
            "main",
            ["2", "1", "4711#"],
            "queue",
            "billing",
            "selected",
            ["main:2", "billing:1", "account:account"],
            {"account": "4711"},
        ),
        ("main", ["5", "1"], "queue", "sales", "selected", ["main:invalid", "main:1"], {}),
        ("main", [None, "1"], "queue", "sales", "selected", ["main:no-input", "main:1"], {}),
        (
            "main",
            [None, "5", None],
            "queue",
            "support",
            "default",
            ["main:no-input", "main:invalid", "main:no-input", "main:default"],
            {},
        ),
        ("main", ["*", "1"], "queue", "sales", "selected", ["main:*", "main:1"], {}),
        # no default: tries used up -> hang up
        (
            "billing",
            [None, None],
            "hangup",
            "",
            "default",
            ["billing:no-input", "billing:no-input", "billing:default"],
            {},
        ),
        # "#" is an option here, so it is not the terminator
        ("billing", ["#", "1"], "queue", "sales", "selected", ["billing:#", "main:1"], {}),
        # too few digits before the timeout is an invalid input, not silence
        (
            "account",
            ["12#", "12345678"],
            "queue",
            "billing",
            "selected",
            ["account:invalid", "account:account"],
            {"account": "12345678"},
        ),
        (
            "account",
            ["12", None],
            "queue",
            "billing",
            "default",
            ["account:invalid", "account:no-input", "account:default"],
            {},
        ),
        # results FreeSWITCH should never give are still no exception
        (
            "main",
            [DigitsResult("success", "5"), "1"],
            "queue",
            "sales",
            "selected",
            ["main:invalid", "main:1"],
            {},
        ),  # fmt: skip
        (
            "main",
            [DigitsResult("success", "A"), "1"],
            "queue",
            "sales",
            "selected",
            ["main:invalid", "main:1"],
            {},
        ),  # fmt: skip
        (
            "main",
            [DigitsResult("success", "12"), "1"],
            "queue",
            "sales",
            "selected",
            ["main:invalid", "main:1"],
            {},
        ),  # fmt: skip
        (
            "main",
            [DigitsResult("success"), "1"],
            "queue",
            "sales",
            "selected",
            ["main:no-input", "main:1"],
            {},
        ),  # fmt: skip
        (
            "main",
            [DigitsResult("timeout"), "1"],
            "queue",
            "sales",
            "selected",
            ["main:no-input", "main:1"],
            {},
        ),  # fmt: skip
        # a stale <var>_invalid after a failed read is silence, not an invalid key
        (
            "main",
            [DigitsResult("failure", "", "7"), "1"],
            "queue",
            "sales",
            "selected",
            ["main:no-input", "main:1"],
            {},
        ),  # fmt: skip
        (
            "main",
            [DigitsResult("", None, None), "1"],
            "queue",
            "sales",
            "selected",
            ["main:no-input", "main:1"],
            {},
        ),  # fmt: skip
        (
            "account",
            [DigitsResult("success", "12*4"), "1234"],
            "queue",
            "billing",
            "selected",
            ["account:invalid", "account:account"],
            {"account": "1234"},
        ),  # fmt: skip
        # ended by the digit timeout: FreeSWITCH keeps read_result=timeout but accepts it
        (
            "account",
            [DigitsResult("timeout", "4711")],
            "queue",
            "billing",
            "selected",
            ["account:account"],
            {"account": "4711"},
        ),  # fmt: skip
        (
            "account",
            [DigitsResult("failure", "4711"), "1234"],
            "queue",
            "billing",
            "selected",
            ["account:invalid", "account:account"],
            {"account": "1234"},
        ),  # fmt: skip
        ("hours", ["1"], "queue", "sales", "selected", ["hours:1"], {}),
    ],
)
def test_walk_menus(cfg, menu, keys, action, target, reason, path, inputs):
    call = FakeCall(keys)
    res = run_menu(menu, call, cfg, now=WEEKDAY_NOON)
    assert res == IvrResult(action, target, inputs, path, reason, res.language)
    assert not call.keys, "every scripted key was read"
    assert call.played == []  # prompts that accept input are never played on their own
    for read in call.reads:
        assert read["tries"] == 1 and read["invalid_prompt"] == ()


def test_prompts_greeting_once_then_invalid_and_no_input_prompts(cfg):
    call = FakeCall(["5", None, "*", "1"])
    run_menu("main", call, cfg, now=WEEKDAY_NOON)
    prompts = [r["prompt"] for r in call.reads]
    assert prompts == [
        ("ivr/welcome.wav", "ivr/main.wav"),  # greeting is the start of the first read
        ("ivr/invalid.wav", "ivr/main.wav"),
        ("ivr/no-input.wav", "ivr/main.wav"),
        ("ivr/main.wav",),  # back in main via "*": no second greeting
    ]
    first = call.reads[0]
    assert (first["min"], first["max"], first["timeout"], first["digit_timeout"]) == (
        1,
        1,
        5000,
        3000,
    )
    assert first["var"] == ivr.CHOICE_VAR
    assert first["regex"] == "[012789*]"
    assert first["terminators"] == "#"


def test_collect_read_arguments(cfg):
    call = FakeCall(["2", "1", "99", "4711"])
    res = run_menu("main", call, cfg, now=WEEKDAY_NOON)
    assert res.inputs == {"account": "4711"}
    billing, account, retry = call.reads[1], call.reads[2], call.reads[3]
    assert billing["terminators"] == "*" and billing["regex"] == "[1#]"
    assert account["min"] == 4 and account["max"] == 8 and account["terminators"] == "#"
    assert account["var"] == "fsacd_ivr_in_account" and account["regex"] == "[0-9]+"
    assert account["prompt"] == ("ivr/enter-account.wav",)
    assert retry["prompt"] == ("say:That account number is not valid", "ivr/enter-account.wav")
    assert "4711" not in " ".join(res.path)  # inputs never end up in the path


def test_language_is_applied_per_menu(cfg):
    call = FakeCall(["2", "#", "1"])
    res = run_menu("main", call, cfg, now=WEEKDAY_NOON)
    assert call.languages == [("de", "/usr/share/freeswitch/sounds/de/de/callie", None)]
    assert res.language == "de"  # kept after leaving the menu that set it
    res = run_menu("main", FakeCall(["1"]), cfg, now=WEEKDAY_NOON)
    assert res.language is None


def test_hangup_propagates(cfg):
    with pytest.raises(Hangup):
        run_menu("main", FakeCall(["2", HANGUP]), cfg)
    with pytest.raises(KeyError):
        run_menu("nope", FakeCall([]), cfg)


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (datetime(2026, 11, 23, 8, 0, tzinfo=BERLIN), True),  # Monday opening
        (datetime(2026, 11, 23, 7, 59, tzinfo=BERLIN), False),
        (datetime(2026, 11, 23, 17, 59, tzinfo=BERLIN), True),
        (datetime(2026, 11, 23, 18, 0, tzinfo=BERLIN), False),
        (datetime(2026, 11, 28, 11, 59, tzinfo=BERLIN), True),  # Saturday
        (datetime(2026, 11, 28, 12, 0, tzinfo=BERLIN), False),
        (datetime(2026, 11, 29, 10, 0, tzinfo=BERLIN), False),  # Sunday
        (datetime(2026, 11, 23, 7, 30, tzinfo=ZoneInfo("UTC")), True),  # 08:30 in Berlin
        (datetime(2026, 11, 23, 7, 30, tzinfo=ZoneInfo("UTC")).timestamp(), True),
        (datetime(2026, 11, 23, 17, 30, tzinfo=ZoneInfo("UTC")).timestamp(), False),
        (datetime(2026, 11, 23, 10, 0), True),  # naive: read in the menu's time zone
    ],
)
def test_opening_hours(cfg, when, is_open):
    assert cfg.ivr["hours"].hours.is_open(when) is is_open
    call = FakeCall(["1"])
    res = run_menu("hours", call, cfg, now=when)
    if is_open:
        assert (res.action, res.target, res.reason) == ("queue", "sales", "selected")
        assert call.played == []
    else:
        assert (res.action, res.target, res.reason) == ("voicemail", "5099", "closed")
        assert res.path == ["hours:closed"]
        assert call.played == [("ivr/closed.wav",)] and call.reads == []


def test_hours_past_midnight_and_lists():
    rules = parse_hours("fri 22:00-02:00; mon,wed 09:00-12:00,13:00-17:00; sun-mon 00:00-24:00")
    h = ivr.Hours("x", "UTC", rules)
    utc = ZoneInfo("UTC")
    assert h.is_open(datetime(2026, 11, 27, 23, 0, tzinfo=utc))  # Friday night
    assert h.is_open(datetime(2026, 11, 28, 1, 59, tzinfo=utc))  # Saturday early
    assert not h.is_open(datetime(2026, 11, 28, 2, 0, tzinfo=utc))
    assert not h.is_open(datetime(2026, 11, 27, 1, 0, tzinfo=utc))  # Friday early: Thursday closed
    assert h.is_open(datetime(2026, 11, 25, 13, 30, tzinfo=utc))  # Wednesday afternoon
    assert not h.is_open(datetime(2026, 11, 25, 12, 30, tzinfo=utc))  # lunch
    assert h.is_open(datetime(2026, 11, 29, 23, 59, tzinfo=utc))  # Sunday all day
    assert h.is_open(datetime(2026, 11, 30, 0, 0, tzinfo=utc))  # Monday all day
    assert parse_hours(["daily 00:00-24:00"]) == ((frozenset(range(7)), 0, 1440),)
    assert parse_hours("sat-mon 10:00-11:00")[0][0] == frozenset({5, 6, 0})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "at least one day"),
        ("mon-fri", "give times after the days"),
        ("monday 08:00-18:00", "unknown day"),
        ("mon 8-18", "bad time range"),
        ("mon 08:00-08:00", "empty time range"),
        ("mon 24:00-08:00", "empty time range"),
        ("mon 08:00-25:00", "bad time range"),
        (5, "must be a string"),
    ],
)
def test_bad_hours(text, words):
    problem = parse_hours(text)
    assert isinstance(problem, str) and words in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queue:support", Action("queue", "support")),
        (" ivr:main ", Action("ivr", "main")),
        ("hangup", Action("hangup")),
        ("voicemail:5099", Action("voicemail", "5099")),
        ("transfer:5099  XML  default", Action("transfer", "5099 XML default")),
        ("callback:support", Action("callback", "support")),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("callback", "callback:NAME"),
        ("hangup:now", "unknown action"),
        ("queue:a b", "malformed queue name"),
        ("ivr:", "malformed menu name"),
        ("transfer:", "dialplan extension"),
        ("transfer:5099 XML default extra", "dialplan extension"),
        ("voicemail:50${x}", "dialplan extension"),
        ("transfer:5099 X;M", "dialplan extension"),
        ("bridge:user/1001", "unknown action"),
        (3, "must be an action string"),
    ],
)
def test_bad_actions(text, words):
    problem = parse_action(text)
    assert isinstance(problem, str) and words in problem


# --- config validation ----------------------------------------------------------------------

BASE = "[queues.support]\n[queues.billing]\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text(BASE + text, env={})
    return exc.value.errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "1" = "queue:nope" }\n',
            'ivr.m.options.1: no queue named "nope"',
        ),
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "1" = "ivr:nope", "2" = "hangup" }\n',
            'ivr.m.options.1: no menu named "nope"',
        ),
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "12" = "hangup" }\n',
            "ivr.m.options.12: an option key must be one key of 0-9 * #",
        ),
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "A" = "hangup" }\n',
            "ivr.m.options.A: an option key must be one key of 0-9 * #",
        ),
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "1" = "callback" }\n',
            'ivr.m.options.1: "callback" needs the queue',
        ),
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "1" = "callback:nope" }\n',
            'ivr.m.options.1: no queue named "nope"',
        ),
        (
            '[ivr.a]\nprompt = "p.wav"\noptions = { "1" = "ivr:b" }\n'
            '[ivr.b]\nprompt = "p.wav"\noptions = { "1" = "ivr:a", "2" = "ivr:b" }\n',
            "ivr.a: a loop with no exit",
        ),
        (
            '[ivr.a]\nprompt = "p.wav"\noptions = { "1" = "ivr:a" }\n',
            "ivr.a: a loop with no exit",
        ),
        (
            '[ivr.m]\nprompt = "p.wav"\noptions = { "1" = "hangup" }\ndefault = "ivr:m"\n',
            "ivr.m.default: must not lead back to this menu",
        ),
        (
            '[ivr.a]\nprompt = "p.wav"\noptions = { "1" = "hangup" }\ndefault = "ivr:b"\n'
            '[ivr.b]\nprompt = "p.wav"\noptions = { "1" = "hangup" }\ndefault = "ivr:a"\n',
            "ivr.a.default: a caller who presses nothing goes round in circles: a -> b",
        ),
        ("[ivr.m]\n", "ivr.m.options: a menu needs options (key = action) or collect"),
        ('[ivr.m]\noptions = { "1" = "hangup" }\n', "ivr.m.prompt: is required"),
        (
            '[ivr.m]\nprompt = "my file.wav"\noptions = { "1" = "hangup" }\n',
            'ivr.m.prompt: "my file.wav" is not a usable sound file',
        ),
        (
            '[ivr.m]\nprompt = "say:${uuid}"\noptions = { "1" = "hangup" }\n',
            "ivr.m.prompt: say: text is spoken as written",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nhours = "mon 08:00-18:00"'
            '\nclosed = "hangup"\n',
            "ivr.m.hours: needs timezone",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nhours = "mon 08:00-18:00"'
            '\ntimezone = "Mars/Base"\nclosed = "hangup"\n',
            'ivr.m.timezone: unknown time zone "Mars/Base"',
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nhours = "mon 08:00-18:00"'
            '\ntimezone = "UTC"\n',
            "ivr.m.closed: is required with hours",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nclosed = "hangup"\n',
            "ivr.m.closed: only makes sense with hours",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nhours = "mon 8-18"'
            '\ntimezone = "UTC"\nclosed = "hangup"\n',
            "ivr.m.hours: bad time range",
        ),
        (
            '[ivr.m]\npromt = "a.wav"\nprompt = "a.wav"\noptions = { "1" = "hangup" }\n',
            "ivr.m.promt: unknown key (did you mean prompt?)",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\ntimeout = 0\n',
            "ivr.m.timeout: must be a number of seconds from 1 to 300",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nlanguage = "english"\n',
            "ivr.m.language: must be a language code",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\ntts_voice = "flite"\n',
            "ivr.m.tts_voice: must be ENGINE|VOICE",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\nsound_prefix = "../x"\n',
            "ivr.m.sound_prefix: must be an absolute directory path",
        ),
        ('[ivr.m]\ncollect = { next = "hangup" }\n', "ivr.m.collect.var: is required"),
        (
            '[ivr.m]\ncollect = { var = "acc", next = "hangup" }\n',
            "ivr.m.collect.prompt: is required",
        ),
        (
            '[ivr.m]\ncollect = { var = "acc", prompt = "a.wav" }\n',
            "ivr.m.collect.next: is required",
        ),
        (
            '[ivr.m]\ncollect = { var = "Acc!", prompt = "a.wav", next = "hangup" }\n',
            "ivr.m.collect.var: must be 1 to 32 lower-case letters",
        ),
        (
            '[ivr.m]\ncollect = { var = "a", prompt = "a.wav", next = "hangup", min = 5, max = 4'
            " }\n",
            "ivr.m.collect.min: must not be more than max",
        ),
        (
            '[ivr.m]\ncollect = { var = "a", prompt = "a.wav", next = "hangup", regex = "\\\\s+"'
            " }\n",
            "ivr.m.collect.regex: characters not allowed in a digit regex",
        ),
        (
            '[ivr.m]\ncollect = { var = "a", prompt = "a.wav", next = "hangup", regex = "[0-9" }\n',
            "ivr.m.collect.regex: not a valid regular expression",
        ),
        (
            '[ivr.m]\ncollect = { var = "a", prompt = "a.wav", next = "hangup", regex = "[0-9#]+"'
            " }\n",
            "ivr.m.collect.terminator: # ends the input",
        ),
        (
            '[ivr.m]\ncollect = { var = "a", prompt = "a.wav", next = "queue:nope" }\n',
            'ivr.m.collect.next: no queue named "nope"',
        ),
        (
            '[ivr.m]\ncollect = { var = "a", prompt = "a.wav", next = "hangup", x = 1 }\n',
            "ivr.m.collect.x: unknown key",
        ),
        (
            '[ivr.m]\nprompt = "a.wav"\noptions = { "1" = "hangup" }\n'
            'collect = { var = "a", next = "hangup" }\n',
            "ivr.m.collect: a menu has either options or collect, not both",
        ),
        ('[ivr."a b"]\nprompt = "a.wav"\n', 'ivr."a b": a menu name must be 1 to 64'),
        ("ivr = 1\n", "ivr: must be a table of menus"),
        ('[routes]\n"5000" = "ivr:nope"\n', "routes.5000: no IVR menu named 'nope'"),
        ('default_route = "ivr:nope"\n', "default_route: no IVR menu named 'nope'"),
    ],
)
def test_config_errors_name_the_key(text, expected):
    if not text.startswith("[ivr"):
        with pytest.raises(ConfigError) as exc:
            load_text(text + BASE, env={})
        errors = exc.value.errors
    else:
        errors = errors_of(text)
    assert any(e.startswith(expected) for e in errors), errors


def test_all_menu_errors_are_collected():
    errors = errors_of(
        '[ivr.a]\nprompt = "a.wav"\noptions = { "1" = "queue:nope", "X" = "hangup" }\n'
        'timeout = -1\n[ivr.b]\nprompt = "b.wav"\noptions = { "1" = "ivr:zzz" }\n'
    )
    assert len(errors) == 4, errors


def test_valid_config_and_routes(tmp_path):
    text = (
        BASE
        + 'default_route = "ivr:main"\n[routes]\n"5000" = "ivr:main"\n'
        + '[ivr.main]\nprompt = ["say:Welcome", "ivr/menu.wav"]\n'
        + 'options = { "1" = "queue:support", "2" = "ivr:acc" }\n'
        + '[ivr.acc]\ncollect = { var = "account", prompt = "say:Your account number please",'
        + ' next = "queue:billing" }\n'
    )
    # TOML: top-level keys must come before tables
    text = 'default_route = "ivr:main"\n' + text.replace('default_route = "ivr:main"\n', "")
    cfg = load_text(text, env={})
    assert cfg.routes["5000"] == "ivr:main"
    assert cfg.ivr["main"].prompt == ("say:Welcome", "ivr/menu.wav")
    # menus that speak text get numbers.tts_voice unless they name one
    assert cfg.ivr["main"].tts_voice == "flite|kal"
    assert cfg.ivr["acc"].collect.regex == "\\d+" and cfg.ivr["acc"].collect.terminator == "#"
    f = tmp_path / "fsacd.toml"
    f.write_text(text)
    assert check(f, env={}) == []


def test_fs_regex():
    assert ivr.fs_regex("\\d{4,10}") == "[0-9]{4,10}"
    assert ivr.fs_regex("(1|2)[0-9]*#?") == "(1|2)[0-9]*#?"
    for bad in ("\\s", "1 2", "1$", "${x}", "", "a"):
        with pytest.raises(ValueError):
            ivr.fs_regex(bad)


def test_ask_key():
    call = FakeCall(["1"])
    assert ivr.ask_key(call, ("rec/notice.wav",), expect="1") == "1"
    read = call.reads[0]
    assert read["prompt"] == ("rec/notice.wav",) and read["terminators"] == "#"
    assert ivr.ask_key(FakeCall(["5"]), ("n.wav",), expect="1") == "5"
    assert ivr.ask_key(FakeCall([None]), ("n.wav",)) is None
    assert ivr.ask_key(FakeCall(["#"]), ("n.wav",), expect="1") is None
    call = FakeCall(["#"])
    assert ivr.ask_key(call, ("n.wav",), expect="#") == "#"
    assert call.reads[0]["terminators"] == "*"


def test_docs_example_is_valid():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "ivr.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    queues = "[queues.support]\n[queues.billing]\n"
    cfg = load_text(queues + example, env={})
    assert set(cfg.ivr) == {"main", "billing"}
    assert cfg.ivr["billing"].collect.regex == "\\d+"
    res = run_menu("main", FakeCall(["2", "4711#"]), cfg, now=WEEKDAY_NOON)
    assert (res.action, res.target, res.inputs) == ("queue", "billing", {"account": "4711"})
