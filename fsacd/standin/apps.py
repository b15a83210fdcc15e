"""Applications and ``sendmsg`` execution, after mod_dptools / switch_ivr / switch_core_session.

``execute_application`` is ``switch_core_session_execute_application``: CHANNEL_EXECUTE,
the application, CHANNEL_EXECUTE_COMPLETE with ``Application-Response``. ``parse_event`` is
``switch_ivr_parse_event`` (loops, ``event-lock``, ``event-uuid``, ``hangup``), and every
waiting application calls ``parse_all_events`` each "frame", so a command queued without
``event-lock`` runs nested at once while one queued behind an event-locked app waits.

``APPS`` is the application registry (``@app("name")``). Applications of the higher layers
register themselves when their module is imported: ``bridge`` (bridge.py) and ``socket``
(outbound.py); server.py imports both, so every FakeFreeSwitch has the full set.
"""

from __future__ import annotations

import re
import time
import uuid as uuidlib
from collections.abc import Callable

from .causes import SIP_TO_CAUSE, str2cause
from .channel import Channel, Command, now_us
from .eventheaders import Event, core_headers
from .fsstrings import atoi, expand_variables, is_true, separate_string
from .media import classify

AppFunc = Callable[[Channel, str | None], None]

APPS: dict[str, AppFunc] = {}

#: Real mod_dptools applications the stand-in runs as no-ops (events only). An application
#: that is neither implemented nor listed here is "Invalid Application": FreeSWITCH then hangs
#: the channel up with DESTINATION_OUT_OF_ORDER and sends no CHANNEL_EXECUTE at all.
KNOWN_NOOP = frozenset(
    "info log event sched_hangup sched_transfer sched_broadcast sched_cancel set_global "
    "set_profile_var verbose_events presence displace_session stop_displace_session "
    "three_way intercept limit hash db group system bgsystem set_user "
    "bind_meta_app unbind_meta_app tone_detect stop_tone_detect fax_detect start_dtmf "
    "stop_dtmf start_dtmf_generate stop_dtmf_generate queue_dtmf flush_dtmf wait_for_silence "
    "detect_speech deflect redirect jitterbuffer media_reset mkdir rename soft_hold strftime "
    "check_acl set_audio_level set_mute wait_for_answer phrase clear_speech_cache "
    "bind_digit_action clear_digit_action digit_action_set_realm capture session_loglevel "
    "enable_heartbeat enable_keepalive remove_bugs sound_test echo delay_echo gentones "
    "set_zombie_exec push unshift filter_codecs video_refresh".split()
)

MAX_STACKS = 16

#: Applications without SAF_SUPPORT_NOMEDIA: switch_core_session_execute_application
#: pre-answers an inbound channel without media before it runs them (PROGRESS_MEDIA comes
#: before their CHANNEL_EXECUTE, ``pipelined-and-event-lock``).
NEEDS_MEDIA = frozenset(
    "playback endless_playback play_and_get_digits read say phrase speak gentones echo "
    "delay_echo record record_session tone_detect eavesdrop three_way".split()
)


def app(name: str) -> Callable[[AppFunc], AppFunc]:
    def register(func: AppFunc) -> AppFunc:
        APPS[name] = func
        return func

    return register


# --- execution -------------------------------------------------------------------------------


def execute_application(ch: Channel, name: str, arg: str | None) -> bool:
    """Run one application; False when it does not exist (the channel is then hung up)."""
    func = APPS.get(name)
    if func is None and name not in KNOWN_NOOP:
        ch.note("invalid_application", name)
        ch.hangup("DESTINATION_OUT_OF_ORDER")
        return False
    if name in NEEDS_MEDIA and ch.direction == "inbound" and not (ch.answered or ch.early):
        ch.pre_answer()
    exec_app(ch, name, arg, func)
    return True


def exec_app(ch: Channel, name: str, arg: str | None, func: AppFunc | None) -> None:
    """switch_core_session_exec: the variables and events around one application."""
    app_uuid = ch.get_var("app_uuid")
    if app_uuid:
        ch.set_var("app_uuid", None)
    else:
        app_uuid = str(uuidlib.uuid4())
    app_uuid_name = ch.get_var("app_uuid_name")
    if app_uuid_name:
        ch.set_var("app_uuid_name", None)
    expanded = arg
    if arg is not None and not is_true(ch.get_var("app_disable_expand_variables")):
        expanded = expand_variables(arg, ch.get_var)
    ch.app_log.append((name, expanded))
    ch.set_var("current_application", name)
    ch.set_var("current_application_data", expanded)
    ch.set_var("current_application_response", None)
    ids = [("Application-UUID", app_uuid), ("Application-UUID-Name", app_uuid_name or "")]
    ch.fire(
        "CHANNEL_EXECUTE",
        after=[("Application", name), ("Application-Data", expanded or ""), *ids],
    )
    ch.flags.discard("BREAK")
    ch.set_var("current_application", name)
    if ch.direction == "outbound":
        ch.flags.add("DIALPLAN")
    if ch.call is not None:
        ch.call.apps.append((name, expanded))
    ch.note("execute", f"{name} {expanded or ''}".rstrip())
    if func is not None:
        func(ch, expanded)
    resp = ch.get_var("current_application_response") or "_none_"
    ch.fire(
        "CHANNEL_EXECUTE_COMPLETE",
        after=[
            ("Application", name),
            ("Application-Data", expanded or ""),
            ("Application-Response", resp),
            *ids,
        ],
    )


def parse_event(ch: Channel, cmd: Command) -> str:
    """switch_ivr_parse_event: run a ``sendmsg``. Returns success / break / false."""
    call_command = cmd.get("call-command")
    if not call_command:
        return "false"
    el = is_true(cmd.get("event-lock"))
    if el:
        ch.flags.add("EVENT_LOCK")
    try:
        if call_command == "execute":
            _execute_command(ch, cmd)
        elif call_command == "hangup":
            cause = cmd.get("hangup-cause")
            ch.hangup(str2cause(cause) if cause else "NORMAL_CLEARING")
    finally:
        if el:
            ch.flags.discard("EVENT_LOCK")
    return "break" if "BREAK" in ch.flags else "success"


def _execute_command(ch: Channel, cmd: Command) -> None:
    app_name = cmd.get("execute-app-name")
    event_uuid = cmd.get("event-uuid")
    event_uuid_name = cmd.get("event-uuid-name")
    app_arg = cmd.get("execute-app-arg")
    content_type = cmd.get("content-type")
    if not app_arg and content_type and content_type.lower() == "text/plain":
        app_arg = cmd.body
    loops_h = cmd.get("loops")
    loops = atoi(loops_h, 1) if loops_h is not None else 1
    if not app_name:
        return
    ch.flags.discard("STOP_BROADCAST")
    inner = 0 if "BRIDGED" in ch.flags else 1
    if "BROADCAST" not in ch.flags:
        ch.flags.add("BROADCAST")
        if inner:
            inner -= 1
    x = 0
    while x < loops or loops < 0:
        before = time.time()
        if event_uuid:
            ch.set_var("app_uuid", event_uuid)
        if event_uuid_name:
            ch.set_var("app_uuid_name", event_uuid_name)
        ch.set_var("current_loop", str(x + 1))
        ch.set_var("total_loops", str(loops))
        if not execute_application(ch, app_name, app_arg):
            if not inner or "STOP_BROADCAST" in ch.flags:
                ch.flags.discard("BROADCAST")
            break
        if not ch.ready() or "STOP_BROADCAST" in ch.flags or time.time() - before < 0.5:
            break
        x += 1
    ch.set_var("current_loop", None)
    ch.set_var("total_loops", None)
    if not inner:
        ch.flags.discard("BROADCAST")
    if "STOP_BROADCAST" in ch.flags:
        ch.flags.discard("BROADCAST")
        ch.flags.add("BREAK")


def parse_next_event(ch: Channel) -> str | None:
    """Run the next queued ``sendmsg`` (None when nothing may run now)."""
    cmd = ch.dequeue_private()
    if cmd is None:
        return None
    status = parse_event(ch, cmd)
    headers = [*cmd.headers, *core_headers(ch.fs, "PRIVATE_COMMAND"), *ch.basic_data()]
    ch.fs.bus.dispatch(Event("PRIVATE_COMMAND", headers, cmd.body))
    return status


def parse_all_events(ch: Channel) -> int:
    """switch_ivr_parse_all_events: run queued commands now (nested in the current app)."""
    if ch.stack_depth > MAX_STACKS:
        return 0
    ch.stack_depth += 1
    n = 0
    try:
        while True:
            status = parse_next_event(ch)
            if status is None:
                break
            n += 1
            if status != "success":
                break
    finally:
        ch.stack_depth -= 1
    return n


# --- waiting ---------------------------------------------------------------------------------


def media_wait(
    ch: Channel,
    duration: float | None,
    *,
    on_dtmf: Callable[[str], bool] | None = None,
    dtmf_breaks: bool = False,
    events: bool = True,
) -> str:
    """Wait like a media loop: ``done`` / ``break`` (CF_BREAK) / ``hangup`` / ``dtmf``.

    Each round runs queued commands (``parse_all_events``); ``on_dtmf`` reads digits (True
    ends the wait); ``dtmf_breaks`` ends the wait on a digit without reading it (sleep).
    """
    end = None if duration is None else time.time() + duration
    while True:
        ch.sig.clear()
        if not ch.alive():
            return "hangup"
        if "BREAK" in ch.flags:
            ch.flags.discard("BREAK")
            return "break"
        if end is not None and time.time() >= end:
            return "done"
        if events and parse_all_events(ch):
            # an app ran nested in this one (sent without event-lock): when the channel hung
            # up meanwhile, the outer one still ends as played (``timing-queue-flush``:
            # hangup, bridge, then playback ``FILE PLAYED``)
            if not ch.ready():
                return "done"
            continue
        if ch.has_dtmf():
            if dtmf_breaks:
                return "dtmf"
            if on_dtmf is not None:
                digit = ch.dequeue_dtmf()
                if digit is not None and on_dtmf(digit):
                    return "dtmf"
                continue
        ch.wait_frame(None if end is None else max(end - time.time(), 0.0))


def park(ch: Channel, *, controlled: bool = True) -> None:
    """switch_ivr_park: CHANNEL_PARK, run commands until unparked, CHANNEL_UNPARK."""
    if controlled:
        ch.flags.add("CONTROLLED")
    ch.flags.add("PARK")
    ch.fire("CHANNEL_PARK")
    ch.next_tick()  # the park loop reads a frame before it looks at the queue
    while True:
        ch.sig.clear()
        if not ch.alive() or "PARK" not in ch.flags:
            break
        if controlled and "CONTROLLED" not in ch.flags:
            break
        if not controlled and "BREAK" in ch.flags:
            ch.flags.discard("BREAK")
            break
        if parse_all_events(ch):
            continue
        if ch.has_dtmf():
            ch.dequeue_dtmf()
            continue
        ch.wait_frame()
    ch.flags.discard("PARK")
    ch.fire("CHANNEL_UNPARK")


# --- media -----------------------------------------------------------------------------------


def play_file(ch: Channel, target: str | None, on_dtmf: Callable[[str], bool] | None) -> str:
    """switch_ivr_play_file: ``done``/``break``/``dtmf``/``hangup``/``notfound``."""
    fs = ch.fs
    if not target:
        return "false"
    media = classify(target, fs.media_durations, fs.default_file_duration)
    if ch.direction == "inbound" and not ch.answered:
        ch.pre_answer()
    if not media.exists:
        return "notfound"
    ch.hear(media.kind)
    start = time.time()
    duration = media.duration
    limit = _playback_timeout(ch)  # switch_ivr_play_file: playback_timeout_sec (> 1)
    timed_out = limit is not None and (duration is None or duration > limit)
    if timed_out:
        duration = limit
    status = media_wait(ch, duration, on_dtmf=on_dtmf)
    played = time.time() - start
    if status == "done" and duration is not None:
        played = duration
    if status == "done" and timed_out and not _true(ch.get_var("playback_timeout_as_success")):
        status = "timeout"  # SWITCH_STATUS_TIMEOUT: the playback app says PLAYBACK ERROR
    ms = int(played * 1000)
    samples = ms * 8
    ch.set_var(
        "playback_last_offset_pos", str(samples - samples % 800 if samples >= 800 else samples)
    )
    ch.set_var("playback_seconds", str(ms // 1000))
    ch.set_var("playback_ms", str(ms))
    ch.set_var("playback_samples", str(samples))
    if ch.up():
        ch.hear("silence")
    return status


def _playback_timeout(ch: Channel) -> float | None:
    for name in ("playback_timeout_sec_cumulative", "playback_timeout_sec"):
        raw = ch.get_var(name)
        if raw is not None:
            try:
                value = int(raw.strip() or "0")
            except ValueError:
                value = 0
            return float(value) if value > 1 else None
    return None


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1", "enabled", "active")


def _terminator_dtmf(ch: Channel) -> Callable[[str], bool]:
    """mod_dptools on_dtmf: a digit in ``playback_terminators`` (default ``*``) stops it."""

    def on_dtmf(digit: str) -> bool:
        terms = ch.get_var("playback_terminators")
        if terms is None:
            terms = "*"
        if terms.lower() == "any":
            terms = "1234567890*#"
        if terms.lower() == "none":
            terms = ""
        if digit in terms:
            ch.set_var("playback_terminator_used", digit)
            return True
        return False

    return on_dtmf


@app("playback")
def app_playback(ch: Channel, arg: str | None) -> None:
    target = arg.split("@@")[0] if arg else arg
    ch.set_var("playback_terminator_used", "")
    status = play_file(ch, target, _terminator_dtmf(ch))
    if status in ("done", "break", "dtmf"):
        resp = "FILE PLAYED"
    elif status == "notfound":
        resp = "FILE NOT FOUND"
    else:
        resp = "PLAYBACK ERROR"
    ch.set_var("current_application_response", resp)


@app("endless_playback")
def app_endless_playback(ch: Channel, arg: str | None) -> None:
    status = "done"
    while ch.ready():
        status = play_file(ch, arg, None)
        if status not in ("done", "break"):
            break
    resp = "FILE PLAYED" if status in ("done", "break") else "PLAYBACK ERROR"
    ch.set_var("current_application_response", resp)


@app("sleep")
def app_sleep(ch: Channel, arg: str | None) -> None:
    if not arg:
        return
    ms = atoi(arg)
    if is_true(ch.get_var("sleep_eat_digits")):
        ch.set_var("playback_terminator_used", "")
        media_wait(ch, ms / 1000.0, on_dtmf=_terminator_dtmf(ch))
    else:
        media_wait(ch, ms / 1000.0, dtmf_breaks=True)


@app("say")
def app_say(ch: Channel, arg: str | None) -> None:
    parts = separate_string(arg, " ", 5)
    if len(parts) not in (4, 5):
        return
    module = parts[0].split(":")[0]
    if f"mod_say_{module}" not in ch.fs.modules:
        ch.note("log_error", f"Invalid SAY Interface [{module}]!")
        return  # switch_ivr_say: no say module, nothing is played
    if parts[2] == "iterated":
        # mod_say_en: each digit is digits/N.wav (switch_ivr_play_file: missing files are
        # skipped silently, playback_samples only set by one that played)
        for digit in (c for c in parts[-1] if c.isdigit()):
            if play_file(ch, f"digits/{digit}.wav", _terminator_dtmf(ch)) in ("hangup", "dtmf"):
                return
        return
    ch.hear("file")
    media_wait(ch, 0.1 + 0.05 * len(parts[-1]), on_dtmf=_terminator_dtmf(ch))
    if ch.up():
        ch.hear("silence")


@app("speak")
def app_speak(ch: Channel, arg: str | None) -> None:
    """``speak engine|voice|text``: nothing without the engine's module (mod_flite, ...);
    else the text is "spoken" for 10 ms a character."""
    parts = (arg or "").split("|", 2)
    if len(parts) < 3:
        engine, text = ch.get_var("tts_engine") or "", parts[-1]
    else:
        engine, text = parts[0], parts[2]
    if not engine or f"mod_{engine}" not in ch.fs.modules:
        ch.note("log_error", f"Invalid TTS module {engine}!")
        return
    ch.hear("speech")
    media_wait(ch, 0.01 * len(text), on_dtmf=_terminator_dtmf(ch))
    if ch.up():
        ch.hear("silence")


# --- digits ----------------------------------------------------------------------------------


def collect_digits(
    ch: Channel, buf: list[str], maxdigits: int, terminators: str, first_ms: int, digit_ms: int
) -> tuple[str, str]:
    """switch_ivr_collect_digits_count → (status, terminator)."""
    if len(buf) >= maxdigits:
        return "false", ""
    for i, d in enumerate(buf):
        if terminators and d in terminators:
            del buf[i:]
            return "success", d
    eff = first_ms if first_ms else digit_ms
    started = time.time()
    while True:
        ch.sig.clear()
        if not ch.alive():
            return "false", ""
        if parse_all_events(ch):
            continue
        if eff and (time.time() - started) * 1000 >= eff:
            return "timeout", ""
        if ch.has_dtmf():
            if eff:
                eff = digit_ms or first_ms
                started = time.time()
            while ch.has_dtmf():
                d = ch.dequeue_dtmf() or ""
                if terminators and d in terminators:
                    return "success", d
                buf.append(d)
                if len(buf) >= maxdigits:
                    return "success", ""
            continue
        wait = None if not eff else max(eff / 1000 - (time.time() - started), 0.0)
        ch.wait_frame(wait)


def ivr_read(
    ch: Channel,
    min_digits: int,
    max_digits: int,
    prompt: str | None,
    var_name: str | None,
    timeout: int,
    terminators: str,
    digit_timeout: int,
) -> tuple[str, str]:
    """switch_ivr_read → (status, digits). Digits typed during the prompt count."""
    term_required = terminators.startswith("=")
    if not digit_timeout:
        digit_timeout = timeout
    max_digits = max(max_digits, min_digits)
    ch.set_var("read_result", None)
    if var_name:
        ch.set_var(var_name, None)
    if ch.direction == "inbound" and not ch.answered:
        ch.pre_answer()
    buf: list[str] = []

    def first_digit(d: str) -> bool:
        buf.append(d)
        return True

    status = "success"
    tb = ""
    if prompt and prompt.lower() != "silence":
        st = play_file(ch, prompt, first_digit)
        status = "success" if st in ("done", "break", "dtmf") else "false"
    if status == "success":
        if (min_digits and len(buf) < min_digits) or len(buf) < max_digits:
            status, tb = collect_digits(
                ch, buf, max_digits, terminators, digit_timeout if buf else timeout, digit_timeout
            )
        if tb:
            ch.set_var("read_terminator_used", tb)
            p = terminators.find(tb)
            if p >= 1 and terminators[p - 1] in "+x":
                buf.append(tb)
                if terminators[p - 1] == "x":
                    status = "restart"
        elif term_required:
            status = "too_small"
        if min_digits and len(buf) < min_digits:
            status = "too_small"
        result = {"success": "success", "timeout": "timeout"}.get(status, "failure")
        ch.set_var("read_result", result)
    digits = "".join(buf)
    if status != "restart" and max_digits == 1 and len(digits) == 1 and digits in terminators:
        digits = ""
    if var_name and digits:
        ch.set_var(var_name, digits)
    return status, digits


def play_and_get_digits(
    ch: Channel,
    min_digits: int,
    max_digits: int,
    max_tries: int,
    timeout: int,
    terminators: str,
    prompt: str | None,
    bad_input: str | None,
    var_name: str | None,
    regex: str | None,
    digit_timeout: int,
    transfer_on_failure: str | None,
) -> bool:
    """switch_play_and_get_digits: True when valid digits were read."""
    if regex and var_name:
        ch.set_var(f"{var_name}_invalid", None)
    while ch.ready() and max_tries:
        status, digits = ivr_read(
            ch, min_digits, max_digits, prompt, var_name, timeout, terminators, digit_timeout
        )
        if status == "restart":
            return False
        if status == "timeout" and len(digits) >= min_digits:
            status = "success"
        if min_digits == 0 and not digits and ch.get_var("read_terminator_used"):
            return True
        if not (status == "too_small" and not digits) and status == "success" and digits:
            if not regex:
                return True
            try:
                matched = re.search(regex, digits) is not None
            except re.error:
                matched = False
            if matched:
                return True
            if var_name:
                ch.set_var(var_name, None)
                ch.set_var(f"{var_name}_invalid", digits)
        if not ch.ready():
            break
        play_file(ch, bad_input, None)
        max_tries -= 1
    if transfer_on_failure:
        parts = separate_string(transfer_on_failure, " ", 3)
        if parts:
            transfer(ch, parts[0], parts[1] if len(parts) > 1 else None)
    return False


@app("play_and_get_digits")
def app_play_and_get_digits(ch: Channel, arg: str | None) -> None:
    argv = separate_string(arg, " ", 11)
    if not argv:
        return
    min_digits = max(atoi(argv[0]), 0)
    max_digits = atoi(argv[1]) if len(argv) > 1 else 0
    max_tries = atoi(argv[2]) if len(argv) > 2 else 0
    timeout = atoi(argv[3]) if len(argv) > 3 else 1000
    terminators = argv[4] if len(argv) > 4 else ""
    prompt = argv[5] if len(argv) > 5 else None
    bad_input = argv[6] if len(argv) > 6 else None
    var_name = argv[7] if len(argv) > 7 else None
    regex = argv[8] if len(argv) > 8 else None
    digit_timeout = max(atoi(argv[9]), 0) if len(argv) > 9 else 0
    tof = argv[10] if len(argv) > 10 else None
    max_digits = max(max_digits, min_digits)
    timeout = max(timeout, 1000)
    play_and_get_digits(
        ch, min_digits, max_digits, max_tries, timeout, terminators or "#", prompt, bad_input,
        var_name, regex, digit_timeout, tof,
    )  # fmt: skip


@app("read")
def app_read(ch: Channel, arg: str | None) -> None:
    argv = separate_string(arg, " ", 7)
    if not argv:
        return
    min_digits = max(atoi(argv[0]), 0)
    max_digits = max(atoi(argv[1]) if len(argv) > 1 else 0, min_digits, 1)
    prompt = argv[2] if len(argv) > 2 else None
    var_name = argv[3] if len(argv) > 3 else None
    timeout = max(atoi(argv[4]) if len(argv) > 4 else 1000, 1000)
    terminators = argv[5] if len(argv) > 5 and argv[5] else "#"
    digit_timeout = atoi(argv[6]) if len(argv) > 6 else 0
    ivr_read(ch, min_digits, max_digits, prompt, var_name, timeout, terminators, digit_timeout)


# --- call control ----------------------------------------------------------------------------


@app("answer")
def app_answer(ch: Channel, arg: str | None) -> None:
    ch.answer()


@app("pre_answer")
def app_pre_answer(ch: Channel, arg: str | None) -> None:
    ch.pre_answer()


@app("ring_ready")
def app_ring_ready(ch: Channel, arg: str | None) -> None:
    ch.mark_ring_ready()
    if ch.role == "caller" and not ch.answered:
        ch.hear("ringback")


@app("hangup")
def app_hangup(ch: Channel, arg: str | None) -> None:
    ch.hangup(str2cause(arg) if arg else "NORMAL_CLEARING")


@app("respond")
def app_respond(ch: Channel, arg: str | None) -> None:
    code = atoi(arg)
    if code in (180, 183) and not ch.answered:
        if code == 180:
            ch.mark_ring_ready()
        else:
            ch.pre_answer()
    elif 200 <= code < 300:
        ch.answer()
    elif code >= 300:
        ch.hangup(SIP_TO_CAUSE.get(code, "NORMAL_TEMPORARY_FAILURE"))


@app("park")
def app_park(ch: Channel, arg: str | None) -> None:
    park(ch, controlled=False)


@app("privacy")
def app_privacy(ch: Channel, arg: str | None) -> None:
    if not arg:
        return
    p = ch.profile
    p.screen = True
    mode = arg.lower()
    if mode == "full":
        p.hide_name = p.hide_number = True
    elif mode == "name":
        p.hide_name = True
    elif mode == "number":
        p.hide_number = True
    elif is_true(arg):
        p.hide_name = p.hide_number = True
    elif mode in ("no", "off", "false", "f", "disabled", "inactive", "disallow", "0"):
        p.hide_name = p.hide_number = False


@app("record_session")
def app_record_session(ch: Channel, arg: str | None) -> None:
    if arg:
        ch.start_recording(separate_string(arg, " ", 2)[0])
    ch.next_tick()  # the media bug starts on the next frame: its completion comes a tick later


@app("stop_record_session")
def app_stop_record_session(ch: Channel, arg: str | None) -> None:
    if not arg:
        return
    if arg == "all":
        for path in list(ch.recordings):
            ch.stop_recording(path)
    else:
        ch.stop_recording(arg)


@app("send_dtmf")
def app_send_dtmf(ch: Channel, arg: str | None) -> None:
    if arg:
        ch.note("dtmf_out", arg.split("@")[0])


@app("transfer")
def app_transfer(ch: Channel, arg: str | None) -> None:
    parts = separate_string(arg, " ", 3)
    if parts:
        transfer(ch, parts[0], parts[1] if len(parts) > 1 else None)


def inline_apps(text: str) -> list[tuple[str, str | None]]:
    """mod_dptools' ``inline`` dialplan: ``app:arg,app:arg`` (no ``${}`` expansion here)."""
    out: list[tuple[str, str | None]] = []
    for item in text.split(","):
        name, _, arg = item.partition(":")
        if name.strip():
            out.append((name.strip(), arg or None))
    return out


def transfer(ch: Channel, exten: str, dialplan: str | None = None) -> None:
    """switch_ivr_session_transfer (minimal): leave the current app/socket, route ``exten``."""
    ch.flags.add("TRANSFER")
    ch.profile.times.transferred = now_us()
    ch.profile.destination_number = exten
    ch.pending_extension = exten
    ch.pending_dialplan = dialplan
    ch.note("transfer", exten)
    ch.kick()


# --- variables -------------------------------------------------------------------------------


def _split_assignment(data: str) -> tuple[str, str | None]:
    name, sep, value = data.partition("=")
    return name.strip(), (value if sep else None)


@app("set")
def app_set(ch: Channel, arg: str | None) -> None:
    if not arg:
        return
    name, value = _split_assignment(arg)
    if name:
        ch.set_var(name, value)


@app("unset")
def app_unset(ch: Channel, arg: str | None) -> None:
    if arg:
        ch.set_var(arg.strip(), None)


@app("export")
def app_export(ch: Channel, arg: str | None) -> None:
    if not arg:
        return
    name, value = _split_assignment(arg)
    local = not name.startswith("nolocal:")
    name = name.removeprefix("nolocal:")
    if local:
        ch.set_var(name, value)
    exported = [n for n in (ch.get_var("export_vars") or "").split(",") if n]
    if name not in exported:
        exported.append(name)
    ch.set_var("export_vars", ",".join(exported))
    ch.exported[name] = value


@app("multiset")
def app_multiset(ch: Channel, arg: str | None) -> None:
    """``multiset a=1 b=2``, or with a delimiter of its own: ``multiset ^^|a=1|b=2``
    (``separate_string`` reads the ``^^`` prefix, as ``switch_separate_string`` does)."""
    for item in separate_string(arg, " "):
        name, value = _split_assignment(item)
        if name:
            ch.set_var(name, value)


# --- eavesdrop (mod_dptools eavesdrop_function, switch_ivr_eavesdrop_session) ----------------

#: The eavesdrop flags a stand-in channel reports, in ``ch.eavesdrop`` while it listens:
#: ``mux_read`` (the target's read stream gets the listener's voice: on a caller's uuid the
#: agent hears it), ``mux_write`` (mixed into what the target hears: the caller), ``dtmf``,
#: ``bridge_read``/``bridge_write`` (which streams the listener hears).
EAVESDROP_MODES = {"1": (True, False), "2": (False, True), "3": (True, True), "0": (False, False)}


@app("eavesdrop")
def app_eavesdrop(ch: Channel, arg: str | None) -> None:
    """``eavesdrop <uuid>``: listen to another channel until it or this one hangs up, or
    ``*``; with ``eavesdrop_enable_dtmf`` (default on) 1/2/3/0 switch who hears the listener.
    ``eavesdrop all`` is not modelled (it ends at once, noted as such)."""
    if not arg:
        ch.note("log_error", "Usage: [all | <uuid>]")
        return
    if arg.strip().lower() == "all":
        ch.note("eavesdrop_unsupported", "all")
        return
    enable = ch.get_var("eavesdrop_enable_dtmf")
    flags: dict = {
        "dtmf": is_true(enable) if enable is not None else True,
        "mux_read": is_true(ch.get_var("eavesdrop_whisper_aleg")),
        "mux_write": is_true(ch.get_var("eavesdrop_whisper_bleg")),
        "bridge_read": is_true(ch.get_var("eavesdrop_bridge_aleg")),
        "bridge_write": is_true(ch.get_var("eavesdrop_bridge_bleg")),
    }
    if not (flags["bridge_read"] or flags["bridge_write"]):
        flags["bridge_read"] = flags["bridge_write"] = True  # "defaults to both"
    target = ch.fs.locate(arg)
    if target is None or not (ch.answered or ch.early):
        return
    if target is ch:
        ch.note("log_error", "Eavesdrop target invalid.")
        return
    if not (target.answered or target.early):
        return
    ch.pre_answer()
    flags["target"] = target.uuid
    ch.eavesdrop = flags
    target.note("eavesdropped", ch.uuid)
    ch.note("eavesdrop", f"{target.uuid} {_ed_mode(flags)}")

    def on_dtmf(digit: str) -> bool:
        if digit == "*":
            return True
        if digit in EAVESDROP_MODES:
            flags["mux_read"], flags["mux_write"] = EAVESDROP_MODES[digit]
            ch.note("eavesdrop_mode", _ed_mode(flags))
        return False

    try:
        while target.up() and ch.ready():
            status = media_wait(ch, 0.2, on_dtmf=on_dtmf if flags["dtmf"] else None)
            if status in ("dtmf", "hangup"):
                break
    finally:
        ch.eavesdrop = None


def _ed_mode(flags: dict[str, bool]) -> str:
    """``listen``, ``whisper-aleg`` (the target's read side hears), ``whisper-bleg`` or
    ``barge`` (both)."""
    r, w = flags["mux_read"], flags["mux_write"]
    return "barge" if r and w else "whisper-aleg" if r else "whisper-bleg" if w else "listen"
