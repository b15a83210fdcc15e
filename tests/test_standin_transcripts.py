"""Replay every recorded FreeSWITCH conversation against the stand-in and compare frames.

A tiny scripted controller sends exactly the transcript's ``out`` commands (uuids of this
run substituted), each once as many frames have arrived as had arrived in the recording
before it (plus the recorded pause). What the recording's test harness did on the side is
redone the same way: a DTMF the recording shows is injected with ``uuid_recv_dtmf``, a
CHANNEL_HANGUP no controller command caused is a ``uuid_kill`` with the recorded cause.
Phones behave like the recording's dialplan (agent-N answers, noanswer-N rings, busy-N is
busy, reject-N rejects, early-N sends early media, slow-N answers after 1.5 s), with talk and
early-media times shortened so the suite stays fast.

Compared per frame: Content-Type, Reply-Text, api/response bodies, event names, the ordered
header names (``variable_*`` included, in order), and every header value as sent on the wire
(URL-encoded), except values that are times, counters, host data or durations; uuids are
compared through a first-seen mapping, so identities (Other-Leg-Unique-ID = the leg created
for the bridge ...) must match too. Known, accepted differences: ``ACCEPTED_DIFFERENCES``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import gevent
import pytest
from gevent import socket

from fsacd.esl.framing import Frame, FrameReader, frame_event
from fsacd.standin import FakeFreeSwitch, PhoneBehaviour

#: the stand-in's clock is checked here, not the garbage collector's (conftest.no_gc)
pytestmark = pytest.mark.usefixtures("no_gc")

OUTBOUND = [
    "outbound-answer-playback-dtmf-bridge-hangup",
    "outbound-bridge-no-answer",
    "outbound-ring-all",
    "outbound-caller-hangs-up-while-waiting",
    "outbound-privacy-and-caller-id",
    "moh-break-bridge-ringback-record",
    "busy-then-reject",
    "ring-all-early-media",
    "ivr-no-input-invalid-pressahead",
    "outbound-json-events",
    "timing-queue-flush",
    "pipelined-and-event-lock",
    "answer-multiset-bridge-pipelined",
    "bridge-before-answer",
    "pre-answer-moh-bridge",
    "outbound-own-events",
]
INBOUND = ["inbound-api-bgapi-events", "inbound-bad-password"]

#: Differences between the stand-in and the recordings that are accepted:
#: transcript name → set of (frame index, header name). The loopback B legs run the stand-in's
#: phone script (ring until cancelled; talk 2 s), not the recording dialplan's ``sleep 60000``
#: / ``sleep 30000``, so their last application's argument differs.
ACCEPTED_DIFFERENCES: dict[str, set[tuple[int, str]]] = {
    "inbound-api-bgapi-events": {
        (9, "variable_current_application_data"),
        (9, "variable_last_arg"),
        (19, "variable_current_application_data"),
        (19, "variable_last_arg"),
    },
}

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Headers whose values depend on the host or the moment.
VOLATILE = {
    "FreeSWITCH-Hostname",
    "FreeSWITCH-Switchname",
    "FreeSWITCH-IPv4",
    "FreeSWITCH-IPv6",
    "Event-Date-Local",
    "Event-Date-GMT",
    "Event-Date-Timestamp",
    "Event-Sequence",
    "Event-Calling-Line-Number",  # differs between builds of the same release
    "variable_session_id",
    "Content-Length",
}
#: Variables telling whether something happened (compared as "zero or not").
WHEN_VAR = re.compile(r"variable_.*(epoch|stamp)$")
#: Variables measuring durations and sizes (not compared: they depend on timing).
MEASURE_VAR = re.compile(r"variable_.*(sec|duration|_ms|_samples|_seconds|_pos|file_size)$")


def phones(fs: FakeFreeSwitch) -> None:
    """The recordings' dialplan as phone behaviours (times shortened)."""
    fs.phones.register("loopback/agent-*", PhoneBehaviour.answers(talk=1.3))
    fs.phones.register("loopback/noanswer-*", PhoneBehaviour.never_answers())
    fs.phones.register("loopback/busy-*", PhoneBehaviour.busy())
    fs.phones.register("loopback/reject-*", PhoneBehaviour.rejects())
    fs.phones.register("loopback/early-*", PhoneBehaviour.early_media(give_up=1.8))
    fs.phones.register("loopback/slow-*", PhoneBehaviour.answers(after=1.5, talk=1.3))


def load(transcripts_dir: Path, name: str) -> list[dict]:
    path = transcripts_dir / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recorded_frames(records: list[dict]) -> list[tuple[float, Frame]]:
    reader = FrameReader()
    out = []
    for r in records:
        if r["dir"] == "in":
            out.extend((r["t"], f) for f in reader.feed(r["data"].encode()))
    return out


def plan(records: list[dict], frames: list[tuple[float, Frame]]) -> list[tuple]:
    """(kind, frames needed first, pause, data): the controller's and the harness's steps."""
    steps: list[tuple] = []
    reader = FrameReader()
    count, last_t = 0, 0.0
    for r in records:
        if r["dir"] == "in":
            n = len(reader.feed(r["data"].encode()))
            if n:
                count += n
                last_t = r["t"]
        else:
            steps.append(("out", count, r["t"] - last_t, r["data"]))
    for i, (t, f) in enumerate(frames):
        ev = frame_event(f)
        if ev is None:
            continue
        pause = t - frames[i - 1][0] if i else 0.0
        if ev.name == "DTMF":
            steps.append(("dtmf", i, pause, ev.get("DTMF-Digit")))
        elif ev.name == "CHANNEL_HANGUP":
            caused = any(s[0] == "out" and s[1] <= i and "hangup" in s[3] for s in steps)
            if not caused:
                steps.append(("kill", i, pause, ev.get("Hangup-Cause")))
    steps.sort(key=lambda s: (s[1], s[0] != "out"))
    return steps


class Receiver:
    """Collects the frames the stand-in writes on one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: list[tuple[float, Frame]] = []
        self.closed = False
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        reader = FrameReader()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            self.frames.extend((time.time(), f) for f in reader.feed(data))

    def wait_count(self, n: int, timeout: float = 15.0) -> None:
        end = time.time() + timeout
        while len(self.frames) < n:
            if time.time() > end:
                raise AssertionError(f"only {len(self.frames)} frames, waited for {n}")
            gevent.sleep(0.001)


def run_steps(
    steps, rx: Receiver, send, fs, caller: str, uuid_subst: dict[str, str]
) -> list[tuple[int, float]]:
    """Run the steps; (frames seen before it, time sent) of every controller command."""
    t0 = time.time()
    sent: list[tuple[int, float]] = []
    for kind, need, pause, data in steps:
        rx.wait_count(need)
        base = rx.frames[need - 1][0] if need else t0
        delay = base + max(min(pause, 1.0), 0.0) - time.time()
        if delay > 0:
            gevent.sleep(delay)
        if kind == "out":
            for old, new in uuid_subst.items():
                data = data.replace(old, new)
            sent.append((need, time.time()))
            send(data.encode())
        elif kind == "dtmf":
            fs.execute_api(f"uuid_recv_dtmf {caller} {data}")
        elif kind == "kill":
            fs.execute_api(f"uuid_kill {caller} {data}")
    return sent


def first_tick(records: list[dict], frames: list[tuple[float, Frame]]) -> float:
    """The recorded phase of the media clock: from ``connect`` to CHANNEL_PARK (0-20 ms).

    At least 8 ms: CHANNEL_PARK must not fire before the replayed ``myevents`` arrived (the
    recording harness answered faster than this replay on a busy machine does; a park that
    fires first is simply not delivered, on a real switch too). A recording not subscribed
    to CHANNEL_PARK gives the phase by its first CHANNEL_EXECUTE (ticks are 20 ms apart)."""
    connect = next(r["t"] for r in records if r["dir"] == "out")
    events = [(t, ev.name) for t, f in frames if (ev := frame_event(f))]
    park = next((t for t, name in events if name == "CHANNEL_PARK"), None)
    if park is None:
        first = next(t for t, name in events if name == "CHANNEL_EXECUTE")
        park = connect + (first - connect) % 0.02
    return min(max(park - connect, 0.008), 0.02)


def recorded_caller(connect_reply: Frame, port: int) -> tuple[int, dict, dict]:
    """The port the recorded caller's ``socket`` connected to, and the variables the test
    dialplan's ``fsacd_test_socket`` extension gave it (rewritten for ``port``): the ones of
    the originate's ``{...}`` block and the one its condition set (``DP_MATCH``)."""
    h = connect_reply.decoded_headers()
    target = h["variable_current_application_data"].split(" ")[0]
    recorded = int(target.rsplit(":", 1)[1])
    originate, dialplan = {}, {}
    if "variable_fsacd_test_socket" in h:
        originate["fsacd_test_socket"] = f"127.0.0.1:{port}"
    if "variable_DP_MATCH" in h:
        dialplan["DP_MATCH"] = h["variable_DP_MATCH"].replace(f":{recorded}", f":{port}")
    return recorded, originate, dialplan


def buffered_frames(records: list[dict]) -> set[int]:
    """Frames whose recorded time says nothing: the recording harness slept (> 30 ms without
    reading) and picked them up just after it woke to send a command."""
    reader = FrameReader()
    count, last_in, last_out, out = 0, 0.0, None, set()
    for r in records:
        if r["dir"] == "out":
            last_out = (r["t"], r["t"] - last_in)
            continue
        n = len(reader.feed(r["data"].encode()))
        if last_out and r["t"] - last_out[0] < 0.0015 and last_out[1] > 0.03:
            out.update(range(count, count + n))
        count += n
        last_in = r["t"]
    return out


def recorded_sends(records: list[dict]) -> list[tuple[int, float]]:
    """(frames seen before it, time sent) of every command in the recording."""
    reader = FrameReader()
    count, out = 0, []
    for r in records:
        if r["dir"] == "in":
            count += len(reader.feed(r["data"].encode()))
        else:
            out.append((count, r["t"]))
    return out


#: Only delays shorter than this are compared (longer ones are phones' scripts and harness
#: pauses, shortened in the replay).
TIMED_UP_TO = 0.1
#: Slack of the timing comparison: recv() returned late, a busy machine (seconds).
EARLY_SLACK = 0.012
LATE_SLACK = 0.030
#: A channel's media tick (the recordings' switch ran at the default 20 ms).
TICK = 0.020


def delays(frames: list[tuple[float, Frame]], sends: list[tuple[int, float]]) -> list[float | None]:
    """Per frame: seconds since the latest command sent before it (None before any)."""
    out: list[float | None] = []
    for i, (t, _) in enumerate(frames):
        before = [ts for need, ts in sends if need <= i]
        out.append(t - before[-1] if before else None)
    return out


def send_lags(
    want: list[tuple[float, Frame]],
    want_sends: list[tuple[int, float]],
    got: list[tuple[float, Frame]],
    got_sends: list[tuple[int, float]],
) -> list[float]:
    """Per frame: how much later (since the first frame) the replay sent the command before
    it than the recording did. A command sent late lands nearer the channel's next media
    tick, so what it starts may come that much sooner after it, as on FreeSWITCH."""
    if not want or not got:
        return []
    w0, g0 = want[0][0], got[0][0]
    out = []
    for i in range(len(got)):
        k = [j for j, (need, _) in enumerate(got_sends) if need <= i]
        if not k or k[-1] >= len(want_sends):
            out.append(0.0)
            continue
        lag = (got_sends[k[-1]][1] - g0) - (want_sends[k[-1]][1] - w0)
        out.append(max(0.0, lag))
    return out


def compare_timing(
    name: str,
    want: list[tuple[float, Frame]],
    want_sends: list[tuple[int, float]],
    got: list[tuple[float, Frame]],
    got_sends: list[tuple[int, float]],
    skip: set[int],
) -> None:
    """Events must come as many media ticks after the command that led to them as recorded:
    never sooner (the stand-in may not be kinder than FreeSWITCH), not much later."""
    problems = []
    pairs = zip(delays(want, want_sends), delays(got, got_sends), strict=True)
    lags = send_lags(want, want_sends, got, got_sends)
    for i, (dw, dg) in enumerate(pairs):
        if dw is None or dg is None or dw > TIMED_UP_TO or i in skip:
            continue
        if frame_items(want[i][1])[0] != "event":
            continue
        # a command the replay sent late may find the next tick sooner, by at most a tick
        early = EARLY_SLACK + min(lags[i], TICK)
        if not dw - early <= dg <= dw * 1.1 + LATE_SLACK:
            ev = frame_event(want[i][1])
            problems.append(
                f"#{i} {ev.name if ev else '?'}: {dg * 1000:.1f} ms after the command, "
                f"recorded {dw * 1000:.1f} ms"
            )
    assert not problems, f"{name}: timing differs\n" + "\n".join(problems[:40])


# --- comparison ------------------------------------------------------------------------------


class UuidMap:
    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            return self.seen.setdefault(m.group(0), f"<uuid{len(self.seen) + 1}>")

        return UUID_RE.sub(sub, text)


def raw_lines(block: bytes) -> list[tuple[str, str]]:
    out = []
    for line in block.decode().split("\n"):
        if line:
            k, _, v = line.partition(": ")
            out.append((k, v))
    return out


def frame_items(f: Frame) -> tuple[str, list[tuple[str, str]], str]:
    """(kind, ordered raw header items, body) of a frame, events unwrapped."""
    ct = f.content_type or ""
    if ct == "text/event-plain":
        head, _, body = f.body.partition(b"\n\n")
        return "event", raw_lines(head), body.decode()
    if ct == "text/event-json":
        data = json.loads(f.body)
        body = data.pop("_body", "")
        items = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
        return "event", items, body
    head = f.body  # not used for other frames
    items = [(k, f.headers[k]) for k in f.raw_header_names]
    return ct, items, f.body.decode() if head else ""


def normalise_value(name: str, value: str, ids: UuidMap) -> str | None:
    if name in VOLATILE:
        return None
    if name.endswith("-Time") or name.endswith("-Last-Hold") or name.endswith("-Hold-Accum"):
        return "0" if value == "0" else "set"
    if WHEN_VAR.match(name):
        return "0" if value == "0" else "set"
    if MEASURE_VAR.match(name):
        return None
    return ids(value)


REPLIES = ("command/reply", "api/response")


def interleave_like(
    want: list[tuple[float, Frame]], got: list[tuple[float, Frame]]
) -> list[tuple[float, Frame]]:
    """``got`` with its command replies and its events merged in the recording's pattern.

    FreeSWITCH writes a command's reply from the listener and events from the channel's
    event queue: each stream keeps its order, how the two interleave is a race (CHANNEL_PARK
    came before or after the replies to the first commands, depending on the media clock's
    phase). Each stream's order is compared; the interleaving is taken from the recording.
    """
    replies = [x for x in got if (x[1].content_type or "") in REPLIES]
    others = [x for x in got if (x[1].content_type or "") not in REPLIES]
    out = []
    for _, f in want:
        pool = replies if (f.content_type or "") in REPLIES else others
        if not pool:
            return got  # counts differ: the kinds comparison says so
        out.append(pool.pop(0))
    return out + replies + others


def compare(
    name: str,
    want: list[tuple[float, Frame]],
    got: list[tuple[float, Frame]],
    fixes: dict[str, str] | None = None,
) -> None:
    """Assert ``got`` matches the recording; ``fixes`` rewrites run-specific text (ports)."""
    accepted = ACCEPTED_DIFFERENCES.get(name, set())
    problems: list[str] = []
    want_ids, got_ids = UuidMap(), UuidMap()
    assert [frame_items(f)[0] for _, f in got] == [frame_items(f)[0] for _, f in want], (
        "frame kinds differ"
    )
    for i, ((_, wf), (_, gf)) in enumerate(zip(want, got, strict=True)):
        wkind, witems, wbody = frame_items(wf)
        gkind, gitems, gbody = frame_items(gf)
        wnames = [k for k, _ in witems]
        gnames = [k for k, _ in gitems]
        if wnames != gnames and (i, "*names*") not in accepted:
            problems.append(f"#{i} header names differ:\n  want {wnames}\n  got  {gnames}")
            continue
        for (k, wv), (_, gv) in zip(witems, gitems, strict=True):
            if (i, k) in accepted:
                continue
            for old, new in (fixes or {}).items():
                gv = gv.replace(old, new)
            a, b = normalise_value(k, wv, want_ids), normalise_value(k, gv, got_ids)
            if a != b:
                problems.append(f"#{i} {k}: want {wv!r} got {gv!r}")
        if wkind == "api/response" and wbody.startswith("UP "):
            pattern = re.sub(r"\d+(\.\d+)?", "N", wbody)
            if re.sub(r"\d+(\.\d+)?", "N", gbody) != pattern:
                problems.append(f"#{i} status body: {gbody!r}")
        elif want_ids(wbody) != got_ids(gbody):
            problems.append(f"#{i} body: want {wbody!r} got {gbody!r}")
    assert not problems, f"{name}: {len(problems)} differences\n" + "\n".join(problems[:40])


# --- tests -----------------------------------------------------------------------------------



@pytest.mark.parametrize("name", OUTBOUND)
def test_outbound_transcript(name: str, transcripts_dir: Path) -> None:
    records = load(transcripts_dir, name)
    want = recorded_frames(records)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    fs = FakeFreeSwitch(
        socket_target=server.getsockname(),
        inbound=None,
        heartbeat_interval=None,
        first_tick=first_tick(records, want),
    )
    phones(fs)
    fs.start()
    try:
        port = server.getsockname()[1]
        recorded_port, originate_vars, dialplan_vars = recorded_caller(want[0][1], port)
        call = fs.place_call(
            destination="5000",
            caller_number="+4922129191999",
            originate_variables=originate_vars,
            variables=dialplan_vars,
        )
        conn, _ = server.accept()
        rx = Receiver(conn)
        recorded_uuid = want[0][1].headers["Unique-ID"]
        sent = run_steps(
            plan(records, want), rx, conn.sendall, fs, call.uuid, {recorded_uuid: call.uuid}
        )
        rx.wait_count(len(want))
        gevent.sleep(0.1)
        got = interleave_like(want, rx.frames)
        fixes = {f"%3A{port}": f"%3A{recorded_port}", f":{port} ": f":{recorded_port} "}
        compare(name, want, got, fixes)
        compare_timing(name, want, recorded_sends(records), got, sent, buffered_frames(records))
        assert not fs.errors
        assert call.hangup_cause is not None
        conn.close()
    finally:
        fs.stop()
        server.close()


@pytest.mark.parametrize("name", INBOUND)
def test_inbound_transcript(name: str, transcripts_dir: Path) -> None:
    records = load(transcripts_dir, name)
    want = recorded_frames(records)
    fs = FakeFreeSwitch(socket_target=("127.0.0.1", 9), heartbeat_interval=None)
    phones(fs)
    fs.start()
    try:
        assert fs.inbound_address is not None
        conn = socket.create_connection(fs.inbound_address)
        rx = Receiver(conn)
        run_steps(plan(records, want), rx, conn.sendall, fs, "", {})
        rx.wait_count(len(want))
        gevent.sleep(0.1)
        compare(name, want, rx.frames)
        if name == "inbound-bad-password":
            rx.greenlet.join(2)
            assert rx.closed, "the stand-in must close the socket after -ERR invalid"
        assert not fs.errors
        conn.close()
    finally:
        fs.stop()


def test_transcript_list_is_complete(transcripts_dir: Path) -> None:
    names = {p.stem for p in transcripts_dir.glob("*.jsonl")}
    assert names == set(OUTBOUND) | set(INBOUND)
