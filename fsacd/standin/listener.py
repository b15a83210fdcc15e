"""One event-socket connection, inbound (port 8021 style) or outbound (the ``socket`` app).

This follows mod_event_socket's ``listener_run`` / ``read_packet`` / ``parse_command``: one
greenlet per connection handles a command completely (an ``api`` blocks the connection, so
events queue up meanwhile), and only when no command is pending does it write queued events,
then check whether the controlled channel went down (disconnect notice, linger).
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections import deque
from typing import Protocol
from xml.sax.saxutils import escape

import gevent
import gevent.event
from gevent import socket as gsocket

from fsacd.esl.framing import encode_frame, url_encode

from .apps import parse_event
from .bus import NO_EVENTS, filters_pass, one_channel_filter
from .channel import Channel, Command, Switch
from .eventheaders import EVENT_NAMES, Event, event_type, make_event
from .fsstrings import atoi, is_true


class ApiRunner(Protocol):
    """Runs ``api``/``bgapi`` commands (api.Api)."""

    def run(self, name: str, arg: str | None, listener: Listener | None = None) -> str: ...


class SocketSwitch(Switch, Protocol):
    """The switch (a FakeFreeSwitch) as event-socket connections see it."""

    password: str
    listeners: list[Listener]
    api: ApiRunner


GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

#: Events ``myevents`` subscribes to (mod_event_socket).
MYEVENTS = frozenset(
    "CHANNEL_ANSWER CHANNEL_APPLICATION CHANNEL_BRIDGE CHANNEL_CREATE CHANNEL_DATA "
    "CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP "
    "CHANNEL_HANGUP_COMPLETE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_OUTGOING CHANNEL_PARK "
    "CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_STATE CHANNEL_UNBRIDGE CHANNEL_UNPARK "
    "DETECTED_SPEECH DTMF NOTALK TALK".split()
)

LOG_LEVELS = {
    "console": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "notice": 5,
    "info": 6, "debug": 7,
}  # fmt: skip

Packet = tuple[str, list[tuple[str, str]], str | None]


def parse_packets(buf: bytes) -> tuple[list[Packet], bytes]:
    """Cut command packets like ``read_packet``: first line is the command, then headers.

    A packet ends at two newlines (CRs between them ignored); a ``content-length`` header
    makes the following bytes its body. Returns the packets and the unconsumed rest.
    """
    out: list[Packet] = []
    pos = 0
    n = len(buf)
    while True:
        while pos < n and buf[pos] in (10, 13):
            pos += 1
        crcount = 0
        end = -1
        for i in range(pos, n):
            c = buf[i]
            if c == 10:
                crcount += 1
                if crcount == 2:
                    end = i + 1
                    break
            elif c != 13:
                crcount = 0
        if end < 0:
            break
        text = buf[pos:end].decode("utf-8", errors="replace").replace("\r", "\n")
        lines = [line for line in text.split("\n") if line]
        cmdline = lines[0] if lines else ""
        headers: list[tuple[str, str]] = []
        clen = 0
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            value = value.lstrip(" ")
            headers.append((name, value))
            if name.lower() == "content-length":
                clen = atoi(value)
        body: str | None = None
        if clen > 0:
            if n - end < clen:
                break
            body = buf[end : end + clen].decode("utf-8", errors="replace")
            end += clen
        out.append((cmdline, headers, body))
        pos = end
    return out, buf[pos:]


def xml_event(ev: Event) -> str:
    """A minimal ``text/event-xml`` body (switch_event_xmlize shape)."""
    parts = ["<event>\n  <headers>\n"]
    for k, v in ev.plain_headers():
        parts.append(f"    <{k}>{escape(url_encode(v))}</{k}>\n")
    parts.append("  </headers>\n")
    if ev.body is not None:
        parts.append(f"  <body>{escape(ev.body)}</body>\n")
    parts.append("</event>")
    return "".join(parts)


class Listener:
    """An event-socket connection: reader greenlet + the listener loop greenlet."""

    def __init__(
        self,
        fs: SocketSwitch,
        sock: gsocket.socket,
        *,
        session: Channel | None = None,
        outbound: bool = False,
        async_mode: bool = True,
        full: bool = True,
        socket_arg: str | None = "",
    ) -> None:
        self.fs = fs
        self.sock: gsocket.socket | None = sock
        self.session = session
        self.outbound = outbound
        self.async_mode = async_mode
        self.full = full
        self.socket_arg = socket_arg
        self.authed = outbound
        self.running = True
        self.events_enabled = False
        self.event_list: set[str] = set()
        self.custom: set[str] = set()
        self.all_custom = False
        self.myevents = False
        self.format = "plain"
        self.filters: list[tuple[str, str]] = []
        self.linger = False
        self.linger_time = -1
        self.linger_deadline: float | None = None
        self.resume = False
        self.allow_log = True
        self.log_level: int | None = None
        self.handle_disco = False
        self.connected = gevent.event.Event()
        self.finished = gevent.event.Event()
        self.queue: deque[Event] = deque()
        self.cmds: deque[Packet] = deque()
        self.eof = False
        self.wake = gevent.event.Event()
        self.greenlet: gevent.Greenlet | None = None
        self.reader: gevent.Greenlet | None = None
        if session is not None:
            session.listeners.append(self)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, inline: bool = False) -> None:
        """Start reading; ``inline`` runs the loop in the calling (session) greenlet."""
        self.fs.bus.add(self)
        self.fs.bus.reindex(self, self.channel_key())  # no events until it subscribes
        self.fs.listeners.append(self)
        self.reader = gevent.spawn(self._read_loop)
        if inline:
            self.greenlet = gevent.getcurrent()
            self.run()
        else:
            self.greenlet = gevent.spawn(self.run)

    def _read_loop(self) -> None:
        buf = b""
        while self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.eof = True
                self.wake.set()
                return
            buf += data
            packets, buf = parse_packets(buf)
            if packets:
                self.cmds.extend(packets)
                self.wake.set()

    def send(self, data: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.eof = True

    def run(self) -> None:
        """listener_run: auth request for inbound connections, then the command loop."""
        try:
            if not self.outbound:
                self.send(b"Content-Type: auth/request\n\n")
            self._loop()
        finally:
            self._done()

    def _loop(self) -> None:
        while True:
            self.wake.clear()
            if self.cmds and self.running:
                self.process(*self.cmds.popleft())
                continue
            if not self.running or self.eof:
                return
            self.flush_events()
            now = time.time()
            deadline = self.linger_deadline
            if self.handle_disco and deadline is not None and now > deadline:
                return
            if self.session is not None and self.session.down() and not self.handle_disco:
                self.handle_disco = True
                if not self.linger:
                    return
                self.send(
                    (
                        "Content-Type: text/disconnect-notice\n"
                        f"Controlled-Session-UUID: {self.session.uuid}\n"
                        "Content-Disposition: linger\n"
                        f"Channel-Name: {self.session.name}\n"
                        f"Linger-Time: {self.linger_time}\n"
                        "Content-Length: 0\n\n"
                    ).encode()
                )
                if self.linger_time != -1:
                    self.linger_deadline = time.time() + self.linger_time
                continue
            timeout = None
            if self.linger_deadline is not None:
                timeout = max(self.linger_deadline - now, 0.0) + 0.001
            self.wake.wait(timeout)

    def _done(self) -> None:
        self.running = False
        self.fs.bus.remove(self)
        session = self.session
        if session is not None and session.up():
            if (
                "TRANSFER" not in session.flags
                and "REDIRECT" not in session.flags
                and (self.resume or is_true(session.get_var("socket_resume")))
            ):
                session.state = "CS_RESET"
                session.note("socket_resume")
        if self.sock is not None:
            if session is not None:
                head = (
                    "Content-Type: text/disconnect-notice\n"
                    f"Controlled-Session-UUID: {session.uuid}\n"
                    "Content-Disposition: disconnect\n"
                    f"Content-Length: {len(GOODBYE)}\n\n"
                )
            else:
                head = f"Content-Type: text/disconnect-notice\nContent-Length: {len(GOODBYE)}\n\n"
            self.send((head + GOODBYE).encode())
            try:
                self.sock.shutdown(gsocket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        if session is not None:
            session.flags.discard("CONTROLLED")
            session.note("socket_closed")
            session.kick()
        self.finished.set()

    def close(self) -> None:
        """Stand-in shutdown: drop the connection."""
        self.running = False
        self.eof = True
        self.wake.set()

    # --- events ---------------------------------------------------------------------------

    def takes(self, name: str) -> bool:
        """Whether this listener may take an event called ``name`` (before its filters)."""
        if not self.running or not self.events_enabled:
            return False
        return "ALL" in self.event_list or name in self.event_list

    def offer(self, ev: Event) -> None:
        """The event hook: subscription, filters and ``myevents`` as mod_event_socket."""
        if not self.takes(ev.name):
            return
        send = "ALL" in self.event_list
        if not send:
            subclass = ev.get("Event-Subclass")
            send = ev.name != "CUSTOM" or not subclass or self.all_custom or subclass in self.custom
        if send and self.filters:
            send = filters_pass(self.filters, ev)
        if send and self.myevents:
            uid = ev.get("Unique-ID")
            if not uid or (self.session is not None and uid != self.session.uuid):
                send = False
            if self.session is not None and ev.get("Job-Owner-UUID") == self.session.uuid:
                send = True
        if send:
            self.queue.append(ev)
            self.wake.set()

    def channel_key(self) -> str | None:
        """The uuid of the one channel whose events this listener can take (``myevents``
        on a channel, or a ``Unique-ID`` filter), else None: the bus offers it only those."""
        if not self.events_enabled:
            return NO_EVENTS
        if self.myevents and self.session is not None:
            return self.session.uuid
        return one_channel_filter(self.filters) if self.filters else None

    def flush_events(self) -> None:
        while self.queue and self.sock is not None:
            ev = self.queue.popleft()
            if self.format == "xml":
                data = encode_frame([("Content-Type", "text/event-xml")], xml_event(ev))
            else:
                data = ev.encode(self.format)
            self.send(data)
            if self.session is not None and self.session.call is not None and self.outbound:
                self.session.call.events_sent.append(ev.name)

    # --- commands -------------------------------------------------------------------------

    def reply(self, text: str) -> None:
        if text.startswith("~"):
            self.send(("Content-Type: command/reply\n" + text[1:]).encode())
        else:
            self.send(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def process(self, cmd: str, headers: list[tuple[str, str]], body: str | None) -> None:
        """parse_command: one command, one reply (or none for connect/api/bgapi)."""
        reply = self._parse(cmd, headers, body)
        self.fs.bus.reindex(self, self.channel_key())
        if reply is None:
            return
        self.reply(reply or "-ERR command not found")

    def _parse(self, cmd: str, headers: list[tuple[str, str]], body: str | None) -> str | None:
        low = cmd.lower()
        if not cmd:
            self.running = False
            return "-ERR command parse error."
        if low.startswith("exit") or low.startswith("..."):
            self.running = False
            return "+OK bye"
        if not self.authed:
            if low.startswith("auth "):
                if cmd[5:].rstrip("\r\n") == self.fs.password:
                    self.authed = True
                    return "+OK accepted"
                self.running = False
                return "-ERR invalid"
            if low.startswith("userauth "):
                self.running = False
                return "-ERR invalid"
            return ""
        if low.startswith("filter "):
            return self._filter(cmd[7:])
        if self.session is not None and low.startswith("resume"):
            self.resume = True
            self.session.set_var("socket_resume", "true")
            return "+OK"
        if self.session is not None or low.startswith("myevents "):
            handled = self._session_cmds(cmd, low)
            if handled is not False:
                return handled
        if low.startswith("divert_events"):
            if self.session is None:
                return "-ERR not controlling a session."
            onoff = cmd[13:].strip()
            if not onoff:
                return "-ERR missing value."
            return "+OK events diverted" if onoff.lower() == "on" else "+OK events not diverted"
        if low.startswith("sendmsg"):
            return self._sendmsg(cmd, headers, body)
        if self.outbound and not self.full:
            return ""
        if low.startswith("sendevent"):
            return self._sendevent(cmd, headers, body)
        if low.startswith("api "):
            self._api(cmd[4:].rstrip("\r\n"))
            return None
        if low.startswith("bgapi "):
            return self._bgapi(cmd[6:].rstrip("\r\n"), headers)
        if low.startswith("log"):
            return self._log(cmd)
        if low.startswith("linger"):
            if self.session is None:
                return "-ERR not controlling a session"
            arg = cmd[6:]
            self.linger_time = atoi(arg[1:]) if arg[:1] == " " and arg[1:] else -1
            self.linger = True
            if self.linger_time != -1:
                return f"+OK will linger {self.linger_time} seconds"
            return "+OK will linger"
        if low.startswith("nolinger"):
            if self.session is None:
                return "-ERR not controlling a session"
            self.linger = False
            return "+OK will not linger"
        if low.startswith("nolog"):
            if self.log_level is None:
                return "-ERR not loging"
            self.log_level = None
            return "+OK no longer logging"
        if low.startswith("event"):
            return self._event(cmd)
        if low.startswith("nixevent"):
            return self._nixevent(cmd)
        if low.startswith("noevents"):
            if not self.events_enabled:
                return "-ERR not listening for events"
            self.events_enabled = False
            self.event_list.clear()
            self.custom.clear()
            self.all_custom = False
            self.queue.clear()
            return "+OK no longer listening for events"
        return ""

    def _session_cmds(self, cmd: str, low: str) -> str | None | bool:
        """connect / getvar / myevents (only with a session, or ``myevents <uuid>``)."""
        session = self.session
        if low.startswith("connect") and session is not None:
            self.connected.set()
            ev = session.build_event(
                "CHANNEL_DATA",
                before=session.profile.event_data("Channel"),
                after=[
                    ("Content-Type", "command/reply"),
                    ("Reply-Text", "+OK\n"),
                    ("Socket-Mode", "async" if self.async_mode else "static"),
                    ("Control", "full" if self.full else "single-channel"),
                ],
            )
            lines = "".join(f"{k}: {url_encode(v)}\n" for k, v in ev.plain_headers())
            self.send((lines + "\n").encode())
            return None
        if low.startswith("getvar") and session is not None:
            _, _, name = cmd.rstrip("\r\n").partition(" ")
            return (session.get_var(name) or "") if name else ""
        if low.startswith("myevents"):
            if self.myevents:
                return "-ERR aready enabled."
            if session is None:
                parts = cmd[9:].rstrip("\r\n").split(" ")
                uid = parts[0]
                fmt = parts[1] if len(parts) > 1 else None
                found = self.fs.locate(uid)
                if found is None and fmt:
                    return "-ERR invalid uuid"
                if found is not None:
                    self.session = found
                    found.listeners.append(self)
                self.async_mode = True
            self.event_list |= MYEVENTS
            self.myevents = True
            self.events_enabled = True
            if "xml" in cmd or "XML" in cmd:
                self.format = "xml"
            if "json" in cmd or "JSON" in cmd:
                self.format = "json"
            return "+OK Events Enabled"
        return False

    def _filter(self, rest: str) -> str:
        rest = rest.rstrip("\r\n").lstrip(" ")
        name, sep, val = rest.partition(" ")
        value: str | None = val if sep else None
        if name.lower() == "delete" and value:
            name, sep, val = value.partition(" ")
            value = val if sep else None
            if name.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [
                    (k, v)
                    for k, v in self.filters
                    if not (k.lower() == name.lower() and (value is None or v == value))
                ]
            return f"+OK filter deleted. [{name}][{value or ''}]"
        if value is not None:
            if name.lower() == "add":
                name, sep, val = value.partition(" ")
                value = val if sep else None
            if value == "":  # FreeSWITCH "adds" an empty header by deleting that name's
                low = name.lower()
                self.filters = [(k, v) for k, v in self.filters if k.lower() != low]
            elif value is not None:  # a header without a value is not added (NULL data)
                self.filters.append((name, value))
            return f"+OK filter added. [{name}]=[{'(null)' if value is None else value}]"
        return "-ERR invalid syntax"

    def _sendmsg(self, cmd: str, headers: list[tuple[str, str]], body: str | None) -> str:
        uid = cmd[7:].strip()
        command = Command([("Command", cmd), *headers], body)
        if not uid:
            uid = command.get("session-id") or ""
        async_mode = self.async_mode or is_true(command.get("async"))
        if uid and self.session is not None and uid == self.session.uuid:
            uid = ""
        if not uid and self.session is not None:
            if async_mode:
                self.session.queue_private(command)
            else:
                parse_event(self.session, command)
            return "+OK"
        target = self.fs.locate(uid) if uid else None
        if target is None:
            return f"-ERR invalid session id [{uid}]"
        target.queue_private(command)
        return "+OK"

    def _sendevent(self, cmd: str, headers: list[tuple[str, str]], body: str | None) -> str:
        event_uuid = str(uuidlib.uuid4())
        name = event_type(cmd[9:].strip()) or "CUSTOM"
        hs: list[tuple[str, str]] = [("Command", cmd), *headers, ("Event-UUID", event_uuid)]
        ev = make_event(self.fs, name, body=body)
        ev.headers = [*hs, *ev.headers]
        self.fs.bus.dispatch(ev)
        return f"+OK {event_uuid}"

    def _api(self, line: str) -> None:
        name, _, arg = line.partition(" ")
        text = self.fs.api.run(name, arg if arg else None, listener=self)
        if not text:
            text = "-ERR no reply\n"
        self.send(encode_frame([("Content-Type", "api/response")], text, length_first=False))

    def _bgapi(self, line: str, headers: list[tuple[str, str]]) -> str:
        name, _, arg = line.partition(" ")
        job = Command(headers).get("job-uuid") or str(uuidlib.uuid4())
        owner = self.session.uuid if self.session is not None else ""

        def job_run() -> None:
            text = self.fs.api.run(name, arg if arg else None, listener=None)
            ev = make_event(
                self.fs,
                "BACKGROUND_JOB",
                [
                    ("Job-UUID", job),
                    ("Job-Owner-UUID", owner),
                    ("Job-Command", name),
                    ("Job-Command-Arg", arg),
                ],
                body=text or "Command returned no output!",
            )
            self.fs.bus.dispatch(ev)

        self.fs.spawn(job_run)
        return f"~Reply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n"

    def _log(self, cmd: str) -> str:
        if not self.allow_log:
            return "-ERR permission denied"
        level_s = cmd[3:].rstrip("\r\n").lstrip(" ").split(" ")[0]
        if not level_s:
            level = 7
        elif level_s.isdigit():
            level = min(int(level_s), 7)
        elif level_s.lower() in LOG_LEVELS:
            level = LOG_LEVELS[level_s.lower()]
        else:
            return "-ERR invalid log level"
        self.log_level = level
        return f"+OK log level {level_s} [{level}]"

    def _event(self, cmd: str) -> str:
        rest = cmd.rstrip("\r\n")[5:]
        key_count = 0
        custom = False
        if " " in rest:
            tokens = rest[rest.index(" ") + 1 :].split(" ")
            for count, tok in enumerate(tokens):
                if count == 0 and tok.lower() in ("xml", "plain", "json"):
                    self.format = tok.lower()
                    continue
                if custom:
                    self.custom.add(tok)
                    continue
                name = event_type(tok)
                if name is None:
                    continue
                key_count += 1
                if name == "ALL":
                    self.event_list.update(EVENT_NAMES)
                    self.all_custom = True
                self.event_list.add(name)
                if name == "CUSTOM":
                    custom = True
        if not key_count:
            return "-ERR no keywords supplied"
        self.events_enabled = True
        return f"+OK event listener enabled {self.format}"

    def _nixevent(self, cmd: str) -> str:
        rest = cmd.rstrip("\r\n")[8:]
        key_count = 0
        custom = False
        if " " in rest:
            for tok in rest[rest.index(" ") + 1 :].split(" "):
                if custom:
                    self.custom.discard(tok)
                    continue
                name = event_type(tok)
                if name is None:
                    continue
                key_count += 1
                if name == "CUSTOM":
                    custom = True
                elif name == "ALL":
                    self.event_list.clear()
                    self.all_custom = False
                else:
                    if "ALL" in self.event_list:
                        self.event_list.discard("ALL")
                    self.event_list.discard(name)
        if not key_count:
            return "-ERR no keywords supplied"
        self.events_enabled = True
        return "+OK events nixed"
