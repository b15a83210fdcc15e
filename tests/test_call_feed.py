"""The calls' channel events over one shared inbound connection (fsacd/esl/callfeed.py).

Scenarios on the stand-in and, with FSACD_TEST_FREESWITCH, on a real switch: calls take
their events from the feed (their sockets subscribe to nothing), a call whose feed drops
subscribes on its own socket and still ends right, and ``shared_events = false`` keeps the
per-socket subscription.
"""

from __future__ import annotations

import json
import time

from fsacd.esl.callfeed import CallFeed
from fsacd.esl.framing import event_plain_uuid, parse_event_plain, split_frames
from tests.switch import poll
from tests.test_switch_e2e import CALLER, STEP, make_acd, queues, settle, switch  # noqa: F401

# --- the peek ----------------------------------------------------------------------------


def _plain(*headers: tuple[str, str], body: str = "") -> bytes:
    text = "".join(f"{k}: {v}\n" for k, v in headers)
    if body:
        text += f"Content-Length: {len(body)}\n\n{body}"
    return text.encode()


def test_the_peek_finds_the_unique_id_as_the_parser_does():
    uuid = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
    body = _plain(
        ("Event-Name", "CHANNEL_BRIDGE"),
        ("Other-Leg-Unique-ID", "11111111-2222-3333-4444-555555555555"),
        ("Bridge-A-Unique-ID", "66666666-2222-3333-4444-555555555555"),
        ("Unique-ID", uuid),
    )
    assert event_plain_uuid(body) == uuid == parse_event_plain(body).get("Unique-ID")


def test_the_peek_reads_headers_only_and_says_none_without_one():
    body = _plain(
        ("Event-Name", "BACKGROUND_JOB"),
        ("Job-UUID", "x"),
        body="+OK\nUnique-ID: not-a-header\n",
    )
    assert event_plain_uuid(body) is None
    assert event_plain_uuid(b"") is None
    assert event_plain_uuid(_plain(("Event-Name", "HEARTBEAT"))) is None
    # a value cut short by the end of the body, and a CRLF line end
    assert event_plain_uuid(b"Event-Name: X\nUnique-ID: abc") == "abc"
    assert event_plain_uuid(b"Event-Name: X\r\nUnique-ID: abc\r\n\r\n") == "abc"


def test_the_peek_agrees_with_the_parser_on_recorded_events(transcripts_dir):
    """Every event a real FreeSWITCH sent in the recordings: the peek gives the parsed
    Unique-ID (or None where the event has none)."""
    seen = with_uuid = 0
    for path in sorted(transcripts_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        stream = b"".join(r["data"].encode("utf-8") for r in records if r["dir"] == "in")
        frames, _ = split_frames(stream)
        for frame in frames:
            if frame.content_type != "text/event-plain":
                continue
            expected = parse_event_plain(frame.body).get("Unique-ID")
            assert event_plain_uuid(frame.body) == expected, path.name
            seen += 1
            with_uuid += expected is not None
    assert seen > 50 and with_uuid > 50


# --- on a switch -------------------------------------------------------------------------


def _feed(acd) -> CallFeed:
    feed = acd.ctl.call_feed
    assert feed is not None and feed.connected
    return feed


def test_calls_take_their_events_from_the_shared_feed(switch, make_acd):  # noqa: F811
    acd = make_acd()
    feed = _feed(acd)
    assert feed.core_uuid
    acd.agent("agent", "1001", {"support": 1})
    before, dropped = feed.delivered, feed.dropped
    call = switch.place_call(destination="5000", caller_number=CALLER)
    call.wait_bridged(STEP)
    acd.wait_call(call.uuid, "bridged")
    assert feed.attached == 1
    assert feed.delivered > before  # the answer, the bridge's start ... came this way
    # the switch sends the caller's events only (the agent's legs' stay there): at most
    # the one of its socket application, before the call was attached
    print("feed: delivered", feed.delivered - before, "dropped", feed.dropped - dropped)
    assert feed.dropped - dropped <= 1
    if not switch.real:  # the call's own socket subscribed to nothing
        outbound = [ln for ln in switch.fs.listeners if ln.outbound and ln.session is not None
                    and ln.session.uuid == call.uuid]
        assert outbound and not any(ln.events_enabled for ln in outbound)
    settle(acd, call)
    assert acd.call(call.uuid)["outcome"] == "answered"
    poll(lambda: feed.attached == 0, STEP, "the ended call detached")


def test_a_call_whose_feed_drops_subscribes_on_its_socket_and_ends_right(switch, make_acd):  # noqa: F811
    acd = make_acd()
    feed = _feed(acd)
    acd.agent("agent", "1001", {"support": 1}, login=False)
    call = switch.place_call(destination="5000", caller_number=CALLER)
    acd.wait_call(call.uuid, "waiting")
    call.wait_app("playback", STEP, data="local_stream://moh")
    assert feed.attached == 1
    feed._client.close()  # the feed's connection drops (as when FreeSWITCH closes it)
    poll(lambda: feed.attached == 0, STEP, "the call left the feed")
    if not switch.real:
        poll(
            lambda: any(
                ln.events_enabled for ln in switch.fs.listeners
                if ln.outbound and ln.session is not None and ln.session.uuid == call.uuid
            ),
            STEP,
            "the call's socket subscribed to its events",
        )
    else:
        time.sleep(0.5)  # the fallback's commands are on their way
    acd.store.login("1001")  # the music stops and the bridge runs on the socket's events
    leg = call.wait_bridged(STEP)
    assert leg.agent == "1001"
    acd.wait_call(call.uuid, "bridged")
    settle(acd, call)
    rec = acd.call(call.uuid)
    assert rec["outcome"] == "answered" and rec["agent"] == "1001"
    assert feed.wait_connected(STEP)  # and the feed is back for the next calls


def test_shared_events_off_keeps_the_per_socket_subscription(switch, make_acd):  # noqa: F811
    acd = make_acd(freeswitch={"shared_events": False})
    assert acd.ctl.call_feed is None
    acd.agent("agent", "1001", {"support": 1})
    call = switch.place_call(destination="5000", caller_number=CALLER)
    assert call.wait_bridged(STEP).agent == "1001"
    acd.wait_call(call.uuid, "bridged")
    settle(acd, call)
    assert acd.call(call.uuid)["outcome"] == "answered"


# --- several switches ----------------------------------------------------------------------


def test_each_switch_of_other_switches_gets_its_own_feed(redis_url, monkeypatch):
    """``other_switches``: the calls of a second switch take their events from that
    switch's feed, not from their sockets, and both switches' calls end right."""
    import dataclasses

    import redis

    from fsacd.acd.controller import Controller
    from fsacd.esl.client import FreeSwitchClient
    from fsacd.standin import FakeFreeSwitch, PhoneBehaviour
    from tests.acd_harness import make_config

    monkeypatch.setenv("FSACD_TEST_ESL_PASSWORD", "ClueCon")
    switches = [FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon").start()
                for _ in range(2)]  # fmt: skip
    a1, a2 = ("{}:{}".format(*fs.inbound_address) for fs in switches)
    cfg = make_config(redis_url, inbound=a1)
    cfg = dataclasses.replace(
        cfg, freeswitch=dataclasses.replace(cfg.freeswitch, other_switches=(a2,))
    )
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ctl = Controller(cfg, r, fs=FreeSwitchClient(switches[0].inbound_address, "ClueCon"))
    ctl.start()
    try:
        assert len(ctl.call_feeds) == 2
        for feed in ctl.call_feeds:
            assert feed.wait_connected(STEP)
        poll(lambda: all(f.core_uuid for f in ctl.call_feeds), STEP, "both Core-UUIDs known")
        assert {f.core_uuid for f in ctl.call_feeds} == {fs.core_uuid for fs in switches}
        for i, fs in enumerate(switches):
            contact = f"user/10{i}@pbx.example"
            fs.phones.register(contact, PhoneBehaviour.answers(after=0.0, talk=None))
            ctl.store.add_agent(f"10{i}", contact, {"support": 1})
            ctl.store.login(f"10{i}")
        calls = []
        for fs in switches:
            calls.append(fs.place_call(destination="5000", caller_number=CALLER,
                                       socket_target=ctl.address))  # fmt: skip
            calls[-1].wait_bridged(STEP)
        for fs, feed, call in zip(switches, ctl.call_feeds, calls, strict=True):
            assert feed.core_uuid == fs.core_uuid
            assert feed.delivered > 0 and feed.attached == 1
            outbound = [ln for ln in fs.listeners if ln.outbound and ln.session is not None
                        and ln.session.uuid == call.uuid]  # fmt: skip
            assert outbound and not any(ln.events_enabled for ln in outbound)
        for call in calls:
            call.hangup()
            call.wait_hangup(STEP)
        for call in calls:
            poll(lambda c=call: (ctl.store.get_call(c.uuid) or {}).get("outcome") == "answered",
                 STEP, "the call recorded as answered")  # fmt: skip
        poll(lambda: all(f.attached == 0 for f in ctl.call_feeds), STEP, "both calls detached")
        poll(lambda: all(a["state"] == "idle" for a in ctl.store.list_agents()), STEP,
             "both agents idle")  # fmt: skip
    finally:
        ctl.stop(timeout=2)
        for fs in switches:
            fs.stop()
        r.close()
