"""Hardened ESL sessions against a fake FreeSWITCH peer over real TCP sockets.

Each greenswitch weakness (numbered as in the issue) has a test showing the fix and, where it
is cheap and safe, one showing bare greenswitch 0.0.19 has it.
"""

import io
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections import deque

import gevent
import gevent.socket as gsocket
import greenswitch.esl as gs
import pytest

from fsacd.esl.framing import (
    FrameReader,
    encode_event_plain,
    encode_frame,
    frame_event,
    split_frames,
)
from fsacd.esl.session import (
    AuthError,
    CommandError,
    ESLDisconnected,
    ESLError,
    ESLTimeout,
    InboundClient,
    OutboundSession,
)

UUID = "a1a303ba-d964-4073-a501-b92623fdf693"
NUMBER = "+4922129191999"
NAME = "Erika Muster"
REPLY_TYPES = ("command/reply", "api/response")

CONNECT_REPLY = encode_frame(
    [
        ("Event-Name", "CHANNEL_DATA"),
        ("Unique-ID", UUID),
        ("Caller-Caller-ID-Number", "%2B4922129191999"),
        ("Caller-Caller-ID-Name", "Erika%20Muster"),
        ("variable_note", "a%0Ab"),
        ("Content-Type", "command/reply"),
        ("Reply-Text", "%2BOK%0A"),
        ("Socket-Mode", "async"),
        ("Control", "full"),
    ]
)


# --- helpers -------------------------------------------------------------------------------


def socket_pair():
    """A connected TCP pair on 127.0.0.1: (our end, its address, the peer's end)."""
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    peer = gsocket.create_connection(listener.getsockname())
    conn, address = listener.accept()
    listener.close()
    return conn, address, peer


class Peer:
    """The FreeSWITCH end of one connection, driven by the test."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = FrameReader(commands=True)
        self.inbox = deque()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.inbox.extend(self.reader.feed(data))

    def command(self, timeout=2.0):
        """The next command frame the session sent."""
        with gevent.Timeout(timeout):
            while not self.inbox:
                self._fill()
        return self.inbox.popleft()

    def quiet(self, wait=0.15):
        """True if no command arrives within ``wait`` seconds."""
        try:
            with gevent.Timeout(wait):
                while not self.inbox:
                    self._fill()
        except gevent.Timeout:
            return True
        return False

    def eof(self, timeout=2.0):
        """True if the session closes the connection within ``timeout`` (commands ignored)."""
        try:
            with gevent.Timeout(timeout):
                while True:
                    self._fill()
        except EOFError:
            return True
        except (gevent.Timeout, OSError):
            return False

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self, text="+OK"):
        self.send(f"Content-Type: command/reply\nReply-Text: {text}\n\n")

    def api_response(self, body):
        self.send(api_response(body))

    def event(self, name, **headers):
        self.send(event(name, **headers))

    def close(self):
        self.sock.close()


def api_response(body):
    return encode_frame([("Content-Type", "api/response")], body, length_first=False)


def event(name, **headers):
    return encode_event_plain([("Event-Name", name), ("Unique-ID", UUID), *headers.items()])


@pytest.fixture
def pair():
    """An OutboundSession (command timeout 1 s) and the peer playing FreeSWITCH."""
    conn, address, sock = socket_pair()
    session = OutboundSession(conn, address, command_timeout=1.0)
    peer = Peer(sock)
    yield session, peer
    session.close()
    peer.close()


def connect(session, peer):
    g = gevent.spawn(session.connect)
    assert peer.command().command == "connect"
    peer.send(CONNECT_REPLY)
    return g.get(timeout=2)


class Ticker:
    """A greenlet that counts ticks: proof the process is not frozen."""

    def __init__(self):
        self.ticks = 0
        self.g = gevent.spawn(self._run)

    def _run(self):
        while True:
            gevent.sleep(0.005)
            self.ticks += 1

    def still_ticking(self):
        before = self.ticks
        gevent.sleep(0.05)
        return self.ticks > before

    def stop(self):
        self.g.kill()


@pytest.fixture
def quiet_hub():
    """Keep gevent from printing the tracebacks of greenswitch's dying greenlets."""
    hub = gevent.get_hub()
    old = hub.exception_stream
    hub.exception_stream = io.StringIO()
    yield
    hub.exception_stream = old


def bare_greenswitch(conn, address):
    """A bare greenswitch 0.0.19 outbound session on ``conn`` (starts its greenlets)."""
    return gs.OutboundSession(address, conn)


def kill_bare(session, peer):
    peer.close()
    gevent.killall(
        [g for g in (session._receive_events_greenlet, session._process_events_greenlet) if g]
    )
    session.sock.close()


def drain(session, timeout=2.0):
    """All events until SOCKET_CLOSED (included)."""
    names = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = session.next_event(0.1)
        if ev is not None:
            names.append(ev.name)
            if ev.name == "SOCKET_CLOSED":
                return names
    raise AssertionError(f"no SOCKET_CLOSED, got {names}")


# --- basics ----------------------------------------------------------------------------------


def test_connect_returns_decoded_channel_data(pair):
    session, peer = pair
    data = connect(session, peer)
    assert data is session.channel_data
    assert data["Caller-Caller-ID-Number"] == NUMBER
    assert data["Caller-Caller-ID-Name"] == NAME
    assert data["variable_note"] == "a\nb"
    assert data["Reply-Text"] == "+OK\n"
    assert session.uuid == UUID
    assert session.connected and not session.hungup
    assert session.connect() is data  # connected once: no second "connect" is sent
    assert peer.quiet()


def test_myevents_linger_and_command_error(pair):
    session, peer = pair
    g = gevent.spawn(session.myevents, "json")
    assert peer.command().command == "myevents json"
    peer.reply("+OK Events Enabled")
    g.get(timeout=2)
    g = gevent.spawn(session.linger, 30)
    assert peer.command().command == "linger 30"
    peer.reply("+OK will linger 30 seconds")
    g.get(timeout=2)
    g = gevent.spawn(session.myevents)
    assert peer.command().command == "myevents"
    peer.reply("-ERR aready enabled.")
    with pytest.raises(CommandError) as err:
        g.get(timeout=2)
    assert err.value.reply == "-ERR aready enabled."
    assert session.connected  # an -ERR reply is in step: the connection stays usable
    with pytest.raises(ValueError):
        session.myevents("xml")


def test_own_events_filters_by_uuid_and_pipelines_the_commands(pair):
    session, peer = pair
    with pytest.raises(ESLError):
        session.own_events(["DTMF"])  # no channel uuid before connect
    connect(session, peer)
    g = gevent.spawn(session.own_events, ["CHANNEL_EXECUTE", "dtmf"], linger=True)
    # all three are written before any reply: one round trip
    got = [peer.command().command for _ in range(3)]
    assert got == [f"filter Unique-ID {UUID}", "event plain CHANNEL_EXECUTE DTMF", "linger"]
    peer.reply(f"+OK filter added. [Unique-ID]=[{UUID}]")
    assert not g.ready()
    peer.reply("+OK event listener enabled plain")
    peer.reply("+OK will linger")
    g.get(timeout=2)
    # an -ERR among the replies raises once all replies came: the next command is in step
    g = gevent.spawn(session.own_events, ["BOGUS"], "json")
    assert [peer.command().command for _ in range(2)] == [
        f"filter Unique-ID {UUID}",
        "event json BOGUS",
    ]
    peer.reply(f"+OK filter added. [Unique-ID]=[{UUID}]")
    peer.reply("-ERR no keywords supplied")
    with pytest.raises(CommandError, match="no keywords"):
        g.get(timeout=2)
    g = gevent.spawn(session.api, "status")
    assert peer.command().command == "api status"
    peer.api_response("UP")
    assert g.get(timeout=2) == "UP"
    for bad in ([], ["CHANNEL EXECUTE"], ["DTMF\nexit"], [""], ["DTMF\u00c9"]):
        with pytest.raises(ValueError):
            session.own_events(bad)
    with pytest.raises(ValueError):
        session.own_events(["DTMF"], "xml")
    assert peer.quiet()


def test_send_commands_times_out_as_one(pair):
    session, peer = pair
    g = gevent.spawn(session.send_commands, ["linger", "nolinger"], 0.3)
    assert [peer.command().command for _ in range(2)] == ["linger", "nolinger"]
    peer.reply("+OK will linger")  # the second reply never comes
    with pytest.raises(ESLTimeout):
        g.get(timeout=2)
    assert not session.connected  # later replies would be out of step: closed
    assert session.send_commands([]) == []


def test_next_event_timeout(pair):
    session, _ = pair
    t0 = time.monotonic()
    assert session.next_event(0.05) is None
    assert time.monotonic() - t0 < 0.5


# --- weakness 1: decode after splitting ----------------------------------------------------


def test_w1_encoded_newline_stays_in_one_header(pair):
    session, peer = pair
    peer.event("CHANNEL_EXECUTE_COMPLETE", variable_note="a\nInjected: yes")
    ev = session.next_event(2)
    assert ev.name == "CHANNEL_EXECUTE_COMPLETE"
    assert ev.var("note") == "a\nInjected: yes"
    assert "Injected" not in ev.headers


def test_w1_bare_greenswitch_missplits():
    assert gs.ESLEvent("Event-Name: X\nvariable_note: a%0AInjected: yes").headers["Injected"]


# --- weakness 2: every send has a timeout ----------------------------------------------------


def test_w2_send_timeout_closes_the_connection(pair):
    session, peer = pair
    connect(session, peer)
    t0 = time.monotonic()
    g = gevent.spawn(session.api, "status", 0.2)
    assert peer.command().command == "api status"
    with pytest.raises(ESLTimeout):
        g.get(timeout=2)
    assert 0.15 < time.monotonic() - t0 < 1.0
    assert not session.connected
    assert peer.eof()
    peer.api_response("late")  # a late reply can no longer be taken for another command's
    with pytest.raises(ESLDisconnected):
        session.api("status")
    assert drain(session)[-1] == "SOCKET_CLOSED"


def test_w2_default_command_timeout_is_configurable():
    conn, address, sock = socket_pair()
    session = OutboundSession(conn, address, command_timeout=0.1)
    t0 = time.monotonic()
    with pytest.raises(ESLTimeout):
        session.send_command("connect")
    assert time.monotonic() - t0 < 0.8
    session.close()
    sock.close()


def test_w2_bare_greenswitch_send_waits_forever():
    conn, address, sock = socket_pair()
    bare, peer = bare_greenswitch(conn, address), Peer(sock)
    g = gevent.spawn(bare.send, "api status")
    assert peer.command().command == "api status"
    gevent.sleep(0.3)
    assert not g.ready()  # no timeout: it would wait for ever
    g.kill()
    kill_bare(bare, peer)


# --- weakness 3: short frame then EOF ------------------------------------------------------


def test_w3_short_frame_then_eof_disconnects_promptly(pair):
    session, peer = pair
    connect(session, peer)
    ticker = Ticker()
    waiting = gevent.spawn(session.next_event, 5)
    g = gevent.spawn(session.api, "status", 5)
    assert peer.command().command == "api status"
    t0 = time.monotonic()
    peer.send("Content-Type: api/response\nContent-Length: 100\n\nshort")
    peer.close()
    with pytest.raises(ESLDisconnected):
        g.get(timeout=2)
    assert time.monotonic() - t0 < 0.5
    closed = waiting.get(timeout=1)
    assert closed.name == "SOCKET_CLOSED"
    assert closed.get("Reason") == "end of stream inside a frame"
    assert session.next_event(0) is closed  # and again at once, not after a timeout
    assert session.hungup and not session.connected
    assert ticker.still_ticking()
    assert session._reader.successful()  # the reader ended cleanly
    ticker.stop()


def test_w3_short_event_then_eof(pair):
    session, peer = pair
    peer.send(b"Content-Length: 5000\nContent-Type: text/event-plain\n\nEvent-Name: CHANN")
    peer.close()
    assert drain(session) == ["SOCKET_CLOSED"]


SPIN_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey; monkey.patch_all()
    import os, sys, gevent, gevent.socket as s, greenswitch.esl as gs
    def tick():
        while True:
            sys.stdout.write("tick\\n"); sys.stdout.flush(); gevent.sleep(0.02)
    gevent.spawn(tick)
    lst = s.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
    peer = s.create_connection(lst.getsockname()); conn, addr = lst.accept()
    session = gs.OutboundSession(addr, conn)
    gevent.sleep(0.2)
    sys.stdout.write("sending\\n"); sys.stdout.flush()
    peer.sendall(b"Content-Type: text/event-plain\\nContent-Length: 100\\n\\nshort")
    peer.close()
    gevent.sleep(0.5)
    sys.stdout.write("done\\n"); sys.stdout.flush()
    os._exit(0)
    """
)


def test_w3_bare_greenswitch_freezes_the_process():
    """Run in a subprocess: bare greenswitch spins in _read_socket and never yields again."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", SPIN_SCRIPT],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=3,
        ).stdout
        frozen = False
    except subprocess.TimeoutExpired as exc:
        out, frozen = exc.stdout or b"", True
    lines = out.decode().split()
    assert "sending" in lines
    assert frozen and "done" not in lines
    assert lines[lines.index("sending") + 1 :].count("tick") <= 2  # ticker stopped too


# --- weakness 4 and other malformed input: drop the connection only -----------------------

BAD_INPUT = {
    "no-content-type": b"Reply-Text: +OK\n\n",
    "garbage": b"hello world\n\n",
    "not-utf8": b"Content-Type: command/reply\nReply-Text: \xff\xfe\n\n",
    "bad-length": b"Content-Type: api/response\nContent-Length: 12x\n\nabc",
    "bad-event-body": b"Content-Type: text/event-plain\nContent-Length: 8\n\nnocolon\n",
    "bad-json-event": b"Content-Type: text/event-json\nContent-Length: 3\n\n{x}",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUT))
def test_w4_malformed_frame_fails_the_pending_send_only(pair, kind, caplog):
    session, peer = pair
    connect(session, peer)
    other = Ticker()
    g = gevent.spawn(session.api, "status", 5)
    peer.command()
    t0 = time.monotonic()
    peer.send(BAD_INPUT[kind])
    with pytest.raises(ESLDisconnected):
        g.get(timeout=2)
    assert time.monotonic() - t0 < 0.5
    assert session._reader.successful()  # nothing escaped the reader greenlet
    assert "protocol error" in caplog.text
    assert peer.eof()
    assert drain(session)[-1] == "SOCKET_CLOSED"
    assert other.still_ticking()
    other.stop()


def test_unsolicited_reply_is_a_protocol_error(pair):
    session, peer = pair
    peer.reply("+OK nobody asked")
    assert drain(session) == ["SOCKET_CLOSED"]
    assert session._closed_event.get("Reason") == "protocol error"


def test_w4_bare_greenswitch_reader_dies_and_send_hangs(quiet_hub):
    conn, address, sock = socket_pair()
    bare, peer = bare_greenswitch(conn, address), Peer(sock)
    g = gevent.spawn(bare.send, "api status")
    peer.command()
    peer.send(BAD_INPUT["no-content-type"])
    gevent.sleep(0.2)
    assert isinstance(bare._receive_events_greenlet.exception, KeyError)
    assert not g.ready()
    g.kill()
    kill_bare(bare, peer)


# --- weakness 5: event-lock and event-uuid --------------------------------------------------


def test_w5_execute_sends_event_lock_and_uuid(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.execute, "playback", "tone_stream://%(200,0,440)")
    cmd = peer.command()
    peer.reply()
    app_uuid = g.get(timeout=2)
    assert cmd.command == "sendmsg"
    assert cmd.headers["call-command"] == "execute"
    assert cmd.headers["execute-app-name"] == "playback"
    assert cmd.headers["event-lock"] == "true"
    assert cmd.headers["event-uuid"] == app_uuid and len(app_uuid) == 36
    assert cmd.body == b"tone_stream://%(200,0,440)"
    g = gevent.spawn(session.execute, "playback", "local_stream://moh", lock=False)
    cmd = peer.command()
    peer.reply()
    g.get(timeout=2)
    assert "event-lock" not in cmd.headers


def test_w5_execute_wait_matches_application_uuid(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.execute_wait, "answer", timeout=2)
    app_uuid = peer.command().headers["event-uuid"]
    peer.reply()
    peer.event("CHANNEL_EXECUTE_COMPLETE", Application="answer", **{"Application-UUID": "other"})
    peer.event("CHANNEL_EXECUTE_COMPLETE", Application="answer", **{"Application-UUID": app_uuid})
    ev = g.get(timeout=2)
    assert ev.get("Application-UUID") == app_uuid
    names = [session.next_event(1).get("Application-UUID") for _ in range(2)]
    assert names == ["other", app_uuid]  # the events are still queued
    g = gevent.spawn(session.execute_wait, "answer", timeout=0.1)
    peer.command()
    peer.reply()
    with pytest.raises(ESLTimeout):
        g.get(timeout=2)
    assert session.connected  # waiting for an event does not put replies out of step


def test_w5_execute_error_reply(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.execute, "answer")
    peer.command()
    peer.reply("-ERR invalid session id")
    with pytest.raises(CommandError):
        g.get(timeout=2)


def test_w5_bare_greenswitch_sends_no_event_lock():
    conn, address, sock = socket_pair()
    bare, peer = bare_greenswitch(conn, address), Peer(sock)
    g = gevent.spawn(bare.call_command, "playback", "x.wav")
    cmd = peer.command()
    peer.reply()
    g.get(timeout=2)
    assert "event-lock" not in cmd.headers and cmd.headers["execute-app-arg"] == "x.wav"
    kill_bare(bare, peer)


# --- weakness 6: no command injection --------------------------------------------------------

INJECTION = "x.wav\n\nsendmsg\ncall-command: execute\nexecute-app-name: hangup\n\n"


def test_w6_newline_in_argument_is_one_command(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.execute, "playback", INJECTION)
    cmd = peer.command()
    peer.reply()
    g.get(timeout=2)
    assert cmd.body.decode() == INJECTION
    assert cmd.headers["execute-app-name"] == "playback"
    assert peer.quiet()  # no second command


def test_w6_line_breaks_in_commands_and_headers_are_refused(pair):
    session, peer = pair
    connect(session, peer)
    for call in (
        lambda: session.api("status\n\nexit"),
        lambda: session.send_command("linger\r"),
        lambda: session.send_command("sendmsg", [("call-command", "execute\nx: y")]),
        lambda: session.execute("play\nback"),
    ):
        with pytest.raises(ValueError):
            call()
    assert peer.quiet()  # nothing was written
    assert session.connected


def test_w6_bare_greenswitch_can_be_injected():
    conn, address, sock = socket_pair()
    bare, peer = bare_greenswitch(conn, address), Peer(sock)
    g = gevent.spawn(bare.call_command, "playback", INJECTION)
    peer.command()
    peer.reply()
    g.get(timeout=2)
    injected = peer.command()
    assert injected.headers["execute-app-name"] == "hangup"
    kill_bare(bare, peer)


# --- weakness 7: no caller data in logs ------------------------------------------------------


def test_w7_logs_name_the_channel_uuid_only(pair, caplog):
    caplog.set_level(logging.DEBUG)
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.api, "status", 0.1)  # a timeout is logged too
    peer.command()
    with pytest.raises(ESLTimeout):
        g.get(timeout=2)
    conn, address, sock = socket_pair()
    second = OutboundSession(conn, address, command_timeout=1.0)
    peer2 = Peer(sock)
    connect(second, peer2)
    peer2.event(
        "CHANNEL_HANGUP",
        **{"Caller-Caller-ID-Number": NUMBER, "Caller-Caller-ID-Name": NAME},
        **{"Hangup-Cause": "NORMAL_CLEARING"},
    )
    peer2.send(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: "
        f"{UUID}\nContent-Disposition: linger\nChannel-Name: loopback/5000-b\n"
        "Linger-Time: -1\nContent-Length: 0\n\n"
    )
    peer2.send(f"Reply-Text: {NUMBER}\nX: {NAME}\n\n")  # a protocol error quoting caller data
    assert drain(second)[-1] == "SOCKET_CLOSED"
    second.on_hangup(None)
    second.close()
    text = caplog.text
    assert UUID in text and "hung up" in text and "protocol error" in text
    for secret in (NUMBER, NUMBER[1:], NAME, "Erika", "Muster", "%2B49"):
        assert secret not in text


def test_w7_bare_greenswitch_logs_the_caller_number(caplog):
    caplog.set_level(logging.DEBUG)
    bare = gs.OutboundSession.__new__(gs.OutboundSession)
    bare.session_data = {"Caller-Caller-ID-Number": NUMBER}
    bare.on_hangup(None)
    assert NUMBER in caplog.text


# --- the command lock, FIFO replies, disconnect notices --------------------------------------


def test_commands_are_serialised_under_one_lock(pair):
    session, peer = pair
    connect(session, peer)
    g1 = gevent.spawn(session.api, "one")
    g2 = gevent.spawn(session.api, "two")
    assert peer.command().command == "api one"
    assert peer.quiet()  # the second waits for the first's reply before it is written
    peer.api_response("1")
    assert peer.command().command == "api two"
    peer.api_response("2")
    assert (g1.get(timeout=2), g2.get(timeout=2)) == ("1", "2")


def test_a_killed_waiter_keeps_replies_in_step(pair):
    session, peer = pair
    connect(session, peer)
    g1 = gevent.spawn(session.api, "one")
    assert peer.command().command == "api one"
    g1.kill()
    g2 = gevent.spawn(session.api, "two")
    peer.api_response("1")  # the killed command's reply: must not go to "two"
    assert peer.command().command == "api two"
    peer.api_response("2")
    assert g2.get(timeout=2) == "2"
    assert session.connected


def test_lock_wait_has_a_timeout(pair):
    session, peer = pair
    connect(session, peer)
    g1 = gevent.spawn(session.api, "slow", 1.0)
    peer.command()
    with pytest.raises(ESLTimeout):
        session.api("other", 0.1)
    assert session.connected  # losing the race for the lock does not close the connection
    peer.api_response("ok")
    assert g1.get(timeout=2) == "ok"


def test_api_response_among_events(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.api, f"uuid_break {UUID} all")
    peer.command()
    peer.send(event("CHANNEL_EXECUTE") + api_response("+OK\n") + event("CHANNEL_EXECUTE_COMPLETE"))
    assert g.get(timeout=2) == "+OK\n"
    assert [session.next_event(1).name for _ in range(2)] == [
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
    ]


def test_api_check_raises_on_err(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.api, "uuid_kill nope", check=True)
    peer.command()
    peer.api_response("-ERR No such channel!\n")
    with pytest.raises(CommandError, match="No such channel"):
        g.get(timeout=2)


def test_linger_notice_keeps_events_coming(pair):
    session, peer = pair
    connect(session, peer)
    peer.event("CHANNEL_HANGUP", **{"Hangup-Cause": "NORMAL_CLEARING"})
    peer.send(
        f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {UUID}\n"
        "Content-Disposition: linger\nChannel-Name: x\nLinger-Time: -1\nContent-Length: 0\n\n"
    )
    first = session.next_event(2)
    assert first.name == "CHANNEL_HANGUP" and session.hungup
    notice = session.next_event(2)
    assert notice.name == "DISCONNECT" and notice.get("Content-Disposition") == "linger"
    assert session.connected  # lingering: commands still work
    g = gevent.spawn(session.api, "uuid_kill other")
    peer.command()
    peer.api_response("+OK\n")
    assert g.get(timeout=2) == "+OK\n"
    peer.event("CHANNEL_HANGUP_COMPLETE")
    peer.close()
    assert drain(session) == ["CHANNEL_HANGUP_COMPLETE", "SOCKET_CLOSED"]
    assert session.next_event(5).name == "SOCKET_CLOSED"


def test_disconnect_notice_without_linger_fails_pending(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.api, "status", 5)
    peer.command()
    t0 = time.monotonic()
    peer.send(
        f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {UUID}\n"
        "Content-Disposition: disconnect\nContent-Length: 14\n\nDisconnected.\n"
    )
    with pytest.raises(ESLDisconnected):
        g.get(timeout=2)
    assert time.monotonic() - t0 < 0.5
    notice = session.next_event(1)
    assert notice.name == "DISCONNECT" and notice.body == "Disconnected.\n"
    assert not session.connected and session.hungup
    with pytest.raises(ESLDisconnected):
        session.api("status")


def test_close_fails_waiters_and_is_idempotent(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.execute_wait, "playback", "x", timeout=5)
    peer.command()
    peer.reply()
    gevent.sleep(0.05)
    session.close()
    session.close()
    with pytest.raises(ESLDisconnected):
        g.get(timeout=1)
    assert peer.eof()
    assert session.wait_closed(0)
    with pytest.raises(gs.OutboundSessionHasGoneAway):  # greenswitch's exception works too
        session.execute("answer")


def test_greenswitch_helpers_go_through_the_hardened_path(pair):
    session, peer = pair
    connect(session, peer)
    g = gevent.spawn(session.hangup)  # greenswitch's hangup() -> call_command -> execute
    cmd = peer.command()
    peer.reply()
    g.get(timeout=2)
    assert cmd.headers["event-lock"] == "true" and cmd.body == b"NORMAL_CLEARING"
    with pytest.raises(ValueError):
        session.call_command("bridge", "x", block=True)
    with pytest.raises(ESLError):
        session.playback("x.wav")  # would wait for ever in greenswitch
    assert session.call_uuid is None or isinstance(session.call_uuid, str)


# --- replay of the real transcripts ----------------------------------------------------------


def load(path):
    with open(path, encoding="utf-8") as f:
        return [(r["dir"], r["data"].encode("utf-8")) for r in map(json.loads, f)]


def replay_as_freeswitch(sock, records):
    """Send FreeSWITCH's side of a transcript, never a reply before its command came."""
    replies, commands, got, sent = FrameReader(), FrameReader(commands=True), 0, 0
    try:
        for direction, data in records:
            if direction != "in":
                continue
            sent += sum(f.content_type in REPLY_TYPES for f in replies.feed(data))
            while got < sent:
                more = sock.recv(65536)
                if not more:
                    return
                got += len(commands.feed(more))
            sock.sendall(data)
    finally:
        sock.close()


def expectations(records):
    """Per command its reply frame; the event names a consumer should see."""
    frames, _ = split_frames(b"".join(d for direction, d in records if direction == "in"))
    replies = [f for f in frames if f.content_type in REPLY_TYPES]
    names, jobs = [], {}
    for f in frames:
        if f.content_type == "text/disconnect-notice":
            names.append("DISCONNECT")
        elif f.content_type in ("text/event-plain", "text/event-json"):
            ev = frame_event(f)
            names.append(ev.name)
            if ev.name == "BACKGROUND_JOB":
                jobs[ev.get("Job-UUID")] = ev.body
    return replies, names + ["SOCKET_CLOSED"], jobs


def run_write(session, data):
    """Do what one recorded controller write did, through the session's API: (command,
    result) per command it held (several when pipelined)."""
    frames, _ = split_frames(data, commands=True)
    cmds = [f.command for f in frames]
    if len(cmds) > 1 and cmds[0].startswith("filter Unique-ID ") and cmds[1].startswith("event "):
        _, fmt, *names = cmds[1].split()
        assert cmds[0] == f"filter Unique-ID {session.uuid}" and cmds[2:] in ([], ["linger"])
        try:
            result = session.own_events(names, fmt, linger=cmds[2:] == ["linger"])
        except CommandError as exc:
            result = exc
        return [(cmd, result) for cmd in cmds]
    out = []
    for frame in frames:
        try:
            result = run_command(session, frame)
        except CommandError as exc:
            result = exc
        out.append((frame.command, result))
    return out


def run_command(session, frame):
    """Do what one recorded controller command did, through the session's API."""
    cmd, h = frame.command, frame.headers
    if cmd == "connect":
        return session.connect()
    if cmd.startswith("myevents"):
        return session.myevents(*cmd.split()[1:])
    if cmd == "linger":
        return session.linger()
    if cmd == "sendmsg":
        arg = h.get("execute-app-arg") or (frame.body.decode() if frame.body else None)
        return session.execute(h["execute-app-name"], arg, lock="event-lock" in h)
    if cmd.startswith("api "):
        return session.api(cmd[4:])
    if cmd.startswith("bgapi "):
        return session.bgapi(cmd[6:], timeout=2)
    if cmd.startswith("event ") and isinstance(session, InboundClient):
        _, fmt, *names = cmd.split()
        return session.subscribe(names, fmt)
    return session.send_command(cmd, check=False)


def check_result(cmd, result, reply, jobs):
    text = reply.decoded_headers().get("Reply-Text", "").strip()
    if cmd == "connect":
        assert result == reply.decoded_headers()
    elif cmd.startswith("api "):
        assert result == reply.body.decode()
    elif cmd.startswith("bgapi "):
        assert result == jobs[reply.headers["Job-UUID"]]
    elif cmd == "sendmsg":
        assert isinstance(result, CommandError if text.startswith("-ERR") else str)
    elif not cmd.startswith("auth "):
        assert not isinstance(result, Exception) or text.startswith("-ERR")


def test_replay_every_outbound_transcript(transcripts_dir):
    files = sorted(transcripts_dir.glob("*.jsonl"))
    outbound = [p for p in files if not p.name.startswith("inbound-")]
    assert len(outbound) >= 10
    for path in outbound:
        records = load(path)
        replies, names, jobs = expectations(records)
        conn, address, sock = socket_pair()
        session = OutboundSession(conn, address, command_timeout=2.0)
        fs = gevent.spawn(replay_as_freeswitch, sock, records)
        outs = [d for direction, d in records if direction == "out"]
        done = [pair for data in outs for pair in run_write(session, data)]
        assert len(done) == len(replies), path.name
        for (cmd, result), reply in zip(done, replies, strict=True):
            check_result(cmd, result, reply, jobs)
        assert drain(session, 5) == names, path.name
        assert session.hungup and session.uuid == session.channel_data["Unique-ID"]
        fs.get(timeout=2)
        session.close()


def test_replay_inbound_transcripts(transcripts_dir):
    for name, password in (
        ("inbound-api-bgapi-events.jsonl", "ClueCon"),
        ("inbound-bad-password.jsonl", "not-the-password"),
    ):
        records = load(transcripts_dir / name)
        replies, names, jobs = expectations(records)
        listener = gsocket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        host, port = listener.getsockname()

        def serve(listener=listener, records=records):
            sock, _ = listener.accept()
            listener.close()
            replay_as_freeswitch(sock, records)

        fs = gevent.spawn(serve)
        client = InboundClient(host, port, password, timeout=2, command_timeout=2)
        outs = [d for direction, d in records if direction == "out"]
        if password != "ClueCon":
            with pytest.raises(AuthError, match="authentication failed"):
                client.connect()
            assert drain(client) == names
            fs.get(timeout=2)
            continue
        client.connect()
        done = [pair for data in outs[1:] for pair in run_write(client, data)]
        for (cmd, result), reply in zip(done, replies[1:], strict=True):
            check_result(cmd, result, reply, jobs)
        assert drain(client, 5) == names
        fs.get(timeout=2)
        client.close()


# --- inbound client against a fake server -----------------------------------------------------


@pytest.fixture
def inbound():
    """An authenticated InboundClient and the peer playing FreeSWITCH's port 8021."""
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    host, port = listener.getsockname()
    client = InboundClient(host, port, "ClueCon", timeout=1, command_timeout=1)
    g = gevent.spawn(client.connect)
    sock, _ = listener.accept()
    listener.close()
    peer = Peer(sock)
    peer.send("Content-Type: auth/request\n\n")
    assert peer.command().command == "auth ClueCon"
    peer.reply("+OK accepted")
    g.get(timeout=2)
    yield client, peer
    client.close()
    peer.close()


def test_inbound_bgapi_matches_its_job(inbound):
    client, peer = inbound
    g = gevent.spawn(client.bgapi, "originate loopback/x &park", 2)
    sub = peer.command()
    assert sub.command == "event plain BACKGROUND_JOB"
    peer.reply("+OK event listener enabled plain")
    cmd = peer.command()
    job = cmd.headers["Job-UUID"]
    assert cmd.command == "bgapi originate loopback/x &park"
    peer.send(f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n")
    peer.send(encode_event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "other")], "x"))
    peer.send(encode_event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job)], "+OK u1\n"))
    assert g.get(timeout=2) == "+OK u1\n"


def test_inbound_bgapi_with_a_server_that_picks_its_own_job_uuid(inbound):
    client, peer = inbound
    g = gevent.spawn(client.subscribe, ["ALL"])
    peer.command()
    peer.reply()
    g.get(timeout=2)
    g = gevent.spawn(client.bgapi, "status", 2)
    peer.command()
    # the job's event in the same segment as the reply: before bgapi can learn the uuid
    peer.send(
        b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j9\nJob-UUID: j9\n\n"
        + encode_event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j9")], "UP\n")
    )
    assert g.get(timeout=2) == "UP\n"


def test_inbound_subscribe_filter_and_events(inbound):
    client, peer = inbound
    g = gevent.spawn(client.subscribe, ["CHANNEL_ANSWER", "CUSTOM fsacd::x"], "json")
    assert peer.command().command == "event json CHANNEL_ANSWER CUSTOM fsacd::x"
    peer.reply()
    g.get(timeout=2)
    g = gevent.spawn(client.filter, "Event-Subclass", "fsacd::x")
    assert peer.command().command == "filter Event-Subclass fsacd::x"
    peer.reply()
    g.get(timeout=2)
    body = json.dumps({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u9"})
    peer.send(encode_frame([("Content-Type", "text/event-json")], body))
    assert client.next_event(2).get("Unique-ID") == "u9"
    with pytest.raises(ValueError):
        client.filter("a b", "c")


def test_inbound_connect_errors():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    listener.close()
    with pytest.raises(ESLDisconnected):
        InboundClient(host, port, "x", timeout=0.5).connect()
    # a server that never sends auth/request
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    host, port = listener.getsockname()
    with pytest.raises(ESLTimeout):
        InboundClient(host, port, "x", timeout=0.2).connect()
    listener.accept()[0].close()
    # a rude rejection
    client = InboundClient(host, port, "x", timeout=1)
    g = gevent.spawn(client.connect)
    sock, _ = listener.accept()
    msg = "Access Denied, go away.\n"
    sock.sendall(f"Content-Type: text/rude-rejection\nContent-Length: {len(msg)}\n\n{msg}".encode())
    with pytest.raises(ESLDisconnected):
        g.get(timeout=2)
    sock.close()
    listener.close()


def test_execute_many_writes_the_applications_at_once_and_awaits_every_reply(pair):
    session, peer = pair
    connect(session, peer)
    apps = [("multiset", "^^:a=1:b=2", "u-1"), ("bridge", "loopback/agent-1001", "u-2")]
    g = gevent.spawn(session.execute_many, apps)
    got = [peer.command() for _ in range(2)]  # both written before any reply
    assert [f.headers["execute-app-name"] for f in got] == ["multiset", "bridge"]
    assert [f.headers["event-uuid"] for f in got] == ["u-1", "u-2"]
    assert [f.body.decode() for f in got] == ["^^:a=1:b=2", "loopback/agent-1001"]
    assert all(f.headers["event-lock"] == "true" for f in got)
    peer.reply()
    assert not g.ready()
    peer.reply()
    g.get(timeout=2)
    # an -ERR to one raises once both replies came: the next command stays in step
    g = gevent.spawn(session.execute_many, [("answer", None, "u-3"), ("bogus", None, "u-4")])
    [peer.command() for _ in range(2)]
    peer.reply()
    peer.reply("-ERR invalid application")
    with pytest.raises(CommandError, match="invalid application"):
        g.get(timeout=2)
    session.execute_many([])  # nothing to send
    assert peer.quiet()
