"""The DTMF IVR engine: menus walked through an abstract call (plain Python).

A menu (``[ivr.NAME]``, docs/ivr.md) either offers options (one key → an action) or collects a
multi-digit input (account number, PIN). :func:`run_menu` walks the menus through an
:class:`IvrCall` until it reaches an action that leaves the IVR (queue, hang-up, voicemail,
transfer, callback) and returns an :class:`IvrResult`. It never plays a prompt that accepts
input with a separate playback: every such prompt (greeting, menu prompt, invalid/no-input
prompt) is the prompt of the ``play_and_get_digits`` that reads the answer, so callers can
press ahead (FreeSWITCH loses a digit pressed during a separate playback).

FreeSWITCH reports (``tests/data/esl-transcripts/ivr-no-input-invalid-pressahead.txt``): no
input → ``read_result=failure``; a digit the regex refuses → ``read_result=success`` with only
``<var>_invalid`` set. The engine asks for one try per ``play_and_get_digits`` and counts
no-input and invalid answers itself, so each gets its own prompt; a key nobody expected is an
invalid answer, never an exception. A hang-up is whatever the :class:`IvrCall` raises; it
propagates out of :func:`run_menu` unchanged.

The menus come from the ``[ivr.NAME]`` sections, read by :mod:`fsacd.config.ivr`; this module
has the types (:class:`Menu`, :class:`Collect`, :class:`Action`, :class:`Hours`) and the
checks of single values the config uses (:func:`parse_action`, :func:`parse_hours`,
:func:`check_prompt`, :func:`check_regex`), each returning the problem as a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fsacd.core.text import has_control, quote_key, show

#: The keys of a telephone keypad (DTMF A-D are not accepted anywhere).
DTMF_KEYS = "0123456789*#"
#: Action kinds; all but ``ivr`` leave the IVR.
ACTION_KINDS = ("queue", "ivr", "hangup", "voicemail", "transfer", "callback")
EXITS = frozenset(ACTION_KINDS) - {"ivr"}
#: Menus one call may pass through before the IVR gives up (hang-up); a guard, config
#: validation already refuses loops without a way out.
MAX_MENU_STEPS = 30
#: Channel variable ``play_and_get_digits`` stores an option menu's answer in.
CHOICE_VAR = "fsacd_ivr_choice"
#: Prefix of the channel variable a collect node stores its input in (``fsacd_ivr_in_<var>``).
INPUT_VAR_PREFIX = "fsacd_ivr_in_"

MENU_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EXTENSION = re.compile(r"[A-Za-z0-9_+*#.-]{1,64}")
_DIALPLAN = re.compile(r"[A-Za-z]{1,16}")
_CONTEXT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z]{2,4})?")
TTS_VOICE = re.compile(r"[A-Za-z0-9_.-]{1,64}\|[A-Za-z0-9_.-]{1,64}")
SOUND_PREFIX = re.compile(r"/[A-Za-z0-9_./+-]{0,1023}")
#: What a sound file or stream in a prompt may contain (no spaces, quotes, ``$``, ``\`` or
#: ``!``, which would split, quote, expand or join FreeSWITCH arguments).
PROMPT_FILE = re.compile(r"[A-Za-z0-9_./:%(),;=+@~#*-]{1,512}")
#: Characters a digit regex may use (``\d`` is accepted and sent as ``[0-9]``).
_REGEX_CHARS = frozenset("0123456789*#[](){}|?+,^.-")
MAX_PROMPT_PARTS = 10
MAX_SAY_TEXT = 500

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01]\d|2[0-4]):([0-5]\d)")


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """Where a choice leads. ``target``: a queue or menu name, ``EXT [DIALPLAN [CONTEXT]]``
    for voicemail/transfer, the queue for a callback, ``""`` for hangup."""

    kind: str
    target: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


def parse_action(text: Any) -> Action | str:
    """``queue:NAME``, ``ivr:NAME``, ``hangup``, ``voicemail:EXT [DIALPLAN [CONTEXT]]``,
    ``transfer:EXT [DIALPLAN [CONTEXT]]``, ``callback:QUEUE`` → :class:`Action`; else the
    problem (a string). Names are not checked against the config here."""
    if not isinstance(text, str):
        return f'must be an action string like "queue:NAME", got {show(text)}'
    s = text.strip()
    if s == "hangup":
        return Action("hangup")
    if s == "callback":
        return '"callback" needs the queue to call back for: "callback:NAME"'
    kind, sep, rest = s.partition(":")
    if not sep or kind not in ACTION_KINDS or kind == "hangup":
        return (
            f"unknown action {show(text)}: use queue:NAME, ivr:NAME, hangup,"
            " voicemail:EXT, transfer:EXT [DIALPLAN [CONTEXT]] or callback:QUEUE"
        )
    rest = rest.strip()
    if kind in ("queue", "ivr", "callback"):
        if not MENU_NAME.fullmatch(rest):
            return f"malformed {'menu' if kind == 'ivr' else 'queue'} name in {show(text)}"
        return Action(kind, rest)
    parts = rest.split()
    ok = (
        1 <= len(parts) <= 3
        and _EXTENSION.fullmatch(parts[0])
        and (len(parts) < 2 or _DIALPLAN.fullmatch(parts[1]))
        and (len(parts) < 3 or _CONTEXT.fullmatch(parts[2]))
    )
    if not ok:
        return (
            f"{kind} needs a dialplan extension: {kind}:EXT [DIALPLAN [CONTEXT]]"
            f" (e.g. {kind}:5099 XML default), got {show(text)}"
        )
    return Action(kind, " ".join(parts))


# --- opening hours ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hours:
    """Opening hours: ``rules`` of (weekdays 0=Monday, start minute, end minute) in ``tz``.

    A range whose end is not after its start runs past midnight (``fri 22:00-02:00`` is open
    Friday 22:00 to Saturday 02:00).
    """

    text: str
    tz: str
    rules: tuple[tuple[frozenset[int], int, int], ...]

    def is_open(self, when: float | datetime) -> bool:
        zone = ZoneInfo(self.tz)
        if isinstance(when, datetime):
            local = when.astimezone(zone) if when.tzinfo else when.replace(tzinfo=zone)
        else:
            local = datetime.fromtimestamp(when, zone)
        day = local.weekday()
        minute = local.hour * 60 + local.minute
        for days, start, end in self.rules:
            if start < end:
                if day in days and start <= minute < end:
                    return True
            else:  # past midnight
                if day in days and minute >= start:
                    return True
                if (day - 1) % 7 in days and minute < end:
                    return True
        return False


def parse_hours(text: Any) -> tuple[tuple[frozenset[int], int, int], ...] | str:
    """``"mon-fri 08:00-12:00 13:00-18:00; sat 09:00-12:00"`` (or an array of such rules) →
    rules for :class:`Hours`; else the problem. Days: mon..sun, ranges (``fri-mon`` wraps),
    lists (``mon,wed``) or ``daily``."""
    if isinstance(text, str):
        items = text.split(";")
    elif isinstance(text, list) and all(isinstance(x, str) for x in text):
        items = list(text)
    else:
        return f'must be a string like "mon-fri 08:00-18:00", got {show(text)}'
    rules: list[tuple[frozenset[int], int, int]] = []
    for item in items:
        words = item.split()
        if not words:
            continue
        days = _parse_days(words[0])
        if isinstance(days, str):
            return days
        ranges = [r for w in words[1:] for r in w.split(",") if r]
        if not ranges:
            return f"{show(item.strip())}: give times after the days, e.g. 08:00-18:00"
        for rng in ranges:
            span = _parse_range(rng)
            if isinstance(span, str):
                return span
            rules.append((days, *span))
    if not rules:
        return "must name at least one day and time range, e.g. mon-fri 08:00-18:00"
    return tuple(rules)


def _parse_days(text: str) -> frozenset[int] | str:
    if text.lower() in ("daily", "mon-sun"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.lower().split(","):
        a, dash, b = part.partition("-")
        if a not in _DAYS or (dash and b not in _DAYS):
            return f"unknown day {show(part)}: use mon, tue, wed, thu, fri, sat, sun"
        i = _DAYS.index(a)
        j = _DAYS.index(b) if dash else i
        while True:
            out.add(i)
            if i == j:
                break
            i = (i + 1) % 7
    return frozenset(out)


def _parse_range(text: str) -> tuple[int, int] | str:
    a, dash, b = text.partition("-")
    ma, mb = _TIME.fullmatch(a), _TIME.fullmatch(b)
    if not dash or not ma or not mb:
        return f"bad time range {show(text)}: use HH:MM-HH:MM, e.g. 08:00-18:00"
    start = int(ma.group(1)) * 60 + int(ma.group(2))
    end = int(mb.group(1)) * 60 + int(mb.group(2))
    if start > 24 * 60 or end > 24 * 60:
        return f"bad time in {show(text)}: the latest time is 24:00"
    if start == end or start == 24 * 60:
        return f"empty time range {show(text)}"
    return start, end


# --- prompts and regexes ---------------------------------------------------------------------


def check_prompt(value: Any) -> tuple[str, ...] | str:
    """A prompt: a sound file/stream or ``say:TEXT`` (text to speak), or an array of them
    played one after the other; → the parts, else the problem."""
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        return f'must be a sound file, "say:TEXT" or an array of them, got {show(value)}'
    if len(parts) > MAX_PROMPT_PARTS:
        return f"at most {MAX_PROMPT_PARTS} parts"
    out: list[str] = []
    for p in parts:
        if p.startswith("say:"):
            text = p[4:].strip()
            if not text or len(text) > MAX_SAY_TEXT or has_control(text):
                return f"say: needs 1 to {MAX_SAY_TEXT} characters of text, no control characters"
            if "${" in text:
                return "say: text is spoken as written; ${...} is not expanded"
            out.append("say:" + text)
        elif PROMPT_FILE.fullmatch(p):
            out.append(p)
        else:
            return (
                f"{show(p)} is not a usable sound file or stream (no spaces, quotes,"
                ' $, \\ or !); use "say:TEXT" for text to speak'
            )
    return tuple(out)


def fs_regex(regex: str) -> str:
    """The regex as sent to FreeSWITCH: ``\\d`` → ``[0-9]``; ``ValueError`` if it has any
    character outside digits, ``* #`` and ``[](){}|?+,^.-`` (no spaces, ``$`` or ``\\``)."""
    out = regex.replace("\\d", "[0-9]")
    bad = sorted(set(out) - _REGEX_CHARS)
    if bad or not out:
        raise ValueError(f"characters not allowed in a digit regex: {' '.join(bad) or 'none'}")
    return out


def py_regex(regex: str) -> re.Pattern[str]:
    """The regex as the engine checks it (the whole input must match)."""
    return re.compile(fs_regex(regex))


def check_regex(text: Any) -> str | None:
    if not isinstance(text, str) or not text:
        return f"must be a regular expression string, got {show(text)}"
    try:
        fs_regex(text)
        re.compile(fs_regex(text))
    except ValueError as exc:
        return f"{exc} (use \\d, [0-9], {{m,n}}, |, ...)"
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


# --- menus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collect:
    """A multi-digit input: stored as ``inputs[var]``, then ``next``."""

    var: str
    prompt: tuple[str, ...]
    next: Action
    min: int = 1
    max: int = 10
    terminator: str = "#"
    regex: str = "\\d+"


@dataclass(frozen=True)
class Menu:
    name: str
    prompt: tuple[str, ...] = ()
    greeting: tuple[str, ...] = ()
    options: dict[str, Action] = field(default_factory=dict)
    collect: Collect | None = None
    timeout: float = 5.0
    digit_timeout: float = 3.0
    max_tries: int = 3
    invalid_prompt: tuple[str, ...] = ()
    no_input_prompt: tuple[str, ...] = ()
    default: Action | None = None
    hours: Hours | None = None
    closed: Action | None = None
    closed_prompt: tuple[str, ...] = ()
    language: str | None = None
    sound_prefix: str | None = None
    tts_voice: str | None = None

    def actions(self) -> list[tuple[str, Action]]:
        """Every action of the menu with the key naming it (for checks)."""
        out = [(f"options.{quote_key(k)}", a) for k, a in self.options.items()]
        if self.collect is not None:
            out.append(("collect.next", self.collect.next))
        if self.default is not None:
            out.append(("default", self.default))
        if self.closed is not None:
            out.append(("closed", self.closed))
        return out

    @property
    def terminator(self) -> str:
        """The terminator of an option menu: a key that is not an option."""
        return next((k for k in "#*0123456789" if k not in self.options), "#")


# --- the engine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsResult:
    """What one ``play_and_get_digits`` gave: ``read_result`` (``success``/``failure``/
    ``timeout``), ``digits`` (``<var>``) and ``invalid`` (``<var>_invalid``)."""

    read_result: str
    digits: str = ""
    invalid: str = ""


class IvrCall(Protocol):
    """What the engine needs from a call. Every method raises on hang-up (the engine lets it
    through). Prompts are tuples of parts from the config (files, streams, ``say:TEXT``).

    Optional: ``set_language(language, sound_prefix, tts_voice)`` — called when a menu with
    any of these set is entered (the ESL adapter sets ``default_language``, ``sound_prefix``,
    ``tts_engine``/``tts_voice``).
    """

    def play_and_get_digits(
        self,
        min_digits: int,
        max_digits: int,
        tries: int,
        timeout_ms: int,
        terminators: str,
        prompt: Sequence[str],
        invalid_prompt: Sequence[str],
        var: str,
        regex: str,
        digit_timeout_ms: int,
    ) -> DigitsResult: ...

    def playback(self, prompt: Sequence[str]) -> bool: ...


class HasMenus(Protocol):
    """What :func:`run_menu` reads of the config: the menus by name."""

    @property
    def ivr(self) -> Mapping[str, Menu]: ...


@dataclass(frozen=True)
class IvrResult:
    """Where the IVR sends the call.

    ``action``: ``queue``/``hangup``/``voicemail``/``transfer``/``callback``; ``target`` as in
    :class:`Action`; ``inputs``: collected inputs (var → digits); ``path``: what happened,
    e.g. ``["main:2", "billing:no-input", "billing:account", "billing:default"]`` (never the
    digits of an input); ``reason``: ``selected`` (the caller's choice or input), ``default``
    (tries used up), ``closed`` (outside hours) or ``too-many-menus``; ``language``: the
    language in effect at the end (None if no menu set one).
    """

    action: str
    target: str
    inputs: dict[str, str]
    path: list[str]
    reason: str = "selected"
    language: str | None = None


def classify(
    res: DigitsResult | None, pattern: re.Pattern[str], min_digits: int, max_digits: int
) -> tuple[str, str]:
    """``("ok", digits)``, ``("invalid", what was typed)`` or ``("no-input", "")``.

    ``<var>`` is set whenever digits were typed, even too few: the engine checks them itself
    (length, keypad keys, the whole input matching the regex). Valid: ``read_result`` is
    ``success``, or ``timeout`` (an input ended by the digit timeout instead of the
    terminator: FreeSWITCH accepts it but leaves ``read_result=timeout``). ``<var>_invalid``
    after a success, or digits that fail the checks, are invalid; anything else (also a stale
    ``<var>_invalid`` after a failed read) is no input.
    """
    if res is None:
        return "no-input", ""
    read_result = str(res.read_result or "")
    digits = str(res.digits or "")
    invalid = str(res.invalid or "")
    if digits:
        ok = (
            read_result in ("success", "timeout")
            and min_digits <= len(digits) <= max_digits
            and all(ch in DTMF_KEYS for ch in digits)
            and pattern.fullmatch(digits) is not None
        )
        return ("ok", digits) if ok else ("invalid", digits)
    if read_result == "success" and invalid:
        return "invalid", invalid
    return "no-input", ""


def collect_input(
    call: IvrCall,
    spec: Collect,
    *,
    timeout: float = 5.0,
    digit_timeout: float = 3.0,
    max_tries: int = 3,
    invalid_prompt: Sequence[str] = (),
    no_input_prompt: Sequence[str] = (),
    lead: Sequence[str] = (),
    path: list[str] | None = None,
    where: str = "",
) -> str | None:
    """Ask for a multi-digit input up to ``max_tries`` times; the digits, or None.

    ``lead`` is played before the first prompt (a greeting); after a failed try the
    invalid/no-input prompt is played before the prompt, inside the same read.
    """
    pattern = py_regex(spec.regex)
    return _read(
        call,
        spec.min,
        spec.max,
        spec.terminator,
        spec.prompt,
        INPUT_VAR_PREFIX + spec.var,
        fs_regex(spec.regex),
        pattern,
        timeout,
        digit_timeout,
        max_tries,
        tuple(invalid_prompt),
        tuple(no_input_prompt),
        tuple(lead),
        path,
        where,
    )


def ask_key(
    call: IvrCall,
    prompt: Sequence[str],
    *,
    expect: str = "1",
    timeout: float = 5.0,
    var: str = "fsacd_ivr_key",
) -> str | None:
    """Play ``prompt`` once and read one key (a key pressed during the prompt counts); the
    key pressed, or None without one. ``expect`` is the key the caller is asked for (it is
    never the terminator). For the recording-consent question (``consent.decide``)."""
    terminator = "*" if expect == "#" else "#"
    keys = "".join(k for k in DTMF_KEYS if k != terminator)
    regex = "[" + keys + "]"
    res = call.play_and_get_digits(
        1, 1, 1, _ms(timeout), terminator, tuple(prompt), (), var, regex, _ms(timeout)
    )
    kind, value = classify(res, re.compile(regex), 1, 1)
    return value if kind == "ok" else None


def run_menu(
    menu_name: str,
    call: IvrCall,
    cfg: HasMenus | Mapping[str, Menu],
    now: float | datetime | None = None,
) -> IvrResult:
    """Walk the menus from ``menu_name`` until an action leaves the IVR.

    ``cfg``: the config (its ``ivr``, e.g. a ``fsacd.config.Config``) or a mapping name →
    :class:`Menu`.
    ``now``: the time for opening hours (epoch seconds or a datetime; default: now). Raises
    whatever ``call`` raises (hang-up); ``KeyError`` if ``menu_name`` is not a menu.
    """
    menus: Mapping[str, Menu] = cfg if isinstance(cfg, Mapping) else cfg.ivr
    if menu_name not in menus:
        raise KeyError(menu_name)
    when = datetime.now().astimezone() if now is None else now
    inputs: dict[str, str] = {}
    path: list[str] = []
    greeted: set[str] = set()
    applied: tuple[str | None, str | None, str | None] = (None, None, None)
    language: str | None = None
    current = menu_name
    for _ in range(MAX_MENU_STEPS):
        menu = menus[current]
        wanted = (menu.language, menu.sound_prefix, menu.tts_voice)
        if any(wanted):
            merged = tuple(w if w is not None else a for w, a in zip(wanted, applied, strict=True))
            if merged != applied:
                setter = getattr(call, "set_language", None)
                if setter is not None:
                    setter(*merged)
                applied = merged  # type: ignore[assignment]
            language = applied[0]
        first = current not in greeted
        greeted.add(current)
        if menu.hours is not None and not menu.hours.is_open(when):
            path.append(f"{current}:closed")
            if menu.closed_prompt:
                call.playback(menu.closed_prompt)  # accepts no input: nothing to lose
            action, reason = menu.closed or Action("hangup"), "closed"
        else:
            action, reason = _ask(menu, call, inputs, path, first)
        if action.kind != "ivr":
            return IvrResult(action.kind, action.target, inputs, path, reason, language)
        current = action.target
        if current not in menus:  # config checks make this impossible; stay safe anyway
            break
    path.append(f"{current}:too-many-menus")
    return IvrResult("hangup", "", inputs, path, "too-many-menus", language)


def _ask(
    menu: Menu, call: IvrCall, inputs: dict[str, str], path: list[str], first: bool
) -> tuple[Action, str]:
    lead = menu.greeting if first else ()
    if menu.collect is not None:
        spec = menu.collect
        value = collect_input(
            call,
            spec,
            timeout=menu.timeout,
            digit_timeout=menu.digit_timeout,
            max_tries=menu.max_tries,
            invalid_prompt=menu.invalid_prompt,
            no_input_prompt=menu.no_input_prompt,
            lead=lead,
            path=path,
            where=menu.name,
        )
        if value is not None:
            inputs[spec.var] = value
            path.append(f"{menu.name}:{spec.var}")
            return spec.next, "selected"
    else:
        keys = "".join(k for k in DTMF_KEYS if k in menu.options)
        regex = "[" + keys + "]"
        key = _read(
            call,
            1,
            1,
            menu.terminator,
            menu.prompt,
            CHOICE_VAR,
            regex,
            re.compile(regex),
            menu.timeout,
            menu.digit_timeout,
            menu.max_tries,
            menu.invalid_prompt,
            menu.no_input_prompt,
            lead,
            path,
            menu.name,
        )
        if key is not None and key in menu.options:
            path.append(f"{menu.name}:{key}")
            return menu.options[key], "selected"
    path.append(f"{menu.name}:default")
    return menu.default or Action("hangup"), "default"


def _read(
    call: IvrCall,
    min_digits: int,
    max_digits: int,
    terminator: str,
    prompt: tuple[str, ...],
    var: str,
    regex: str,
    pattern: re.Pattern[str],
    timeout: float,
    digit_timeout: float,
    max_tries: int,
    invalid_prompt: tuple[str, ...],
    no_input_prompt: tuple[str, ...],
    lead: tuple[str, ...],
    path: list[str] | None,
    where: str,
) -> str | None:
    """One try per play_and_get_digits, so no-input and invalid get their own prompts."""
    for _ in range(max_tries):
        res = call.play_and_get_digits(
            min_digits,
            max_digits,
            1,
            _ms(timeout),
            terminator,
            lead + prompt,
            (),
            var,
            regex,
            _ms(digit_timeout),
        )
        kind, value = classify(res, pattern, min_digits, max_digits)
        if kind == "ok":
            return value
        if path is not None:
            path.append(f"{where}:{kind}")
        lead = invalid_prompt if kind == "invalid" else no_input_prompt
    return None


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))
