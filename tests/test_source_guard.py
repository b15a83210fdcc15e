"""The outbound socket beyond loopback, over real TCP: only FreeSWITCH's addresses accepted
(never limited), other sources closed before anything is read or limited per source, and a
flood of refusals neither floods the log nor grows memory.

The server listens on 0.0.0.0 (beyond loopback, so every peer is checked); clients connect to
127.0.0.1 from a source address they bind in the loopback range: 127.0.0.1 is FreeSWITCH,
127.0.0.2 and the others are not."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
import tracemalloc

import gevent
import pytest
from gevent.event import Event

from fsacd.acd.sources import freeswitch_networks, guard_for
from fsacd.config import ConfigError, load_text
from fsacd.esl.guard import LOG_SOURCES, LOOPBACK, RefusalLog, SourceGuard, host_networks
from fsacd.esl.server import OutboundServer
from tests.acd_harness import DEFAULT_QUEUES, make_config, wait_for

LONG = os.environ.get("FSACD_LONG") == "1"
FREESWITCH = "127.0.0.1"
OTHER = "127.0.0.2"
FS_NET = [ipaddress.ip_network("127.0.0.1/32")]


class Clock:
    """A clock the test moves (the rate limit's time), so nothing depends on timing."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def serve():
    """``serve(guard)``: an OutboundServer on 0.0.0.0 whose handler holds each connection
    until ``gate`` is set; returns (server, handled list, gate)."""
    made: list[OutboundServer] = []

    def make(guard: SourceGuard | None, max_calls: int = 100000):
        handled: list[str] = []
        gate = Event()

        def handler(session) -> None:
            handled.append(session.address[0])
            gate.wait(60)

        srv = OutboundServer(("0.0.0.0", 0), handler, guard=guard, max_calls=max_calls)
        srv.start()
        made.append(srv)
        return srv, handled, gate

    yield make
    for srv in made:
        srv.stop(timeout=1)


def dial(srv: OutboundServer | int, source: str) -> socket.socket:
    """A connection from ``source``; one the server reset while it was being set up is
    returned as it is (reading it says so)."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", srv if isinstance(srv, int) else srv.address[1]))
    except ConnectionResetError:
        pass
    return s


def closed_by_server(s: socket.socket, timeout: float = 5.0) -> bool:
    """True if the server closed (or reset) the connection without sending anything."""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except TimeoutError:
        return False
    except OSError:  # reset, or never connected because of the reset
        return True


def refusals(srv: OutboundServer) -> int:
    return sum(srv.refused.values())


# --- the server ----------------------------------------------------------------------------


def test_a_source_that_is_not_freeswitch_is_closed_before_anything_is_read(serve):
    srv, handled, gate = serve(SourceGuard(FS_NET))
    intruder = dial(srv, OTHER)
    intruder.sendall(b"connect\n\n")  # whatever it says, nothing of it is read
    assert closed_by_server(intruder)
    intruder.close()
    assert handled == [] and dict(srv.refused) == {"not-allowed": 1}
    fs = dial(srv, FREESWITCH)
    wait_for(lambda: handled == [FREESWITCH], what="FreeSWITCH's connection handled")
    assert not closed_by_server(fs, timeout=0.2)  # held open by the handler
    gate.set()
    assert closed_by_server(fs)
    fs.close()
    wait_for(lambda: srv.active_calls == 0, what="the call over")


def test_hundreds_of_connections_at_once_from_freeswitch_are_never_limited(serve):
    """Others may hold 2 connections and open 1 a second; FreeSWITCH opens hundreds at once
    from one address (thousands with --long) and every one is handled."""
    n = 3000 if LONG else 300
    guard = SourceGuard(FS_NET, others="limit", max_per_source=2, rate=1, clock=Clock())
    srv, handled, gate = serve(guard)
    socks = [dial(srv, FREESWITCH) for _ in range(n)]
    wait_for(lambda: len(handled) == n, timeout=60, what=f"{n} connections handled")
    assert srv.active_calls == n and refusals(srv) == 0
    assert guard.tracked == 0  # FreeSWITCH takes no place in the limits' table
    other = [dial(srv, OTHER) for _ in range(3)]  # the limits still hold for others
    wait_for(lambda: len(handled) + refusals(srv) == n + 3, what="the others judged")
    assert handled.count(OTHER) == 1 and dict(srv.refused) == {"source-rate": 2}
    gate.set()
    for s in socks + other:
        s.close()
    wait_for(lambda: srv.active_calls == 0, timeout=30, what="every connection over")


def test_other_sources_are_limited_in_connections_at_once_and_per_second(serve):
    clock = Clock()
    guard = SourceGuard(FS_NET, others="limit", max_per_source=3, rate=100, clock=clock)
    srv, handled, gate = serve(guard)
    # at once: 3 held, the 4th and 5th closed at once
    held = [dial(srv, OTHER) for _ in range(5)]
    wait_for(lambda: len(handled) + refusals(srv) == 5, what="five judged")
    assert handled == [OTHER] * 3 and dict(srv.refused) == {"source-limit": 2}
    assert sum(closed_by_server(s, timeout=0.5) for s in held) == 2
    assert guard.active(OTHER) == 3
    third = dial(srv, "127.0.0.3")  # another source has limits of its own
    wait_for(lambda: len(handled) == 4, what="another source accepted")
    gate.set()
    for s in [*held, third]:
        s.close()
    wait_for(lambda: srv.active_calls == 0, what="connections over")
    assert guard.active(OTHER) == 0  # released with the connections
    # per second: 2 a second (a burst of 2), the clock frozen: the third is refused
    gate.clear()
    handled.clear()
    guard.configure(FS_NET, others="limit", max_per_source=100, rate=2)
    clock.now += 10  # a full bucket
    quick = [dial(srv, OTHER) for _ in range(3)]
    wait_for(lambda: len(handled) == 2 and srv.refused["source-rate"] == 1, what="rate")
    clock.now += 0.5  # one more token
    quick.append(dial(srv, OTHER))
    wait_for(lambda: len(handled) == 3, what="accepted after half a second")
    gate.set()
    for s in quick:
        s.close()


def test_a_flood_of_refused_connections_does_not_grow_the_log_or_memory(serve, caplog):
    """Thousands of refused connections from one source and from hundreds of sources: a line
    per source at most (up to LOG_SOURCES a minute), no greenlet per connection, no memory
    kept per connection."""
    caplog.set_level(logging.INFO, logger="fsacd.esl.server")
    srv, handled, _ = serve(SourceGuard(FS_NET))
    for _ in range(20):  # warm up (first allocations of the paths taken)
        dial(srv, OTHER).close()
    wait_for(lambda: refusals(srv) == 20, what="warm-up refused")
    caplog.clear()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()

        def flood(sources: list[str], each: int) -> None:
            for _ in range(each):
                for src in sources:
                    s = dial(srv, src)
                    closed_by_server(s)
                    s.close()

        n_one = 5000 if LONG else 1500
        many = [f"127.0.{i // 250 + 1}.{i % 250 + 1}" for i in range(300)]
        jobs = [gevent.spawn(flood, [OTHER], n_one // 4) for _ in range(4)]
        jobs.append(gevent.spawn(flood, many, 1))
        gevent.joinall(jobs, timeout=120, raise_error=True)
        total = 20 + (n_one // 4) * 4 + len(many)
        wait_for(lambda: refusals(srv) == total, what="every connection refused")
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    here = [tracemalloc.Filter(True, "*fsacd/esl/*")]
    grown = sum(
        s.size_diff
        for s in after.filter_traces(here).compare_to(before.filter_traces(here), "filename")
    )
    assert grown < 64 * 1024, f"fsacd/esl kept {grown} bytes after {total} refusals"
    assert handled == [] and srv.active_calls == 0
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    # OTHER was logged before caplog.clear(); of the 300 sources at most LOG_SOURCES - 1 more
    assert len(lines) <= LOG_SOURCES, len(lines)
    assert srv.refusals.tracked <= LOG_SOURCES


def test_refusals_are_summed_up_in_one_line_when_the_interval_is_over(caplog):
    caplog.set_level(logging.INFO, logger="fsacd.esl.server")
    clock = Clock()
    rl = RefusalLog(every=60, sources=2, clock=clock)
    for i in range(100):
        rl.refused(f"10.0.0.{i % 5}", "not-allowed")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "refused a connection from 10.0.0.0",
        "refused a connection from 10.0.0.1",
    ]
    clock.now += 61
    rl.refused("10.0.0.0", "not-allowed")
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[2].startswith("refused 98 more connection(s) in the last 61 s")
    assert msgs[3].startswith("refused a connection from 10.0.0.0")  # a new interval
    assert rl.totals == {"not-allowed": 101}


def test_connections_beyond_max_calls_are_counted_not_logged_one_by_one(serve, caplog):
    srv, handled, gate = serve(None, max_calls=1)  # no guard: max_calls still applies
    first = dial(srv, FREESWITCH)
    wait_for(lambda: len(handled) == 1, what="first call")
    caplog.clear()
    extra = [dial(srv, FREESWITCH) for _ in range(30)]
    assert all(closed_by_server(s) for s in extra)
    assert srv.refused["max-calls"] == 30
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    gate.set()
    for s in [first, *extra]:
        s.close()


# --- config and controller -----------------------------------------------------------------


def load(server: str, extra: str = "") -> object:
    return load_text(f"[server]\n{server}\n{extra}\n[queues.support]\n", env={})


@pytest.mark.parametrize(
    "server,error",
    [
        ('freeswitch_addresses = ["10.0.0.300"]',
         'server.freeswitch_addresses: "10.0.0.300" is not an IP address or network'),
        ('freeswitch_addresses = ["10.0.0.0/33"]',
         'server.freeswitch_addresses: "10.0.0.0/33" is not an IP address or network'),
        ('freeswitch_addresses = ["fs1.example"]',
         'server.freeswitch_addresses: "fs1.example" is not an IP address or network'),
        ('freeswitch_addresses = "10.0.0.5"',
         "server.freeswitch_addresses: must be a list of addresses like"),
        ('listen = "0.0.0.0:8084"\nfreeswitch_addresses = []',
         "server.freeswitch_addresses: is empty while listen (0.0.0.0:8084) is beyond loopback"),
        ('other_sources = "allow"', "server.other_sources: must be one of refuse, limit"),
        ("source_max_calls = 0", "server.source_max_calls: must be a whole number from 1"),
        ("source_max_rate = inf", "server.source_max_rate: must be a number of connections"),
    ],
)  # fmt: skip
def test_bad_values_give_one_line_errors(server, error):
    with pytest.raises(ConfigError) as exc:
        load(server)
    assert len(exc.value.errors) == 1 and "\n" not in exc.value.errors[0]
    assert exc.value.errors[0].startswith(error), exc.value.errors


def test_addresses_are_normalised_and_an_empty_list_is_fine_with_limits_or_on_loopback():
    cfg = load('freeswitch_addresses = ["10.0.0.7/24", "::1", "10.0.0.9", "10.0.0.9"]')
    assert cfg.server.freeswitch_addresses == ("10.0.0.0/24", "::1/128", "10.0.0.9/32")
    cfg = load('listen = "0.0.0.0:8084"\nfreeswitch_addresses = []\nother_sources = "limit"')
    assert guard_for(cfg).freeswitch == ()
    assert load("freeswitch_addresses = []").server.freeswitch_addresses == ()


def test_the_default_freeswitch_addresses_are_loopback_and_the_inbound_host():
    cfg = load('listen = "0.0.0.0:8084"', '[freeswitch]\ninbound = "10.1.2.3:8021"')
    assert freeswitch_networks(cfg) == [*LOOPBACK, *host_networks("10.1.2.3")]
    local = load('listen = "0.0.0.0:8084"', '[freeswitch]\ninbound = "localhost:8021"')
    assert freeswitch_networks(local) == list(LOOPBACK)  # localhost adds nothing new
    assert guard_for(load('listen = "127.0.0.1:8084"')) is None  # loopback: nothing checked
    assert guard_for(load('listen = "[::1]:8084"')) is None


def test_a_controller_beyond_loopback_serves_freeswitch_and_counts_refusals(redis_url):
    """``fsacd serve``'s controller on 0.0.0.0 with ``freeswitch_addresses = ["127.0.0.1"]``:
    the stand-in's calls (from 127.0.0.1) are served, 127.0.0.2 is refused and counted on
    serve's /metrics."""
    import httpx
    import redis
    from prometheus_client.parser import text_string_to_metric_families

    from fsacd.acd.controller import Controller
    from fsacd.esl.client import FreeSwitchClient
    from fsacd.standin import FakeFreeSwitch
    from fsacd.standin import PhoneBehaviour as P

    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon")
    fs.start()
    host, port = fs.inbound_address
    base = make_config(redis_url, DEFAULT_QUEUES + '\n[http]\nlisten = "127.0.0.1:0"\n',
                       inbound=f"{host}:{port}")  # fmt: skip
    cfg = dataclasses.replace(
        base,
        server=dataclasses.replace(
            base.server, listen="0.0.0.0:0", freeswitch_addresses=("127.0.0.1/32",)
        ),
    )
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    os.environ["FSACD_TEST_ESL_PASSWORD"] = "ClueCon"
    ctl = Controller(cfg, r, fs=FreeSwitchClient(fs.inbound_address, "ClueCon"))
    ctl.start()
    try:
        assert ctl.server.guard is not None and ctl.address[0] == "0.0.0.0"
        fs.socket_target = ("127.0.0.1", ctl.address[1])
        fs.phones.register("user/1001@pbx.example", P.answers(after=0.05, talk=None))
        ctl.store.add_agent("1001", "user/1001@pbx.example", {"support": 1})
        ctl.store.login("1001")
        intruder = dial(ctl.address[1], OTHER)
        assert closed_by_server(intruder)
        intruder.close()
        call = fs.place_call(destination="5000", caller_number="+4922129191001")
        leg = call.wait_bridged(8)
        assert leg.variables["fsacd_agent"] == "1001"
        call.hangup()
        wait_for(lambda: ctl.store.get_agent("1001")["state"] == "idle", what="agent free")
        h, p = ctl.health.address
        text = httpx.get(f"http://{h}:{p}/metrics", timeout=10).text
        got = {
            s.labels.get("reason"): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "fsacd_outbound_refused_total"
        }
        assert got == {"not-allowed": 1, "source-limit": 0, "source-rate": 0, "max-calls": 0}
    finally:
        fs.stop()
        ctl.stop(timeout=2)
