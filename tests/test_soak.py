"""The soak run (fsacd/tools/soak.py): a short smoke in the suite, the long run opt-in."""

from __future__ import annotations

import pytest

from fsacd.tools import soak


def test_a_short_soak_leaves_no_stuck_agent_and_no_call_without_an_outcome(redis_url):
    report = soak.run(calls=15, duration=6.0, agents=8, sample=1.0, url=redis_url)
    assert report.calls_placed >= 15
    assert report.stuck_agents == []
    assert report.calls_without_outcome == 0
    assert sum(report.outcomes.values()) == report.calls_placed
    assert report.outcomes.get("answered", 0) > 0
    assert report.agent_moves > 0  # breaks, returns, logouts and logins while calls ran
    # every call greenlet is gone again (a few may still be closing sockets)
    assert report.samples[-1].greenlets <= report.baseline.greenlets + 10


@pytest.mark.long
def test_a_long_soak_stays_flat(redis_url):
    report = soak.run(calls=200, duration=120.0, agents=60, sample=5.0, url=redis_url)
    assert report.stuck_agents == [] and report.calls_without_outcome == 0
    assert report.rss_growth_mb < 50
