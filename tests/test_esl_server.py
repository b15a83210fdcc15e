"""OutboundServer over real TCP: bad connections drop only themselves, the rest is served."""

import logging
import time
from collections import deque

import gevent
import gevent.socket as gsocket
import pytest
from gevent.event import Event as GEvent

from fsacd.esl.framing import FrameReader, encode_event_plain, encode_frame
from fsacd.esl.server import OutboundServer

NUMBER = "+4922129191999"


def connect_reply(uuid):
    return encode_frame(
        [
            ("Event-Name", "CHANNEL_DATA"),
            ("Unique-ID", uuid),
            ("Caller-Caller-ID-Number", "%2B4922129191999"),
            ("Caller-Caller-ID-Name", "Erika%20Muster"),
            ("Content-Type", "command/reply"),
            ("Reply-Text", "%2BOK%0A"),
        ]
    )


class Phone:
    """FreeSWITCH's side of one outbound-socket call: connects to the server."""

    def __init__(self, address):
        self.sock = gsocket.create_connection(address, timeout=2)
        self.sock.settimeout(None)
        self.reader = FrameReader(commands=True)
        self.inbox = deque()

    def command(self, timeout=2.0):
        with gevent.Timeout(timeout):
            while not self.inbox:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError
                self.inbox.extend(self.reader.feed(data))
        return self.inbox.popleft()

    def eof(self, timeout=2.0):
        """True if the server closes the connection within ``timeout``."""
        try:
            while True:
                self.command(timeout)
        except EOFError:
            return True
        except (gevent.Timeout, OSError):
            return False

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self, text="+OK"):
        self.send(f"Content-Type: command/reply\nReply-Text: {text}\n\n")

    def close(self):
        self.sock.close()


def call_flow(session, done):
    """A well-behaved controller: connect, answer, wait for the answer's completion, hang up."""
    session.connect()
    session.myevents()
    app = session.execute("answer")
    while True:
        ev = session.next_event(5)
        assert ev is not None and ev.name != "SOCKET_CLOSED"
        if ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.get("Application-UUID") == app:
            break
    session.execute("hangup", "NORMAL_CLEARING")
    done.append(session.uuid)


def good_call(address, uuid, gate=None):
    """Play a whole call; ``gate`` holds it in the middle. Returns the commands seen."""
    phone = Phone(address)
    seen = []
    cmd = phone.command()
    seen.append(cmd.command)
    phone.send(connect_reply(uuid))
    seen.append(phone.command().command)
    phone.reply("+OK Events Enabled")
    answer = phone.command()
    seen.append(answer.headers["execute-app-name"])
    phone.reply()
    if gate is not None:
        gate.wait(5)
    phone.send(
        encode_event_plain(
            [
                ("Event-Name", "CHANNEL_EXECUTE_COMPLETE"),
                ("Unique-ID", uuid),
                ("Application", "answer"),
                ("Application-UUID", answer.headers["event-uuid"]),
            ]
        )
    )
    hangup = phone.command()
    seen.append(hangup.headers["execute-app-name"])
    phone.reply()
    assert phone.eof()  # the server closes the socket when the handler returns
    phone.close()
    return seen


BAD = {
    "short-frame-then-eof": b"Content-Type: command/reply\nContent-Length: 500\n\nshort",
    "no-content-type": b"Reply-Text: +OK\n\n",
    "garbage": b"\x00\x01 this is not ESL \xff\n\n",
    "silent": b"",  # never answers: the command times out
}


def bad_call(address, kind):
    phone = Phone(address)
    assert phone.command().command == "connect"
    if kind == "short-frame-then-eof":
        phone.send(BAD[kind])
        phone.close()
        return True
    if BAD[kind]:
        phone.send(BAD[kind])
    closed = phone.eof(3)
    phone.close()
    return closed


@pytest.fixture
def server():
    servers = []

    def make(handler, **kw):
        srv = OutboundServer(("127.0.0.1", 0), handler, **kw)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop(timeout=1)


def test_address_is_the_bound_port(server):
    srv = server(lambda s: None)
    host, port = srv.address
    assert host == "127.0.0.1" and port > 0


def test_a_call_is_served(server):
    done = []
    srv = server(lambda s: call_flow(s, done))
    assert good_call(srv.address, "u1") == ["connect", "myevents", "answer", "hangup"]
    assert done == ["u1"]
    assert srv.active_calls == 0


def test_misbehaving_connections_drop_only_themselves(server, caplog):
    caplog.set_level(logging.INFO)
    done = []
    srv = server(lambda s: call_flow(s, done), command_timeout=0.5)
    gate = GEvent()
    good = gevent.spawn(good_call, srv.address, "good-1", gate)
    deadline = time.monotonic() + 2
    while srv.active_calls < 1 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    bad = {kind: gevent.spawn(bad_call, srv.address, kind) for kind in BAD}
    for kind, g in bad.items():
        assert g.get(timeout=5), kind
    assert not good.ready() and srv.active_calls == 1  # the good call is still in progress
    gate.set()
    assert good.get(timeout=3) == ["connect", "myevents", "answer", "hangup"]
    # and a new call after all that
    assert good_call(srv.address, "good-2")
    assert done == ["good-1", "good-2"]
    assert srv.active_calls == 0
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("fsacd.esl")]
    assert sum(m.endswith(": connection lost") for m in messages) == len(BAD) - 1
    assert sum(m.endswith("handler stopped by ESLTimeout") for m in messages) == 1  # silent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "handler" in r.msg]
    assert NUMBER not in caplog.text


def test_handler_exception_is_logged_without_caller_data(server, caplog):
    def handler(session):
        data = session.connect()
        raise ValueError(f"cannot route caller {data['Caller-Caller-ID-Number']}")

    srv = server(handler)
    phone = Phone(srv.address)
    phone.command()
    phone.send(connect_reply("u-exc"))
    assert phone.eof()
    phone.close()
    assert "ValueError" in caplog.text and "u-exc" in caplog.text
    assert NUMBER not in caplog.text and "Erika" not in caplog.text
    assert srv.active_calls == 0


def test_max_calls_closes_extra_connections_at_once(server):
    def handler(session):
        session.connect()
        while session.next_event(5).name != "SOCKET_CLOSED":
            pass

    srv = server(handler, max_calls=1)
    first = Phone(srv.address)
    first.command()
    first.send(connect_reply("u-first"))
    gevent.sleep(0.05)
    assert srv.active_calls == 1
    extra = Phone(srv.address)
    t0 = time.monotonic()
    assert extra.eof(2) and time.monotonic() - t0 < 0.5  # closed without a command
    extra.close()
    first.close()
    deadline = time.monotonic() + 2
    while srv.active_calls and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert srv.active_calls == 0
    again = Phone(srv.address)
    assert again.command().command == "connect"
    again.close()


def test_stop_ends_running_calls(server):
    def handler(session):
        session.connect()
        while True:
            session.next_event(30)

    srv = OutboundServer(("127.0.0.1", 0), handler)
    runner = gevent.spawn(srv.serve_forever)
    deadline = time.monotonic() + 2
    while not srv.serving and time.monotonic() < deadline:
        gevent.sleep(0.01)
    address = srv.address
    phone = Phone(address)
    phone.command()
    phone.send(connect_reply("u-stop"))
    gevent.sleep(0.05)
    t0 = time.monotonic()
    srv.stop(timeout=0.2)
    assert time.monotonic() - t0 < 1.5
    assert phone.eof(1)
    phone.close()
    runner.join(timeout=1)
    assert runner.dead
    with pytest.raises(OSError):
        Phone(address)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_huge_frames_are_refused_before_they_are_read(server):
    """Peers that are not FreeSWITCH announce 16 MB frames: the connection is dropped at the
    header (the outbound cap is far below), nothing is buffered, the server still serves."""
    from fsacd.esl.framing import OUTBOUND_MAX_BODY_BYTES

    done = []
    srv = server(lambda s: call_flow(s, done))
    before = _rss()
    blob = b"x" * (16 * 1024 * 1024)
    header = b"Content-Type: command/reply\nContent-Length: %d\n\n" % len(blob)
    assert len(blob) > OUTBOUND_MAX_BODY_BYTES

    def hostile() -> bool:
        phone = Phone(srv.address)
        assert phone.command().command == "connect"
        try:
            phone.sock.sendall(header + blob)
        except OSError:
            pass  # the server closed while we were still sending: what we want
        closed = phone.eof(5)
        phone.close()
        return closed

    peers = [gevent.spawn(hostile) for _ in range(10)]
    assert all(g.get(timeout=30) for g in peers)
    grown = _rss() - before
    assert grown < 100 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    assert good_call(srv.address, "after-the-flood")
    assert done == ["after-the-flood"]
