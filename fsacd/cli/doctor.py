"""``fsacd doctor``: what an operator must get right on the FreeSWITCH side, checked over
the inbound event socket, printed as a checklist with what to fix (docs/cli.md).

Checks: the socket and its password; the modules fsacd relies on (and the ones the config's
prompts need: a TTS engine for ``say:`` prompts, a say module for announcements and
verification calls, ``mod_local_stream`` for ``local_stream://`` music); every hold-music
stream defined; every prompt file present on the switch (``file_exists``, as FreeSWITCH
resolves a relative path: under ``sound_prefix``, also in its rate folders); the
recordings directory; a dialplan extension handing calls to ``socket`` at ``server.listen``.
Exit code 1 when a check fails (warnings alone: 0).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import click

from fsacd.cli import switch
from fsacd.cli.common import App, echo_json, json_flag, pass_app
from fsacd.config.model import split_address

#: Modules every fsacd deployment needs.
REQUIRED_MODULES = {
    "mod_event_socket": "the event socket fsacd talks through",
    "mod_commands": "the API commands (uuid_kill, uuid_record, originate, ...)",
    "mod_dptools": "the applications (bridge, playback, play_and_get_digits, ...)",
    "mod_dialplan_xml": "the dialplan that hands calls to fsacd",
    "mod_sndfile": "playing .wav prompts and recording calls",
}
#: The rate folders FreeSWITCH's mod_sndfile looks in for a relative sound file.
RATES = ("8000", "16000", "32000", "48000")


@dataclass
class Check:
    name: str
    status: str  # ok | fail | warn | skip
    detail: str = ""
    fix: str = ""


# --- what the config names ------------------------------------------------------------------


def config_prompts(cfg: Any) -> list[tuple[str, str, str | None]]:
    """Every prompt part the config names: ``(where, part, sound_prefix)``."""
    out: list[tuple[str, str, str | None]] = []

    def add(where: str, parts: Iterable[str] | None, prefix: str | None = None) -> None:
        for p in parts or ():
            out.append((where, p, prefix))

    for name, q in cfg.queues.items():
        add(f"queues.{name}.moh", [q.moh])
        if q.callback_key:
            add(f"queues.{name}.callback_prompt", q.callback_prompt)
            add(f"queues.{name}.callback_invalid_prompt", q.callback_invalid_prompt)
            add(f"queues.{name}.callback_confirmed_prompt", q.callback_confirmed_prompt)
        if q.recording != "off":
            add(f"queues.{name}.recording_notice", q.recording_notice)
        if q.announce_every:
            from fsacd.core.announce import Sounds

            s = Sounds()
            add(f"queues.{name}.announce_every", [s.you_are_number, s.in_line, s.estimated_wait])
    # ``say LANG number ...`` (announcements, verification calls) plays the digit files
    digits = [f"digits/{d}.wav" for d in "0123456789"]
    if any(q.announce_every for q in cfg.queues.values()):
        add("announce_every (say number)", digits)
    if cfg.numbers.gateway and cfg.numbers.call_app == "say":
        add("numbers.call_app = say (verification calls)", digits)
    for name, m in cfg.ivr.items():
        for key in ("greeting", "prompt", "invalid_prompt", "no_input_prompt", "closed_prompt"):
            add(f"ivr.{name}.{key}", getattr(m, key), m.sound_prefix)
        if m.collect is not None:
            add(f"ivr.{name}.collect.prompt", m.collect.prompt, m.sound_prefix)
    return out


def _tts_engines(cfg: Any) -> dict[str, str]:
    """TTS engine → where the config needs it (``say:`` prompts, ``speak`` verification)."""
    engines: dict[str, str] = {}
    default = cfg.numbers.tts_voice.split("|", 1)[0]
    for name, m in cfg.ivr.items():
        parts = [
            p
            for key in ("greeting", "prompt", "invalid_prompt", "no_input_prompt", "closed_prompt")
            for p in getattr(m, key)
        ]
        if m.collect is not None:
            parts += list(m.collect.prompt)
        if any(p.startswith("say:") for p in parts):
            engine = (m.tts_voice or cfg.numbers.tts_voice).split("|", 1)[0]
            engines.setdefault(engine, f"say: prompts of ivr.{name}")
    if cfg.numbers.gateway and cfg.numbers.call_app == "speak":
        engines.setdefault(default, "numbers.call_app = speak (verification calls)")
    return engines


def _say_languages(cfg: Any) -> dict[str, str]:
    langs: dict[str, str] = {}
    for name, q in cfg.queues.items():
        if q.announce_every:
            langs.setdefault("en", f"queues.{name}.announce_every")
    if cfg.numbers.gateway and cfg.numbers.call_app == "say":
        langs.setdefault(cfg.numbers.say_language, "numbers.call_app = say (verification calls)")
    return langs


# --- the checks -----------------------------------------------------------------------------


class Doctor:
    """Runs the checks against a connected inbound client."""

    def __init__(self, cfg: Any, client: Any) -> None:
        self.cfg = cfg
        self.client = client
        self.checks: list[Check] = []

    def api(self, cmd: str) -> str:
        return switch.api(self.client, cmd)

    def add(self, name: str, ok: bool | None, detail: str = "", fix: str = "") -> None:
        status = "ok" if ok else "warn" if ok is None else "fail"
        self.checks.append(Check(name, status, detail, "" if ok else fix))

    def module(self, mod: str, why: str) -> bool:
        there = self.api(f"module_exists {mod}") == "true"
        self.add(
            f"module {mod}",
            there,
            why,
            f"load it: fs_cli -x 'load {mod}' and add it to modules.conf.xml",
        )
        return there

    def run(self) -> list[Check]:
        for mod, why in REQUIRED_MODULES.items():
            self.module(mod, why)
        prompts = config_prompts(self.cfg)
        streams = sorted(
            {
                p[len("local_stream://") :].split("/")[0] or "default"
                for _, p, _ in prompts
                if p.startswith("local_stream://")
            }
        )
        if streams:
            if self.module("mod_local_stream", "hold music (local_stream://)"):
                for name in streams:
                    self.stream(name)
        if any(p.startswith("tone_stream://") for _, p, _ in prompts):
            self.module("mod_tone_stream", "tone_stream:// prompts")
        for engine, why in _tts_engines(self.cfg).items():
            self.module(f"mod_{engine}", f"text to speech for {why}")
        for lang, why in _say_languages(self.cfg).items():
            self.module(f"mod_say_{lang}", f"saying numbers for {why}")
        self.prompt_files(prompts)
        self.recordings()
        self.dialplan()
        return self.checks

    def stream(self, name: str) -> None:
        reply = self.api(f"local_stream show {name}")
        ok = not reply.startswith("-") and bool(reply)
        location = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in reply.splitlines()
                if ln.strip().startswith("location:")
            ),
            "",
        )
        self.add(
            f"hold-music stream {name}",
            ok,
            f"local_stream://{name}" + (f" plays {location}" if location else ""),
            f'define <directory name="{name}" path="..."> in local_stream.conf.xml, '
            "then fs_cli -x 'reload mod_local_stream'",
        )

    def _sound_prefix(self) -> str:
        for var in ("sound_prefix", "sounds_dir"):
            v = self.api(f"global_getvar {var}")
            if v.startswith("/"):
                return v.rstrip("/")
        return ""

    def prompt_files(self, prompts: list[tuple[str, str, str | None]]) -> None:
        base = self._sound_prefix()
        files: dict[str, list[str]] = {}
        for where, part, prefix in prompts:
            for p in (
                part[len("file_string://") :].split("!")
                if part.startswith("file_string://")
                else [part]
            ):
                if not p or "://" in p or p.startswith("say:"):
                    continue
                path = p if p.startswith("/") else f"{(prefix or base).rstrip('/')}/{p}"
                files.setdefault(path, []).append(where)
        missing: list[tuple[str, list[str]]] = []
        for path, wheres in files.items():
            head, _, tail = path.rpartition("/")
            candidates = [path, *(f"{head}/{r}/{tail}" for r in RATES)]
            if not any(self.api(f"file_exists {c}") == "true" for c in candidates):
                missing.append((path, wheres))
        if not files:
            self.add("prompt files", True, "the config names no sound files")
            return
        for path, wheres in missing:
            self.add(
                f"prompt file {path}",
                False,
                f"named by {', '.join(sorted(set(wheres)))}",
                "install the sound files (e.g. the freeswitch-sounds-en-us-callie package)"
                " or fix the path; relative paths are under the switch's sound_prefix",
            )
        if not missing:
            self.add("prompt files", True, f"all {len(files)} present on the switch")

    def recordings(self) -> None:
        templates = {q.recording_path for q in self.cfg.queues.values() if q.recording != "off"}
        if not templates:
            self.add("recordings directory", True, "no queue records calls")
            return
        rec_dir = self.api("global_getvar recordings_dir")
        for template in sorted(templates):
            fixed = template.split("{", 1)[0]
            directory = fixed.rsplit("/", 1)[0] if fixed.startswith("/") else rec_dir
            if not directory.startswith("/"):
                self.add(
                    "recordings directory",
                    False,
                    "the switch does not say its recordings_dir",
                    "set recordings_dir in vars.xml or give an absolute recording_path",
                )
                continue
            if self.api(f"file_exists {directory}") != "true":
                self.add(
                    f"recordings directory {directory}",
                    False,
                    "does not exist on the switch",
                    "create it, writable by the user FreeSWITCH runs as",
                )
                continue
            self.add(f"recordings directory {directory}", *self._writable(directory))

    def _probe_recording(self, directory: str) -> bool | None:
        """Ask FreeSWITCH itself: a ``null/`` channel runs ``record_session`` into
        ``directory``; RECORD_START comes only if the file could be opened. The file is
        shorter than ``RECORD_MIN_SEC`` and FreeSWITCH deletes it. None: cannot be asked."""
        import time
        import uuid as uuidlib

        from fsacd.esl.session import ESLError

        leg = str(uuidlib.uuid4())
        try:
            self.client.subscribe(["RECORD_START", "CHANNEL_HANGUP_COMPLETE"])
            reply = self.api(
                f"originate {{origination_uuid={leg},RECORD_MIN_SEC=3}}null/fsacd-doctor "
                f"&record_session({directory}/fsacd-doctor-{leg}.wav)"
            )
            if not reply.startswith("+OK"):
                return None
            end = time.time() + 5.0
            while time.time() < end:
                ev = self.client.next_event(max(0.05, end - time.time()))
                if ev is None or ev.get("Unique-ID") != leg:
                    continue
                if ev.name == "RECORD_START":
                    self.api(f"uuid_kill {leg}")
                    return True
                if ev.name == "CHANNEL_HANGUP_COMPLETE":
                    return False
        except ESLError:
            return None
        self.api(f"uuid_kill {leg}")
        return None

    def _writable(self, directory: str) -> tuple[bool | None, str, str]:
        probed = self._probe_recording(directory)
        if probed is True:
            return True, "FreeSWITCH can record there (a test recording started)", ""
        if probed is False:
            return False, "FreeSWITCH cannot open a recording there", (
                "make it writable by the user FreeSWITCH runs as"
            )
        host = self.cfg.freeswitch.inbound_address[0]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if local and os.path.isdir(directory):
            if os.access(directory, os.W_OK):
                return True, "exists and is writable (checked on this machine)", ""
            return (
                False,
                "exists but this machine's user cannot write to it",
                ("make it writable by the user FreeSWITCH runs as"),
            )
        return (
            None,
            "exists on the switch; whether FreeSWITCH may write there cannot be asked",
            ("check its owner is the user FreeSWITCH runs as"),
        )

    def dialplan(self) -> None:
        host, port = split_address(self.cfg.server.listen)
        xml = self.api("xml_locate dialplan")
        try:
            root = ET.fromstring(xml)
        except ET.ParseError:
            self.add(
                "dialplan socket extension",
                None,
                "xml_locate dialplan gave no XML",
                "check the dialplan by hand: an extension with "
                f'<action application="socket" data="{host}:{port} async full"/>',
            )
            return
        datas = [a.get("data", "") for a in root.iter("action") if a.get("application") == "socket"]
        want = {f"{host}:{port}"} | ({f"127.0.0.1:{port}"} if host in ("0.0.0.0", "::") else set())
        exact = [d for d in datas if d.split()[:1] and d.split()[0] in want]
        full = [d for d in exact if "async" in d.split() and "full" in d.split()]
        fix = f'add <action application="socket" data="{host}:{port} async full"/> to the extension of the numbers fsacd serves, then fs_cli -x reloadxml'  # noqa: E501
        if full:
            self.add("dialplan socket extension", True, f"socket {full[0]}")
        elif exact:
            self.add(
                "dialplan socket extension",
                False,
                f"socket {exact[0]}: fsacd needs async full",
                fix,
            )
        elif datas:
            self.add(
                "dialplan socket extension",
                None,
                f"socket {', '.join(datas[:3])}: none names server.listen {host}:{port}"
                " literally (a variable may)",
                fix,
            )
        else:
            self.add("dialplan socket extension", False, "no extension runs socket", fix)


_MARK = {"ok": "[ok]  ", "fail": "[FAIL]", "warn": "[warn]", "skip": "[skip]"}


@click.command("doctor")
@json_flag
@pass_app
def doctor_cmd(app: App, as_json: bool) -> None:
    """Check the FreeSWITCH side: socket, modules, music, prompts, recordings, dialplan."""
    import click as _click

    cfg = app.cfg
    host, port = cfg.freeswitch.inbound_address
    checks: list[Check]
    try:
        client = switch.connect(app)
    except _click.ClickException as exc:
        checks = [
            Check(
                f"event socket {host}:{port}",
                "fail",
                exc.message,
                "start FreeSWITCH, check [freeswitch] inbound and the password",
            )
        ]
        checks.append(Check("everything else", "skip", "needs the event socket"))
    else:
        try:
            first = Check(f"event socket {host}:{port}", "ok", "reachable, password accepted")
            checks = [first, *Doctor(cfg, client).run()]
        finally:
            client.close()
    failed = sum(1 for c in checks if c.status == "fail")
    if as_json:
        echo_json({"ok": failed == 0, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            line = f"{_MARK[c.status]} {c.name}" + (f": {c.detail}" if c.detail else "")
            click.echo(line)
            if c.fix:
                click.echo(f"       fix: {c.fix}")
        warned = sum(1 for c in checks if c.status == "warn")
        click.echo(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    if failed:
        sys.exit(1)


def register(main: click.Group) -> None:
    main.add_command(doctor_cmd)
