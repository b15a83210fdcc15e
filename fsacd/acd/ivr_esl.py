"""The IVR engine's call (:class:`fsacd.core.ivr.IvrCall`) on FreeSWITCH's event socket.

:class:`EslIvrCall` turns the engine's requests into applications run through a *runner*: any
object with ``run_app(app, arg) -> Event`` that executes one application on the caller's
channel, waits for its CHANNEL_EXECUTE_COMPLETE (which carries the channel variables) and
raises when the caller hangs up. The call flow passes a small wrapper around its own
``execute`` + ``_wait_app_complete`` (its inbox already raises on hang-up); outside the call
flow :class:`SessionRunner` does the same with an :class:`~fsacd.esl.session.OutboundSession`.

Everything that reaches FreeSWITCH is built here and filtered: prompts keep only characters
that cannot split, quote, expand or join arguments (:func:`render_prompt`), the regex only
digit-pattern characters (:func:`fsacd.core.ivr.fs_regex`), variable names and numbers are
checked; spoken text goes through :func:`fsacd.core.dialstring.app_arg_safe` first.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from fsacd.acd import prompts
from fsacd.core import dialstring, ivr
from fsacd.esl.framing import Event
from fsacd.esl.session import ESLDisconnected, OutboundSession

#: Longest wait for one IVR application (a prompt plus the time to answer). The call flow's
#: short APP_TIMEOUT is too short for prompts; use this (or more) there too.
IVR_APP_TIMEOUT = 300.0
#: What FreeSWITCH plays itself after a failed try (tries=1: after every failure). The engine
#: plays its own invalid/no-input prompts inside the next read, so this stays silent.
BAD_INPUT = "silence_stream://100"
#: The prompt argument meaning "no prompt" (switch_ivr_read skips it).
NO_PROMPT = "silence"

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_FILE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:%(),;=+@~#*-"
)
_SAY_DROP = re.compile(r"['!:^@]")  # quote, file_string joiner, say: field separator, @@ offset
_SPACES = re.compile(r"\s+")
_HANGUP_STATES = frozenset({"CS_HANGUP", "CS_REPORTING", "CS_DESTROY"})


class IvrHangup(Exception):
    """The caller hung up (or the socket closed) while the IVR ran."""


class AppRunner(Protocol):
    def run_app(self, app: str, arg: str | None = None) -> Event: ...


# --- building arguments ----------------------------------------------------------------------


def render_part(part: str) -> str:
    """One prompt part for FreeSWITCH: ``say:TEXT`` keeps the text without ``' ! : ^ @``,
    ``$``, ``\\`` and control characters; a file keeps only file-name characters."""
    if part.startswith("say:"):
        text = dialstring.app_arg_safe(part[4:])
        text = _SPACES.sub(" ", _SAY_DROP.sub(" ", text)).strip()[: ivr.MAX_SAY_TEXT]
        return "say:" + text if text else ""
    return "".join(ch for ch in part if ch in _FILE_CHARS)[:512]


def render_prompt(parts: Sequence[str] | str, *, quote: bool = False) -> str:
    """Prompt parts → one playback target: the part itself, or ``file_string://a!b`` for
    several. With ``quote`` (an argument FreeSWITCH splits on spaces) a target containing
    spaces (spoken text) is wrapped in ``'...'``. ``""`` when nothing is left."""
    if isinstance(parts, str):
        parts = (parts,)
    rendered = [r for r in (render_part(p) for p in parts) if r]
    if not rendered:
        return ""
    target = rendered[0] if len(rendered) == 1 else "file_string://" + "!".join(rendered)
    if quote and " " in target:
        target = f"'{target}'"
    return target


def pagd_arg(
    min_digits: int,
    max_digits: int,
    tries: int,
    timeout_ms: int,
    terminators: str,
    prompt: Sequence[str] | str,
    invalid_prompt: Sequence[str] | str,
    var: str,
    regex: str,
    digit_timeout_ms: int,
) -> str:
    """The ``play_and_get_digits`` argument:
    ``min max tries timeout terminators file invalid_file var regexp digit_timeout``.

    ValueError for numbers out of range, no usable terminator, a bad variable name or a regex
    with characters outside :func:`fsacd.core.ivr.fs_regex`'s set."""
    nums = (min_digits, max_digits, tries, timeout_ms, digit_timeout_ms)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
        raise ValueError("digit counts, tries and timeouts must be whole numbers")
    if not (0 <= min_digits <= max_digits <= 128 and 1 <= tries <= 100):
        raise ValueError("bad digit counts or tries")
    if not (1 <= timeout_ms <= 3_600_000 and 1 <= digit_timeout_ms <= 3_600_000):
        raise ValueError("bad timeout")
    terms = "".join(ch for ch in dict.fromkeys(terminators) if ch in ivr.DTMF_KEYS)
    if not terms:
        raise ValueError("at least one terminator key is needed")
    if not _VAR.fullmatch(var):
        raise ValueError("bad variable name")
    rx = ivr.fs_regex(regex)
    file = render_prompt(prompt, quote=True) or NO_PROMPT
    bad = render_prompt(invalid_prompt, quote=True) or BAD_INPUT
    arg = (
        f"{min_digits} {max_digits} {tries} {timeout_ms} {terms} {file} {bad} {var} {rx}"
        f" {digit_timeout_ms}"
    )
    # every part is filtered above; this only guards the guarantee (no truncation here: a
    # cut argument would lose the variable and regex)
    if "$" in arg or "\\" in arg or any(unicodedata.category(c).startswith("C") for c in arg):
        raise ValueError("unsafe play_and_get_digits argument")
    return arg


def digits_result(event: Event, var: str) -> ivr.DigitsResult:
    """``read_result``, ``<var>`` and ``<var>_invalid`` from the CHANNEL_EXECUTE_COMPLETE."""
    return ivr.DigitsResult(
        read_result=event.get("variable_read_result") or "",
        digits=event.get(f"variable_{var}") or "",
        invalid=event.get(f"variable_{var}_invalid") or "",
    )


def hung_up(event: Event | None) -> bool:
    """Does this event say the channel is hanging up (an app interrupted by the hang-up)?"""
    if event is None:
        return True
    if event.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "SOCKET_CLOSED", "DISCONNECT"):
        return True
    return event.get("Answer-State") == "hangup" or event.get("Channel-State") in _HANGUP_STATES


# --- the call --------------------------------------------------------------------------------


class _FuncRunner:
    def __init__(self, func: Callable[[str, str | None], Event]) -> None:
        self._func = func

    def run_app(self, app: str, arg: str | None = None) -> Event:
        return self._func(app, arg)


class EslIvrCall:
    """:class:`fsacd.core.ivr.IvrCall` through ``runner`` (an object with ``run_app(app,
    arg)``, or a function ``(app, arg) -> Event``). Raises :class:`IvrHangup` when a completed
    application reports the hang-up, besides whatever the runner raises."""

    def __init__(self, runner: AppRunner | Callable[[str, str | None], Event]) -> None:
        if not hasattr(runner, "run_app"):
            runner = _FuncRunner(runner)  # type: ignore[arg-type]
        self.runner: AppRunner = runner  # type: ignore[assignment]

    def _run(self, app: str, arg: str | None) -> Event:
        event = self.runner.run_app(app, arg)
        if hung_up(event):
            raise IvrHangup(f"caller hung up during {app}")
        return event

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
    ) -> ivr.DigitsResult:
        arg = pagd_arg(
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
        )
        started = time.monotonic()
        result = digits_result(self._run("play_and_get_digits", arg), var)
        elapsed = time.monotonic() - started
        keys = result.digits or result.invalid  # a key was pressed: the prompt was heard
        prompts.check_read(render_prompt(prompt), keys, elapsed, timeout_ms)
        return result

    def playback(self, prompt: Sequence[str]) -> bool:
        """Play a prompt that accepts no input; True if FreeSWITCH says it was played."""
        target = render_prompt(prompt)
        if not target:
            return False
        event = self._run("playback", target)
        response = event.get("Application-Response")
        prompts.check_playback(target, response)
        return response == "FILE PLAYED"

    def set_language(
        self, language: str | None, sound_prefix: str | None, tts_voice: str | None
    ) -> None:
        """``default_language`` (say, phrases), ``sound_prefix`` (relative sound files),
        ``tts_engine``/``tts_voice`` (``say:`` prompts); values not matching their format are
        skipped."""
        pairs: list[str] = []
        if language and ivr.LANGUAGE.fullmatch(language):
            pairs.append(f"default_language={language}")
        if sound_prefix and ivr.SOUND_PREFIX.fullmatch(sound_prefix):
            pairs.append(f"sound_prefix={sound_prefix}")
        if tts_voice and ivr.TTS_VOICE.fullmatch(tts_voice):
            engine, voice = tts_voice.split("|", 1)
            pairs += [f"tts_engine={engine}", f"tts_voice={voice}"]
        if len(pairs) == 1:
            self._run("set", dialstring.app_arg_safe(pairs[0]))
        elif pairs:
            self._run("multiset", dialstring.app_arg_safe(" ".join(pairs)))


class SessionRunner:
    """``run_app`` straight on an :class:`OutboundSession` (``execute_wait``), for code that
    does not read the session's events itself. Raises :class:`IvrHangup` on hang-up or a
    closed socket."""

    def __init__(self, session: OutboundSession, timeout: float = IVR_APP_TIMEOUT) -> None:
        self.session = session
        self.timeout = timeout

    def run_app(self, app: str, arg: str | None = None) -> Event:
        if self.session.hungup:
            raise IvrHangup("caller gone")
        try:
            event = self.session.execute_wait(app, arg, timeout=self.timeout)
        except ESLDisconnected:
            raise IvrHangup("socket closed") from None
        if hung_up(event) or self.session.hungup:
            raise IvrHangup(f"caller hung up during {app}")
        return event


def run(
    menu_name: str, runner: AppRunner | Callable[[str, str | None], Event], cfg: Any, **kw: Any
) -> ivr.IvrResult:
    """:func:`fsacd.core.ivr.run_menu` on the event socket: ``run(name, runner, cfg)``."""
    return ivr.run_menu(menu_name, EslIvrCall(runner), cfg, **kw)
