"""Redis goes away and comes back (a real redis-server, killed and restarted with its AOF):
the controller's wake-up path and control channel come back by themselves."""

from __future__ import annotations

import time

import pytest

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for
from tests.redis_server import RedisServer


@pytest.fixture
def server():
    s = RedisServer().start()
    yield s
    s.stop()


def subscribers(acd: Acd) -> int:
    try:
        channel = acd.store.keys.control_channel()
        return dict(acd.r.pubsub_numsub(channel)).get(channel, 0)
    except Exception:  # noqa: BLE001 - Redis still away
        return 0


def test_pubsub_comes_back_after_a_redis_outage(server, caplog):
    acd = Acd(server.url)
    try:
        acd.agent("1001", P.answers(after=0.05, talk=30), {"support": 1}, login=False)
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        wait_for(
            lambda: (acd.store.get_call(call.uuid) or {}).get("state") == "waiting",
            what="caller waiting",
        )
        assert subscribers(acd) == 1
        server.kill()
        time.sleep(3.0)
        server.start()
        wait_for(lambda: subscribers(acd) == 1, timeout=6, what="controller listening again")
        # the wake-up path works again: a login brings the waiting caller an offer
        t = time.time()
        acd.store.login("1001")
        call.wait_bridged(5)
        print(f"login -> bridged after the outage: {(time.time() - t) * 1000:.0f} ms")
        lost = [r for r in caplog.records if "pub/sub connection lost" in r.getMessage()]
        assert len(lost) == 1  # one line per outage, not one per retry
        call.hangup()
        wait_for(acd.all_agents_free, timeout=10, what="agent free")
    finally:
        acd.stop()


def test_a_redis_that_never_answers_fails_the_command_instead_of_hanging():
    """A half-open peer: accepts the connection, never answers (a Redis host that vanished)."""
    import socket as pysocket

    from fsacd.state.connection import CLIENT_OPTIONS, RedisError, connect

    listener = pysocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    try:
        client = connect(f"redis://127.0.0.1:{port}/0")
        t = time.time()
        with pytest.raises(RedisError):
            client.ping()
        assert time.time() - t < CLIENT_OPTIONS["socket_timeout"] + 3
    finally:
        listener.close()


def test_many_greenlets_at_once_wait_for_a_connection_instead_of_failing(tmp_path):
    """More concurrent commands than redis-py's default pool of 100 (a busy controller)."""
    import gevent

    from fsacd.state.connection import POOL_SIZE, close, connect

    client = connect(None, tmp_path)
    try:
        n = POOL_SIZE + 150
        jobs = [gevent.spawn(client.blpop, [f"nothing-{i}"], 0.3) for i in range(n)]
        gevent.joinall(jobs, timeout=20)
        errors = [j.exception for j in jobs if j.exception is not None]
        assert errors == [] and all(j.ready() for j in jobs)
    finally:
        close(client)


def test_calls_bridged_during_a_redis_outage_keep_true_records(server, caplog):
    """Issue 11 item 2: three calls ringing, Redis killed, the agents answer and talk while it
    is away, Redis back after 3 s: every agent ends idle, every call `answered`, the answered
    counters counted, no `controller-lost`, and the outage logged once per call path, not a
    traceback per greenlet."""
    import logging

    caplog.set_level(logging.INFO)
    acd = Acd(server.url)
    try:
        agents = ["1001", "1002", "1003"]
        for a in agents:
            acd.agent(a, P.answers(after=1.0, talk=4.0), {"support": 1})
        calls = [
            acd.fs.place_call(destination="5000", caller_number=f"+492212919100{i}")
            for i in range(3)
        ]
        wait_for(
            lambda: all(acd.agent_state(a)["state"] == "ringing" for a in agents),
            what="all three agents ringing",
        )
        wait_for(  # and FreeSWITCH rings their phones (the bridges were sent)
            lambda: {leg.variables.get("fsacd_agent") for leg in acd.fs.legs} >= set(agents),
            what="three agent legs",
        )
        server.kill()
        for call in calls:
            call.wait_bridged(5)  # FreeSWITCH bridges while Redis is away
        time.sleep(3.0 - 1.0)
        server.start()
        for call in calls:
            call.wait_hangup(15)  # the agents hang up after talking
        wait_for(acd.all_agents_free, timeout=20, what="every agent idle")
        ended = acd.events("call-ended")
        outcomes = {e["call"]: e["outcome"] for e in ended}
        assert outcomes == {c.uuid: "answered" for c in calls}
        assert all(int(acd.agent_state(a)["answered"]) == 1 for a in agents)
        assert not [e for e in acd.events() if "controller-lost" in e.values()]
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert tracebacks == [], [r.getMessage() for r in tracebacks]  # an outage, not a bug
        outage_lines = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert 1 <= len(outage_lines) <= 3
    finally:
        acd.stop()


def test_a_call_arriving_during_an_outage_waits_and_is_served_when_redis_is_back(server):
    """The defined behaviour for a call that comes in while Redis is away: it keeps waiting
    (fsacd retries its entry with backoff) and is served once Redis returns."""
    acd = Acd(server.url)
    try:
        acd.agent("1001", P.answers(after=0.05, talk=0.5), {"support": 1})
        server.kill()
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        time.sleep(2.0)
        server.start()
        call.wait_bridged(10)
        call.wait_hangup(10)
        wait_for(acd.all_agents_free, timeout=10, what="agent free")
        ended = {e["call"]: e["outcome"] for e in acd.events("call-ended")}
        assert ended == {call.uuid: "answered"}
    finally:
        acd.stop()


def test_repeated_identical_log_lines_are_held_back():
    import logging

    from fsacd.acd.outage import RepeatFilter

    f = RepeatFilter(every=30.0)

    def rec(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("fsacd.acd.matcher", logging.ERROR, "x", 1, msg, args, None)

    passed = [f.filter(rec("sweep failed")) for _ in range(50)]
    assert passed == [True] + [False] * 49
    assert f.filter(rec("call %s: gone", "a"))  # another message passes
    assert f.filter(rec("call %s: gone", "b"))  # another call: another line
    assert not f.filter(rec("call %s: gone", "b"))  # the same again: held
    info = logging.LogRecord("fsacd", logging.INFO, "x", 1, "caller gone", (), None)
    assert all(f.filter(info) for _ in range(5))  # info lines always pass
    f._seen[("fsacd.acd.matcher", logging.ERROR, "sweep failed")] = (time.time() - 31, 49)
    r = rec("sweep failed")
    assert f.filter(r) and "[49 more like this" in r.getMessage()
