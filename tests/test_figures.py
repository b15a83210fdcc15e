"""The figures (fsacd/core/figures.py, fsacd/state/stats.py): definitions, and the counters
the Lua scripts keep while calls flow through the stand-in, across a controller restart."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from fsacd.core import figures as fig
from fsacd.standin import PhoneBehaviour as P
from fsacd.state.keys import Keys
from fsacd.state.stats import StatsStore
from tests.acd_harness import Acd, wait_for

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 3
wrap_up = 0.2
service_level_seconds = 20

[queues.sales]
"""


def test_service_level_is_answered_within_threshold_of_answered_or_abandoned():
    assert fig.service_level(3, 4, 1) == pytest.approx(0.6)
    assert fig.service_level(0, 0, 0) is None
    f = fig.queue_figures(
        fig.add_counters(
            [
                {"offered": "3", "answered": "2", "answered_in_sl": "2", "wait_answered": "6",
                 "talk_time": "100", "wrap_time": "10", "handled": "2", "longest_wait": "4"},
                {"offered": "2", "answered": "2", "answered_in_sl": "1", "abandoned": "1",
                 "wait_answered": "30", "talk_time": "60", "wrap_time": "10", "handled": "2",
                 "longest_wait": "25.5", "outcome:answered": "4", "outcome:abandoned": "1"},
            ]
        )
    )
    assert (f.offered, f.answered, f.abandoned) == (5, 4, 1)
    assert f.service_level == pytest.approx(3 / 5)
    assert f.asa == pytest.approx(36 / 4)
    assert f.aht == pytest.approx(180 / 4)
    assert f.longest_wait == 25.5
    assert f.outcomes == {"answered": 4, "abandoned": 1}


def test_buckets_cover_a_period_with_whole_days_and_intervals():
    day = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    got = fig.buckets(day - 1800, day + 900 * 2 + 5)
    assert got == [("slot", "2026-11-30T23:30"), ("slot", "2026-11-30T23:45"),
                   ("day", "2026-12-01")]
    assert fig.buckets(day + 3600 + 100, day + 3600 + 200) == [("slot", "2026-12-01T01:00")]


def test_since_understands_today_durations_and_dates():
    tz = fig.zone("Europe/Berlin")
    now = dt.datetime(2026, 12, 1, 10, 0, tzinfo=tz).timestamp()
    assert fig.parse_since("today", now, tz) == now - 10 * 3600
    assert fig.parse_since("1h", now, tz) == now - 3600
    assert fig.parse_since("2026-11-30", now, tz) == now - 34 * 3600
    for bad in ("yesterday", "1y", "2027-01-01", "-1h"):
        with pytest.raises(ValueError):
            fig.parse_since(bad, now, tz)


def test_lua_builds_the_same_figure_key_names_as_keys_py(r):
    from fsacd.state import scripts

    t = dt.datetime(2026, 12, 1, 13, 47, 12, tzinfo=dt.UTC).timestamp()
    src = scripts.source("_lib") + (
        "\nlocal k = stats_keys('queue', 'q', tonumber(ARGV[3]))"
        "\nreturn {k[1], k[2], k[3], inqueue_key('q'), PREFIX .. 'stats:queue:q:live',"
        " STATS_SLOT, STATS_DAY_TTL, STATS_SLOT_TTL}"
    )
    k = Keys("pfx:")
    got = r.eval(src, 1, k.events(), "pfx:", "1.000", f"{t:.3f}")
    from fsacd.state import keys as keys_mod

    assert got == [
        k.stats_total("queue", "q"),
        k.stats_day("queue", "q", fig.utc_day(t)),
        k.stats_slot("queue", "q", fig.utc_slot(t)),
        k.queue_inqueue("q"),
        k.queue_live("q"),
        keys_mod.STATS_SLOT,
        keys_mod.STATS_DAY_TTL,
        keys_mod.STATS_SLOT_TTL,
    ]
    assert fig.utc_slot(t) == "2026-12-01T13:45"


def small_shift(acd: Acd, callers: int = 5, agents: int = 4) -> list:
    """``agents`` agents answer and talk; the last of ``callers`` gives up while waiting."""
    for i in range(agents):
        acd.agent(f"10{i:02d}", P.answers(after=0.2, talk=2.0), {"support": 1})
    calls = []
    for _ in range(agents):
        calls.append(acd.fs.place_call(destination="5000"))
    for c in calls:
        c.wait_bridged(10)
    quitter = acd.fs.place_call(destination="5000")
    wait_for(lambda: acd.store.waiting_count("support") == 1, what="the fifth caller waiting")
    time.sleep(0.5)
    quitter.hangup()
    calls.append(quitter)
    for c in calls:
        c.wait_hangup(15)
    wait_for(lambda: not acd.store.list_calls(), timeout=15, what="all calls ended")
    return calls


def test_figures_after_a_small_shift_and_a_restart(redis_url):
    acd = Acd(redis_url, queues=QUEUES)
    try:
        small_shift(acd)
        wait_for(acd.all_agents_free, timeout=10, what="agents free")
        stats = StatsStore(acd.r, acd.store.keys)
        start = fig.day_start(time.time(), dt.UTC) - 60
        f = stats.queue_figures(["support"], start)["support"]
        assert (f.offered, f.answered, f.abandoned) == (5, 4, 1)
        assert f.answered_in_sl == 4 and f.service_level == pytest.approx(0.8)
        assert f.handled == 4 and f.talk_time > 4 * 1.0
        assert f.wrap_time == pytest.approx(4 * 0.2)
        assert f.asa is not None and 0 < f.asa < 20
        assert f.longest_wait >= 0.5  # the quitter waited that long at least
        assert f.outcomes == {"answered": 4, "abandoned": 1}
        live = stats.live(["support"])["support"]
        assert live == {"waiting": 0, "longest_wait": 0.0, "talking": 0}
        agents = acd.store.list_agents()
        af = stats.agent_figures(agents, start)
        assert sum(a.answered for a in af.values()) == 4
        assert sum(a.offered for a in af.values()) == 4
        for a in af.values():
            assert a.time_in_state.get("in-call", 0) > 1.0
            assert a.time_in_state.get("idle", 0) > 0
        totals = stats.totals("queue", ["support"])["support"]
        assert totals["wait_count"] == 5 and totals["ring_count"] == 4
        assert sum(v for k, v in totals.items() if k.startswith("wait_bucket:")) == 5
    finally:
        acd.stop()
    # a new controller on the same Redis: the figures go on from where they were
    acd = Acd(redis_url, queues=QUEUES)
    try:
        acd.agent("1000", P.answers(after=0.2, talk=0.5), {"support": 1})
        call = acd.fs.place_call(destination="5000")
        call.wait_bridged(10)
        call.wait_hangup(10)
        wait_for(lambda: not acd.store.list_calls(), timeout=10, what="call ended")
        stats = StatsStore(acd.r, acd.store.keys)
        f = stats.queue_figures(["support"], time.time() - 3600)["support"]
        assert (f.offered, f.answered, f.abandoned) == (6, 5, 1)
    finally:
        acd.stop()


def test_cached_closed_intervals_still_see_new_counts(r):
    """A screen's store reuses the sum of closed intervals; the current ones are read anew."""
    k = Keys()
    now = dt.datetime(2026, 12, 1, 13, 7, tzinfo=dt.UTC).timestamp()
    start = now - 3 * 3600
    old_key = k.stats_slot("queue", "q", "2026-12-01T11:00")
    cur_key = k.stats_slot("queue", "q", "2026-12-01T13:00")
    r.hset(old_key, mapping={"offered": 2, "answered": 2})
    st = StatsStore(r, k, clock=lambda: now).caching(0.3)
    assert st.counters("queue", ["q"], start)["q"]["offered"] == 2
    r.hincrby(cur_key, "offered", 1)
    r.hincrby(old_key, "offered", 10)
    assert st.counters("queue", ["q"], start)["q"]["offered"] == 3  # closed part reused
    fresh = StatsStore(r, k, clock=lambda: now)
    assert fresh.counters("queue", ["q"], start)["q"]["offered"] == 13
    time.sleep(0.35)
    assert st.counters("queue", ["q"], start)["q"]["offered"] == 13


def test_events_stream_cap_comes_from_the_config(r):
    from fsacd.state import scripts
    from fsacd.state.store import Store

    assert "local EVENTS_MAXLEN = 1234\n" in scripts.full_source("enqueue", 1234)
    assert scripts.MAXLEN_LINE in scripts.full_source("enqueue")
    store = Store(r, events_maxlen=1000)
    for i in range(1500):
        store.event("test", n=i)
    assert 1000 <= r.xlen(store.keys.events()) < 1200  # MAXLEN ~ 1000
    later = Store(r, clock=lambda: time.time() + 3600)
    later.trim_events(100000, max_age=60)  # everything is older than an hour "later"
    assert r.xlen(store.keys.events()) < 100
