"""What a waiting caller costs, and what a busy spell leaves behind (docs/performance.md,
"Memory"): the pieces that keep them small, each against the real thing."""

from __future__ import annotations

import gc

import gevent
import pytest
import redis

from fsacd.acd import memory
from fsacd.acd.callflow import CallFlow, _completion_marker
from fsacd.esl.framing import ChannelData, Event, FrameReader
from fsacd.esl.mailbox import Empty, Mailbox
from fsacd.standin.bus import one_channel_filter
from fsacd.state import pool
from fsacd.state.connection import close, connect
from tests.acd_harness import Acd, wait_for

# --- Mailbox ----------------------------------------------------------------------------------


def test_a_mailbox_is_fifo_waits_with_a_timeout_and_wakes_its_reader():
    box: Mailbox[int] = Mailbox()
    with pytest.raises(Empty):
        box.get(0)
    with pytest.raises(Empty):
        box.get(timeout=0.05)
    box.put(1)
    box.put(2)
    assert len(box) == 2 and not box.empty()
    assert [box.get(0), box.get_nowait()] == [1, 2] and box.empty()
    later = gevent.spawn_later(0.05, box.put, 3)
    assert box.get(timeout=5) == 3
    later.join()


# --- ChannelData --------------------------------------------------------------------------------


def _connect_reply(transcripts_dir):
    import json

    path = transcripts_dir / "answer-multiset-bridge-pipelined.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    reply = next(r["data"] for r in rows if r["dir"] == "in")
    (frame,) = FrameReader().feed(reply.encode())
    return frame


def test_channel_data_reads_like_the_decoded_headers_of_a_real_connect_reply(transcripts_dir):
    frame = _connect_reply(transcripts_dir)
    data = ChannelData(frame.headers)
    decoded = frame.decoded_headers()
    assert dict(data) == decoded and list(data) == list(decoded) and len(data) == len(decoded)
    assert data["Channel-Caller-ID-Name"] == "Erika Muster"  # URL-decoded when read
    assert data.raw("Channel-Caller-ID-Name") == "Erika%20Muster"
    assert "Unique-ID" in data and "No-Such-Header" not in data
    assert data.get("No-Such-Header", "x") == "x"
    with pytest.raises(KeyError):
        data["No-Such-Header"]
    # a name is matched whole, never as the tail of a value or another name
    assert data.get("ID-Name") is None and data.get("Caller-ID-Name: Erika") is None


def test_channel_data_keeps_values_with_colons_and_refuses_a_line_break():
    data = ChannelData({"a": "b: c", "v": "x%0Ay", "empty": ""})
    assert data["a"] == "b: c" and data["v"] == "x\ny" and data["empty"] == ""
    with pytest.raises(ValueError):
        ChannelData({"a": "line\nbreak"})


# --- completions nobody waits for ---------------------------------------------------------------


def _bare_flow() -> CallFlow:
    flow = CallFlow.__new__(CallFlow)
    flow._apps_started, flow._apps_done, flow._unawaited = set(), {}, set()
    return flow


def _completion(app_uuid: str, n: int = 80) -> Event:
    headers = {"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Application": "answer",
               "Application-UUID": app_uuid, "Application-Response": "_none_"}  # fmt: skip
    headers.update({f"variable_v{i}": "x" * 40 for i in range(n)})
    return Event(headers)


def test_an_unawaited_completion_is_kept_as_a_marker_an_awaited_one_whole():
    flow = _bare_flow()
    flow._unawaited.add("fire-and-forget")
    flow._note_app(_completion("fire-and-forget"))
    flow._note_app(_completion("waited-for"))
    marker = flow._apps_done["fire-and-forget"]
    assert len(marker.headers) <= 5 and marker.get("Application-Response") == "_none_"
    assert len(flow._apps_done["waited-for"].headers) > 80
    assert not flow._unawaited
    assert _completion_marker(_completion("u")).name == "CHANNEL_EXECUTE_COMPLETE"


def _big_events(objects) -> list[Event]:
    return [o for o in objects if isinstance(o, Event) and len(o.headers) > 10]


def test_a_caller_on_hold_keeps_no_whole_event(redis_url):
    """Every event a real channel sends is 100-300 headers: a waiting call keeps none (its
    completions are markers, no frame holds the last one) while the music plays."""
    acd = Acd(redis_url)
    try:
        call = acd.fs.place_call(destination="5000")
        wait_for(lambda: any(k == "moh" for k, _ in call.heard), what="hold music")
        gevent.sleep(0.3)
        # this call's flow (an earlier test's may still wait for a collection)
        (flow,) = [
            o for o in gc.get_objects() if type(o) is CallFlow and o.state.uuid == call.uuid
        ]
        assert flow.state.phase == "waiting"
        assert _big_events(flow._apps_done.values()) == []
        assert _big_events(vars(flow).values()) == [] and flow.inbox.empty()
        held = []
        for g in gc.get_objects():
            if isinstance(g, gevent.Greenlet) and g.gr_frame is not None:
                frame = g.gr_frame
                while frame is not None:
                    held += _big_events(frame.f_locals.values())
                    frame = frame.f_back
        assert held == []
        assert isinstance(flow.data, ChannelData) and flow.data.get("Unique-ID") == call.uuid
        call.hangup()
        wait_for(lambda: not acd.ctl.active_calls, what="the call's end")
    finally:
        acd.stop()


# --- the stand-in's bus ----------------------------------------------------------------------


def test_one_channel_filter_names_the_uuid_only_when_nothing_else_can_pass():
    assert one_channel_filter([("Unique-ID", "ABC")]) == "abc"
    assert one_channel_filter([("unique-id", "+abc"), ("Unique-ID", "abc")]) == "abc"
    assert one_channel_filter([("Unique-ID", "a"), ("Unique-ID", "b")]) is None
    assert one_channel_filter([("Unique-ID", "-abc")]) is None
    assert one_channel_filter([("Unique-ID", "/ab.*/")]) is None
    assert one_channel_filter([("Unique-ID", "abc"), ("Event-Name", "DTMF")]) is None
    assert one_channel_filter([("Unique-ID", "")]) is None


# --- Redis connections a busy spell opened ------------------------------------------------


def _spell(client, n: int) -> None:
    jobs = [gevent.spawn(client.blpop, [f"nothing-{i}"], 0.2) for i in range(n)]
    gevent.joinall(jobs, timeout=20)
    assert all(j.successful() for j in jobs)


@pytest.mark.parametrize("kind", ["blocking", "plain"])
def test_idle_connections_of_a_busy_spell_are_closed_and_the_pool_still_serves(redis_url, kind):
    client = connect(redis_url) if kind == "blocking" else redis.Redis.from_url(redis_url)
    try:
        _spell(client, 40)
        opened, idle = pool.pool_counts(client)
        assert opened >= 30 and idle == opened
        assert pool.close_idle(client, idle_for=3600) == 0  # used a moment ago: kept
        closed = pool.close_idle(client, idle_for=0)
        assert closed == opened - pool.KEEP_IDLE
        assert pool.pool_counts(client) == (pool.KEEP_IDLE, pool.KEEP_IDLE)
        assert client.ping()
        _spell(client, 40)  # opened again on demand
        assert pool.pool_counts(client)[0] >= 30
    finally:
        close(client) if kind == "blocking" else client.close()


def test_the_housekeeper_trims_once_calls_have_left():
    closed: list[float] = []
    calls = [120]
    keeper = memory.Housekeeper(lambda idle: closed.append(idle) or 0, lambda: calls[0])
    keeper.tick()
    assert keeper.peak == 120 and keeper.trims == 0 and closed == [memory.IDLE_FOR]
    calls[0] = 120 - memory.TRIM_AFTER_CALLS  # many left, but many calls are still up:
    keeper.tick()  # no collection or trim stops them
    assert keeper.trims == 0 and keeper.peak == 120
    calls[0] = memory.QUIET_CALLS  # the spell is over
    keeper.tick()
    assert keeper.trims == (1 if memory.malloc_trim() else 0)
    assert keeper.peak == calls[0]  # the next trim waits for the next spell


def test_the_housekeeper_never_collects_while_busy(monkeypatch):
    collected: list[int] = []
    monkeypatch.setattr(memory.gc, "collect", lambda *a: collected.append(1) or 0)
    calls = [400]
    keeper = memory.Housekeeper(lambda idle: 3, lambda: calls[0])  # idle connections closed
    keeper.tick()
    calls[0] = memory.QUIET_CALLS + 1
    keeper.tick()
    assert collected == [] and keeper.trims == 0
    calls[0] = 2
    keeper.tick()
    assert collected == [1]


# --- start-up objects out of the collector's way -------------------------------------------


def test_freeze_startup_leaves_what_exists_out_of_later_collections():
    try:
        frozen = memory.freeze_startup()
        assert frozen == gc.get_freeze_count() > 1000  # this process's modules at least
        import weakref

        class Node:
            pass

        a, b = Node(), Node()  # a cycle made after start-up is still collected
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gc.collect() >= 2 and gone() is None
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()  # the rest of the suite collects as usual
    assert gc.get_freeze_count() == 0
