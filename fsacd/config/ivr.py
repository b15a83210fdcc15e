"""IVR (docs/ivr.md): the ``[ivr.NAME]`` menus, and a queue's keys for recording consent,
announcements, the exit key and the callback key.

The menus are read into :class:`fsacd.core.ivr.Menu`; single values (actions, hours, prompts,
digit regexes) are checked by the engine's own validators in :mod:`fsacd.core.ivr`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fsacd.config.model import QueueConfig
from fsacd.config.reader import DAY, Table, num
from fsacd.core import consent
from fsacd.core.ivr import (
    DTMF_KEYS,
    EXITS,
    LANGUAGE,
    MENU_NAME,
    SOUND_PREFIX,
    TTS_VOICE,
    Action,
    Collect,
    Hours,
    Menu,
    check_prompt,
    check_regex,
    parse_action,
    parse_hours,
    py_regex,
)
from fsacd.core.text import quote_key, show

_INPUT_VAR = re.compile(r"[a-z][a-z0-9_]{0,31}")


# --- [ivr.NAME] ------------------------------------------------------------------------------


def read_menus(data: Any, errors: list[str], *, tts_voice: str | None = None) -> dict[str, Menu]:
    """The ``[ivr.NAME]`` tables → menus; problems are appended to ``errors`` naming the key
    (a menu with problems is returned as far as it is valid, so that its names are checked).

    ``tts_voice`` (``numbers.tts_voice``) is used by menus that speak text (``say:``) and name
    no voice. Names of queues and menus are checked by :func:`check_menus`.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        errors.append(f"ivr: must be a table of menus, got {show(data)}")
        return {}
    menus: dict[str, Menu] = {}
    for name, body in data.items():
        path = f"ivr.{quote_key(name)}"
        if not MENU_NAME.fullmatch(name):
            errors.append(f"{path}: a menu name must be 1 to 64 letters, digits, _ or -")
            continue
        if not isinstance(body, dict):
            errors.append(f"{path}: must be a table, got {show(body)}")
            continue
        menus[name] = _menu(name, Table(body, path, errors), tts_voice)
    return menus


def prompt_key(t: Table, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A prompt (:func:`fsacd.core.ivr.check_prompt`); ``default`` when absent or bad."""
    if not t.has(name):
        t.raw(name)
        return default
    got = check_prompt(t.raw(name))
    if isinstance(got, str):
        t.error(name, got)
        return default
    return got


def _action_key(t: Table, name: str) -> Action | None:
    if not t.has(name):
        t.raw(name)
        return None
    got = parse_action(t.raw(name))
    if isinstance(got, str):
        t.error(name, got)
        return None
    return got


def dtmf_key(t: Table, name: str, default: str | None) -> str | None:
    """One key of the keypad (``0-9 * #``)."""
    v = t.string(name, default, max_len=8)
    if v is not None and (len(v) != 1 or v not in DTMF_KEYS):
        t.error(name, f"must be one key of 0-9 * #, got {show(v)}")
        return default
    return v


def _menu(name: str, t: Table, default_voice: str | None) -> Menu:
    d = Menu(name="-")
    greeting = prompt_key(t, "greeting")
    prompt = prompt_key(t, "prompt")
    options: dict[str, Action] = {}
    if t.has("options"):
        raw = t.raw("options")
        if not isinstance(raw, dict) or not raw:
            t.error("options", 'must be a table of key = action, e.g. { "1" = "queue:support" }')
        else:
            for key, value in raw.items():
                where = f"options.{quote_key(key)}"
                if len(key) != 1 or key not in DTMF_KEYS:
                    t.error(where, "an option key must be one key of 0-9 * #")
                    continue
                act = parse_action(value)
                if isinstance(act, str):
                    t.error(where, act)
                    continue
                options[key] = act
            if len(raw) >= len(DTMF_KEYS):
                t.error("options", "at most 11 options (one key must remain free)")
    collect: Collect | None = None
    if t.has("collect"):
        collect = _collect(Table(t.raw("collect"), t.key("collect"), t.errors), prompt)
    elif not t.has("options"):
        t.raw("options")
        t.raw("collect")
        t.error("options", "a menu needs options (key = action) or collect (a multi-digit input)")
    if t.has("options") and t.has("collect"):
        t.error("collect", "a menu has either options or collect, not both")
    if t.has("options") and not t.has("prompt"):
        t.error("prompt", "is required: what the caller hears before choosing")
    timeout = t.seconds("timeout", d.timeout, 1, 300)
    digit_timeout = t.seconds("digit_timeout", d.digit_timeout, 0.5, 60)
    max_tries = t.integer("max_tries", d.max_tries, 1, 10)
    invalid_prompt = prompt_key(t, "invalid_prompt")
    no_input_prompt = prompt_key(t, "no_input_prompt")
    default = _action_key(t, "default")
    hours_raw = t.raw("hours")
    tz = t.string("timezone", None, max_len=64)
    closed = _action_key(t, "closed")
    closed_prompt = prompt_key(t, "closed_prompt")
    hours: Hours | None = None
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            t.error("timezone", f'unknown time zone {show(tz)}, e.g. "Europe/Berlin"')
            tz = None
    if hours_raw is not None:
        rules = parse_hours(hours_raw)
        if isinstance(rules, str):
            t.error("hours", rules)
        elif tz is None and not t.has("timezone"):
            t.error("hours", 'needs timezone, e.g. timezone = "Europe/Berlin"')
        elif tz is not None:
            text = hours_raw if isinstance(hours_raw, str) else "; ".join(hours_raw)
            hours = Hours(text=text, tz=tz, rules=rules)
        if closed is None and not t.has("closed"):
            t.error(
                "closed",
                'is required with hours: where calls go outside them, e.g. "voicemail:5099"',
            )
    else:
        for key in ("timezone", "closed", "closed_prompt"):
            if t.has(key):
                t.error(key, "only makes sense with hours")
    language = t.string("language", None, max_len=16)
    if language is not None and not LANGUAGE.fullmatch(language):
        t.error("language", f'must be a language code like "en" or "de", got {show(language)}')
        language = None
    sound_prefix = t.string("sound_prefix", None, max_len=1024)
    if sound_prefix is not None and (
        not SOUND_PREFIX.fullmatch(sound_prefix) or "/../" in sound_prefix + "/"
    ):
        t.error("sound_prefix", "must be an absolute directory path (letters, digits, _ . / + -)")
        sound_prefix = None
    voice = t.string("tts_voice", None, max_len=130)
    if voice is not None and not TTS_VOICE.fullmatch(voice):
        t.error("tts_voice", f'must be ENGINE|VOICE like "flite|kal", got {show(voice)}')
        voice = None
    t.unknown()
    menu = Menu(
        name=name,
        prompt=prompt,
        greeting=greeting,
        options=options,
        collect=collect,
        timeout=timeout,
        digit_timeout=digit_timeout,
        max_tries=max_tries,
        invalid_prompt=invalid_prompt,
        no_input_prompt=no_input_prompt,
        default=default,
        hours=hours,
        closed=closed,
        closed_prompt=closed_prompt,
        language=language,
        sound_prefix=sound_prefix,
        tts_voice=voice,
    )
    if voice is None and default_voice and _speaks(menu):
        menu = replace(menu, tts_voice=default_voice)
    return menu


def _speaks(menu: Menu) -> bool:
    prompts = [
        menu.prompt,
        menu.greeting,
        menu.invalid_prompt,
        menu.no_input_prompt,
        menu.closed_prompt,
        menu.collect.prompt if menu.collect else (),
    ]
    return any(p.startswith("say:") for parts in prompts for p in parts)


def _collect(t: Table, menu_prompt: tuple[str, ...]) -> Collect | None:
    n_errors = len(t.errors)
    var = t.string("var", None, max_len=32)
    if var is None and not t.has("var"):
        t.error("var", 'is required: the name the input is stored under, e.g. "account"')
    elif var is not None and not _INPUT_VAR.fullmatch(var):
        t.error("var", f"must be 1 to 32 lower-case letters, digits or _, got {show(var)}")
    lo = t.integer("min", 1, 1, 64)
    hi = t.integer("max", 10, 1, 64)
    if lo > hi:
        t.error("min", f"must not be more than max ({hi})")
    terminator = dtmf_key(t, "terminator", "#")
    regex = t.string("regex", "\\d+", max_len=200)
    if (problem := check_regex(regex)) is not None:
        t.error("regex", problem)
    elif terminator is not None and py_regex(regex).fullmatch(terminator):
        t.error("terminator", f"{terminator} ends the input, so the regex can't accept it")
    prompt = prompt_key(t, "prompt") or menu_prompt
    if not prompt:
        t.error("prompt", "is required (here or as the menu's prompt)")
    nxt = _action_key(t, "next")
    if nxt is None and not t.has("next"):
        t.error("next", 'is required: where the call goes after the input, e.g. "queue:billing"')
    t.unknown()
    if len(t.errors) != n_errors or var is None or nxt is None:
        return None
    return Collect(var, prompt, nxt, lo, hi, terminator or "#", regex)


def check_menus(
    menus: Mapping[str, Menu],
    queues: Collection[str],
    errors: list[str],
    *,
    loops: bool = True,
) -> None:
    """Cross-checks: every queue/menu named exists; with ``loops`` (pass False when the menus
    had errors of their own: a half-read menu would look like a trap) also that no menu is a
    trap (all its choices lead only to menus that never reach a queue, hang-up, voicemail,
    transfer or callback) and that a silent caller is not sent round in circles
    (``default``/``closed`` chains)."""
    queue_names = set(queues)
    for name, menu in menus.items():
        for key, act in menu.actions():
            where = f"ivr.{quote_key(name)}.{key}"
            if act.kind in ("queue", "callback") and act.target not in queue_names:
                errors.append(f"{where}: no queue named {show(act.target)}")
            elif act.kind == "ivr" and act.target not in menus:
                errors.append(f"{where}: no menu named {show(act.target)}")
            elif act.kind == "ivr" and act.target == name and key in ("default", "closed"):
                errors.append(f"{where}: must not lead back to this menu (the caller would loop)")
    if not loops:
        return
    # menus from which some action leaves the IVR
    good = {n for n, m in menus.items() if any(a.kind in EXITS for _, a in m.actions())}
    changed = True
    while changed:
        changed = False
        for n, m in menus.items():
            if n not in good and any(a.kind == "ivr" and a.target in good for _, a in m.actions()):
                good.add(n)
                changed = True
    for n, m in menus.items():
        if n in good:
            continue
        if all(a.kind != "ivr" or a.target in menus for _, a in m.actions()):
            reach = sorted({a.target for _, a in m.actions() if a.kind == "ivr"})
            errors.append(
                f"ivr.{quote_key(n)}: a loop with no exit: it leads only to menus"
                f" ({', '.join(reach) or 'none'}) that never reach a queue, hangup, voicemail,"
                " transfer or callback"
            )
    # what a caller who never presses anything goes through: default/closed edges
    edges: dict[str, set[str]] = {}
    for n, m in menus.items():
        edges[n] = {
            a.target
            for a in (m.default, m.closed)
            if a is not None and a.kind == "ivr" and a.target in menus and a.target != n
        }
    reach = {n: _reachable(n, edges) for n in menus}
    for n in menus:
        if n not in reach[n]:
            continue
        cycle = sorted(x for x in reach[n] if n in reach[x])
        if n == cycle[0]:
            errors.append(
                f"ivr.{quote_key(n)}.default: a caller who presses nothing goes round"
                f" in circles: {' -> '.join(cycle)} (default and closed actions)"
            )


def _reachable(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        cur = todo.pop()
        if cur not in seen:
            seen.add(cur)
            todo.extend(edges.get(cur, ()))
    return seen


# --- a queue's keys (recording consent and waiting) ------------------------------------------


def queue_ivr(t: Table) -> dict[str, Any]:
    """The keys of a queue for recording consent, announcements, exit and callback keys."""
    d = QueueConfig(name="-")
    out: dict[str, Any] = {"recording": t.choice("recording", d.recording, consent.POLICIES)}
    path = t.string("recording_path", d.recording_path, max_len=512)
    if (problem := consent.check_template(path)) is not None:
        t.error("recording_path", f"{problem}, got {show(path)}")
        path = d.recording_path
    out["recording_path"] = path
    notice = None
    if t.has("recording_notice"):
        got = check_prompt(t.raw("recording_notice"))
        if isinstance(got, str):
            t.error("recording_notice", got)
        else:
            notice = got
    else:
        t.raw("recording_notice")
        if out["recording"] != "off":
            t.error(
                "recording_notice",
                f'is required with recording = "{out["recording"]}":'
                " callers must hear that the call may be recorded",
            )
    out["recording_notice"] = notice
    out["consent_key"] = dtmf_key(t, "consent_key", d.consent_key)
    every = t.seconds("announce_every", d.announce_every, 0, 3600)
    if 0 < every < 10:
        t.error("announce_every", f"must be 0 (off) or at least 10 seconds, got {num(every)}")
        every = d.announce_every
    out["announce_every"] = every
    out["exit_key"] = dtmf_key(t, "exit_key", None)
    exit_target = t.string("exit_target", None, max_len=128)
    if exit_target is not None:
        act = parse_action(exit_target)
        if isinstance(act, str):
            t.error("exit_target", act)
            exit_target = None
        elif act.kind == "callback":
            t.error("exit_target", "a callback is offered with callback_key, not as exit_target")
            exit_target = None
        else:
            exit_target = str(act)
    if t.has("exit_key") and not t.has("exit_target"):
        t.error("exit_target", "is required with exit_key: where the caller goes on pressing it")
    if t.has("exit_target") and not t.has("exit_key"):
        t.error("exit_key", "is required with exit_target: the key that leaves the queue")
    out["exit_target"] = exit_target
    out["callback_key"] = dtmf_key(t, "callback_key", None)
    if out["exit_key"] is not None and out["exit_key"] == out["callback_key"]:
        t.error("callback_key", "must differ from exit_key")
    out["callback_retries"] = t.integer("callback_retries", d.callback_retries, 0, 20)
    out["callback_retry_delay"] = t.seconds("callback_retry_delay", d.callback_retry_delay, 0, DAY)
    return out


def check_queue_exits(
    queues: Mapping[str, QueueConfig], menus: Mapping[str, Menu], errors: list[str]
) -> None:
    """``exit_target`` names an existing queue (not the same one) or menu."""
    for name, q in queues.items():
        if q.exit_target is None:
            continue
        act = parse_action(q.exit_target)
        key = f"queues.{name}.exit_target"
        if isinstance(act, str):
            continue
        if act.kind == "queue" and act.target == name:
            errors.append(f"{key}: leads back to this queue")
        elif act.kind == "queue" and act.target not in queues:
            errors.append(f"{key}: no queue named {show(act.target)}")
        elif act.kind == "ivr" and act.target not in menus:
            errors.append(f"{key}: no menu named {show(act.target)}")
