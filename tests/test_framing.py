"""ESL framing: replay of the real FreeSWITCH transcripts, decoding order, safe commands."""

import json
from urllib.parse import unquote

import greenswitch.esl as gs
import pytest

from fsacd.esl.framing import (
    EventHeaders,
    FrameReader,
    FramingError,
    encode_command,
    encode_event_plain,
    encode_execute,
    frame_event,
    parse_event_plain,
    split_frames,
    url_encode,
)


def load(path):
    """The records of one transcript: (dir, bytes) in order."""
    with open(path, encoding="utf-8") as f:
        return [(r["dir"], r["data"].encode("utf-8")) for r in map(json.loads, f)]


def chunks(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def cut_with_split_frames(pieces, commands=False):
    """Frames from feeding ``pieces`` one by one through the pure split_frames."""
    frames, rest = [], b""
    for piece in pieces:
        got, rest = split_frames(rest + piece, commands=commands)
        frames.extend(got)
    return frames, rest


def cut_with_reader(pieces, commands=False):
    reader = FrameReader(commands=commands)
    frames = [f for piece in pieces for f in reader.feed(piece)]
    return frames, reader.pending


def test_every_transcript_splits_the_same_whatever_the_segmentation(transcripts_dir):
    files = sorted(transcripts_dir.glob("*.jsonl"))
    assert len(files) >= 12
    for path in files:
        records = load(path)
        received = [d for direction, d in records if direction == "in"]
        stream = b"".join(received)
        expected, rest = split_frames(stream)
        assert rest == b"", path.name
        assert expected and all(f.content_type for f in expected), path.name
        cuts = {"recv": received, **{str(n): chunks(stream, n) for n in (1, 7, 13, 97, 4096)}}
        for name, pieces in cuts.items():
            assert cut_with_reader(pieces) == (expected, 0), (path.name, name)
            if name != "1":  # the pure function re-parses a partial header per call: slow
                assert cut_with_split_frames(pieces) == (expected, b""), (path.name, name)
        for frame in expected:
            if frame.content_type in ("text/event-plain", "text/event-json"):
                assert frame_event(frame).name, path.name
        # what the controller sent parses as whole commands (several when pipelined)
        for direction, data in records:
            if direction == "out":
                frames, rest = split_frames(data, commands=True)
                assert frames and rest == b"" and all(f.command for f in frames), path.name


def test_transcript_event_values_are_decoded_after_splitting(transcripts_dir):
    records = load(transcripts_dir / "outbound-answer-playback-dtmf-bridge-hangup.jsonl")
    frames, _ = split_frames(b"".join(d for direction, d in records if direction == "in"))
    connect = frames[0].decoded_headers()
    assert connect["Reply-Text"] == "+OK\n"  # %2BOK%0A: the newline stays in the value
    assert connect["Caller-Caller-ID-Number"] == "+4922129191999"
    assert connect["Socket-Mode"] == "async"
    kinds = [f.content_type for f in frames]
    assert "text/disconnect-notice" in kinds


def test_encoded_newline_stays_inside_its_header():
    body = b"Event-Name: CUSTOM\nX-Note: a%0AInjected: yes\nUnique-ID: u1\n\n"
    event = parse_event_plain(body)
    assert event.get("X-Note") == "a\nInjected: yes"
    assert "Injected" not in event.headers
    assert event.name == "CUSTOM" and event.get("Unique-ID") == "u1"
    # round trip through the server-side encoder
    frames, _ = split_frames(encode_event_plain([("Event-Name", "CUSTOM"), ("X", "1\n2: 3")]))
    assert frame_event(frames[0]).headers == {"Event-Name": "CUSTOM", "X": "1\n2: 3"}


def test_bare_greenswitch_missplits_an_encoded_newline():
    """Weakness 1 shown on greenswitch itself: it decodes the frame before splitting lines."""
    event = gs.ESLEvent("X-Note: a%0AInjected: yes")
    assert event.headers.get("Injected") == "yes"


def test_execute_argument_is_a_body_and_cannot_inject_a_command():
    arg = "x.wav\n\nsendmsg\ncall-command: execute\nexecute-app-name: hangup\n\n"
    raw = encode_execute("playback", arg, event_uuid="e1")
    frames, rest = split_frames(raw, commands=True)
    assert rest == b"" and len(frames) == 1
    (frame,) = frames
    assert frame.command == "sendmsg"
    assert frame.body.decode() == arg
    assert frame.headers["event-lock"] == "true"
    assert frame.headers["event-uuid"] == "e1"
    assert frame.headers["execute-app-name"] == "playback"
    assert "execute-app-arg" not in frame.headers
    # the same bytes a byte at a time
    assert cut_with_reader(chunks(raw, 1), commands=True) == (frames, 0)


def test_execute_options():
    assert b"event-lock" not in encode_execute("answer", event_lock=False)
    frame = split_frames(encode_execute("answer", uuid="u2", loops=2), commands=True)[0][0]
    assert frame.command == "sendmsg u2" and frame.headers["loops"] == "2" and not frame.body
    for bad in ("", "play back", "x\nexit", "a:b"):
        with pytest.raises(ValueError):
            encode_execute(bad)


@pytest.mark.parametrize(
    "command, headers",
    [
        ("api status\n\nexit", ()),
        ("api status\rexit", ()),
        ("sendmsg", [("call-command", "execute\nexecute-app-name: hangup")]),
        ("sendmsg", [("call-command\r", "execute")]),
        ("sendmsg", [("a: b", "c")]),
    ],
)
def test_encode_command_refuses_line_breaks(command, headers):
    with pytest.raises(ValueError):
        encode_command(command, headers)


def test_encode_command_body_has_its_length():
    raw = encode_command("sendmsg", [("x", "1")], "a\n\nb")
    frames, rest = split_frames(raw, commands=True)
    assert rest == b"" and frames[0].body == b"a\n\nb" and frames[0].headers["x"] == "1"


def test_command_line_may_hold_a_colon():
    frames, _ = split_frames(b"api originate sofia/gw/x/sip:1@h &park\n\n", commands=True)
    assert frames[0].command == "api originate sofia/gw/x/sip:1@h &park"
    assert frames[0].headers == {}


def test_garbage_and_limits_are_framing_errors():
    with pytest.raises(FramingError):
        split_frames(b"hello world\n\n")
    with pytest.raises(FramingError):
        split_frames(b"Content-Type: x\nContent-Length: -5\n\n")
    with pytest.raises(FramingError):
        FrameReader().feed(b"Content-Type: x\nContent-Length: 99999999999\n\n")
    reader = FrameReader()
    with pytest.raises(FramingError):
        for piece in chunks(b"X: " + b"a" * (300 * 1024), 64 * 1024):
            reader.feed(piece)


def test_short_frame_stays_pending():
    reader = FrameReader()
    assert reader.feed(b"Content-Type: api/response\nContent-Length: 10\n\nabc") == []
    assert reader.pending > 0
    assert reader.feed(b"defghij") and reader.pending == 0


def test_url_encode_round_trip():
    value = "+49 221 / Müller: a%0A\nb"
    assert url_encode("+49 1") == "%2B49%201"
    event = parse_event_plain(f"V: {url_encode(value)}\n\n".encode())
    assert event.get("V") == value.replace("%0A", "\n")  # an existing escape is kept as is


def test_reader_refuses_a_body_over_its_cap_at_the_header():
    reader = FrameReader(max_body=10)
    assert reader.feed(b"Content-Type: text/plain\nContent-Length: 10\n\n0123456789")
    with pytest.raises(FramingError, match="larger than 10"):
        reader.feed(b"Content-Type: text/plain\nContent-Length: 11\n\n")


def _eager_reference(body):
    """The parser as it was before values were decoded lazily: every value at once."""
    text = body.split(b"\n\n", 1)[0].decode("utf-8")
    headers, names = {}, []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line:
            name, _, value = line.partition(":")
            headers[name.strip()] = unquote(value.lstrip(" "), errors="replace")
            names.append(name.strip())
    return headers, names


def test_lazy_event_headers_equal_eager_decoding_on_every_recorded_event(transcripts_dir):
    seen = dups = 0
    for path in sorted(transcripts_dir.glob("*.jsonl")):
        stream = b"".join(d for direction, d in load(path) if direction == "in")
        frames, _ = split_frames(stream)
        for frame in frames:
            if frame.content_type != "text/event-plain":
                continue
            event = parse_event_plain(frame.body)
            want, names = _eager_reference(frame.body)
            assert isinstance(event.headers, EventHeaders)
            assert list(event.headers) == list(want) and event.header_names == names, path.name
            assert dict(event.headers) == want and event.headers == want, path.name
            seen += 1
            dups += len(names) > len(want)
    assert seen > 200
    assert dups  # FreeSWITCH repeats Hangup-Cause in CHANNEL_HANGUP_COMPLETE: the last one wins


def test_event_headers_decode_each_value_when_read_and_keep_the_raw_one():
    event = parse_event_plain(b"Event-Name: CUSTOM\nCaller: %2B49%20221\nPlain: x\n\n")
    headers = event.headers
    assert headers.raw("Caller") == "%2B49%20221" and headers.raw("Nope") is None
    assert headers["Caller"] == "+49 221" and headers.get("Caller") == "+49 221"
    assert headers.get("Plain") == "x" and headers.get("Nope", "d") == "d"
    assert "Caller" in headers and "Nope" not in headers and len(headers) == 3
    with pytest.raises(KeyError):
        headers["Nope"]
    with pytest.raises(TypeError):
        headers["Caller"] = "changed"  # read-only, like the event it came from
    assert event.var("x") is None and event.name == "CUSTOM"
    # a broken escape decodes as FreeSWITCH's values did before: replaced, not an error
    assert parse_event_plain(b"Bad: %FF%zz\n\n").get("Bad") == "\ufffd%zz"


def test_event_with_an_inner_body_and_duplicate_or_crlf_headers():
    event = parse_event_plain(b"Event-Name: BACKGROUND_JOB\nContent-Length: 4\n\n+OK\nrest")
    assert event.body == "+OK\n" and event.get("Content-Length") == "4"
    event = parse_event_plain(b"A: 1\r\nB: %20x\r\nA: 2\r\n\r\n")
    assert dict(event.headers) == {"A": "2", "B": " x"} and event.header_names == ["A", "B", "A"]
    with pytest.raises(FramingError):
        parse_event_plain(b"Event-Name: X\nno colon here\n\n")


def test_crlf_terminator_is_found_before_lf_lf_but_not_after_it():
    two = b"Content-Type: a\r\nContent-Length: 1\r\n\r\nxContent-Type: b\n\n"
    frames, rest = split_frames(two)
    assert [f.content_type for f in frames] == ["a", "b"] and frames[0].body == b"x"
    assert rest == b""
    # a CRLF CRLF later in the buffer (another frame's) does not end the first header block
    many = b"Content-Type: c\n\n" + b"Content-Type: d\r\nX: 1\r\n\r\n"
    frames, _ = split_frames(many)
    assert [(f.content_type, f.headers.get("X")) for f in frames] == [("c", None), ("d", "1")]
    assert cut_with_reader(chunks(two + many, 3)) == (split_frames(two + many)[0], 0)
