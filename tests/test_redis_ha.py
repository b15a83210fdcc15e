"""Redis high availability: Sentinel URLs (real redis-server and redis-sentinel processes, a
failover during calls). Redis Cluster: tests/test_redis_cluster.py."""

from __future__ import annotations

import socket
import time

import pytest

from fsacd.standin import PhoneBehaviour as P
from fsacd.state.connection import RedisSetupError, parse_sentinel_url, url_of
from tests.acd_harness import Acd, wait_for
from tests.redis_server import RedisServer, ReplicaServer, SentinelServer


def test_sentinel_urls_are_read_part_by_part():
    p = parse_sentinel_url("redis+sentinel://fsacd:s%40cret@10.0.0.1:26379,10.0.0.2/acd/2")
    assert p["nodes"] == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert (p["service"], p["db"], p["username"], p["password"]) == ("acd", 2, "fsacd", "s@cret")
    assert p["ssl"] is False and p["sentinel_password"] is None
    p = parse_sentinel_url("rediss+sentinel://[::1]:5000/acd?sentinel_password=x")
    assert p["nodes"] == [("::1", 5000)] and p["ssl"] and p["sentinel_password"] == "x"
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h:1/a/b", "redis+sentinel://:1/a"):
        with pytest.raises(RedisSetupError):
            parse_sentinel_url(bad)


@pytest.fixture
def sentinel_setup():
    master = RedisServer().start()
    replica = ReplicaServer(master).start()
    sentinels = [SentinelServer(master, quorum=1).start()]
    yield master, replica, sentinels
    for s in sentinels:
        s.stop()
    replica.stop()
    master.stop()


def _url(sentinels) -> str:
    return "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels) + "/mymaster"


def _synced(replica: RedisServer) -> bool:
    with socket.create_connection(("127.0.0.1", replica.port), timeout=2) as s:
        s.sendall(b"INFO replication\r\n")
        time.sleep(0.05)
        return b"master_link_status:up" in s.recv(4096)


def test_calls_go_on_through_a_sentinel_failover(sentinel_setup):
    master, replica, sentinels = sentinel_setup
    wait_for(lambda: _synced(replica), what="replica in sync")
    url = _url(sentinels)
    acd = Acd(url)
    try:
        assert url_of(acd.ctl.r) == url
        acd.agent("1001", P.answers(after=0.2, talk=2.0), {"support": 1})
        first = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        first.wait_bridged(15)
        wait_for(lambda: acd.agent_state("1001")["state"] == "in-call", what="talking")
        wait_for(lambda: _synced(replica), what="replica in sync")
        assert sentinels[0].command("SENTINEL FAILOVER mymaster").startswith("+OK")
        wait_for(
            lambda: sentinels[0].master_port() == replica.port, timeout=20, what="failover"
        )
        first.wait_hangup(15)  # the talk ends after the failover: recorded on the new master
        second = acd.fs.place_call(destination="5000", caller_number="+4922129191002")
        second.wait_bridged(15)
        second.wait_hangup(15)
        wait_for(acd.all_agents_free, timeout=15, what="agent free")
        ended = {e["call"]: e["outcome"] for e in acd.events("call-ended")}
        assert ended == {first.uuid: "answered", second.uuid: "answered"}
        assert int(acd.agent_state("1001")["answered"]) == 2
    finally:
        acd.stop()


@pytest.mark.long
def test_calls_go_on_when_the_master_dies_under_three_sentinels():
    """Opt-in (scripts/test --long): the master is killed (-9) with calls up; three sentinels
    agree on the replica; calls bridged before and after end with true records."""
    master = RedisServer().start()
    replica = ReplicaServer(master).start()
    sentinels = [SentinelServer(master, quorum=2, down_ms=1000).start() for _ in range(3)]
    try:
        wait_for(lambda: _synced(replica), what="replica in sync")
        acd = Acd(_url(sentinels))
        try:
            for a in ("1001", "1002", "1003"):
                acd.agent(a, P.answers(after=0.3, talk=6.0), {"support": 1})
            calls = [
                acd.fs.place_call(destination="5000", caller_number=f"+49221291910{i}")
                for i in range(3)
            ]
            for c in calls:
                c.wait_bridged(8)
            wait_for(lambda: _synced(replica), what="replica in sync")
            master.kill()
            wait_for(
                lambda: sentinels[0].master_port() == replica.port, timeout=30, what="failover"
            )
            for c in calls:
                c.wait_hangup(30)
            late = acd.fs.place_call(destination="5000", caller_number="+4922129191009")
            late.wait_bridged(15)
            late.hangup()
            wait_for(acd.all_agents_free, timeout=20, what="agents free")
            ended = {e["call"]: e["outcome"] for e in acd.events("call-ended")}
            assert [ended[c.uuid] for c in calls] == ["answered"] * 3
            assert ended[late.uuid] == "answered"
        finally:
            acd.stop()
    finally:
        for s in sentinels:
            s.stop()
        replica.stop()
        master.stop()

