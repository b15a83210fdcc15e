"""The soak run (fsacd/tools/soak.py): a short one in the suite (``fsacd serve``, the
stand-in process and Redis, a few seconds), the long run opt-in (``long``)."""

from __future__ import annotations

import pytest

from fsacd.state.store import Store
from fsacd.tools import soak


def test_a_short_soak_leaves_no_stuck_agent_and_no_call_without_an_outcome(redis_url):
    report = soak.run(calls=15, duration=6.0, agents=8, sample=1.0, url=redis_url,
                      forget_after=1.0)  # fmt: skip
    assert report.calls_placed >= 15
    assert report.stuck_agents == []
    assert report.calls_without_outcome == 0, report.without_outcome
    assert sum(report.outcomes.values()) + report.never_reached == report.calls_placed
    assert report.outcomes.get("answered", 0) > 0
    assert report.agent_moves > 0  # breaks, returns, logouts and logins while calls ran
    # what was sampled: the controller's process (its RSS and, from its /metrics, its
    # greenlets and calls) apart from the stand-in's, and the callers up
    assert len(report.samples) >= 6
    assert all(s.rss_mb > 30 and s.standin_rss_mb > 20 for s in report.samples)
    assert max(s.calls_up for s in report.samples) == 15
    assert max(s.live_calls or 0 for s in report.samples) >= 10
    busy = max(s.greenlets or 0 for s in report.samples)
    assert busy > report.baseline.greenlets + 15  # a greenlet (or more) per call
    # every call greenlet is gone again (a few may still be closing sockets)
    [drained] = report.after
    assert drained.calls_up == 0 and drained.live_calls == 0
    assert drained.greenlets <= report.baseline.greenlets + 10


def test_the_count_tells_calls_fsacd_never_saw_from_calls_without_an_outcome(r):
    store = Store(r, prefix=soak.PREFIX)
    store.event("call-abandoned", call="c1", queue="support", outcome="abandoned")
    store.event("call-abandoned", call="c2", queue="support", outcome="abandoned",
                stage="before-queue")  # fmt: skip
    store.event("call-rejected", call="c3", reason="full")
    # c6's events left the stream already: its ended record has the outcome
    r.hset(store.keys.call("c6"), mapping={"state": "ended", "outcome": "answered"})
    report = soak.Report()
    # c4 hung up before fsacd took its socket; c5 reached fsacd and has no outcome
    soak._count(report, store, ["c1", "c2", "c3", "c4", "c5", "c6"], {"c4"})
    assert report.outcomes == {"abandoned": 1, "abandoned (before the queue)": 1,
                               "rejected:full": 1, "answered": 1}  # fmt: skip
    assert report.never_reached == 1
    assert report.calls_without_outcome == 1
    assert report.without_outcome == [{"call": "c5", "state": None, "outcome": None}]


@pytest.mark.long
def test_a_long_soak_stays_flat(redis_url):
    report = soak.run(calls=200, duration=120.0, agents=60, sample=5.0, url=redis_url)
    assert report.stuck_agents == [] and report.calls_without_outcome == 0
    assert max(s.calls_up for s in report.samples) >= 190
    assert report.rss_growth_mb < 50
