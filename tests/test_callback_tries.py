"""Issue 11 item 14: a callback's originate result belongs to its try. A late ``-ERR`` of an
earlier try (its legs were already judged gone, the next try is dialling) must not fail the
next try."""

from __future__ import annotations

from types import SimpleNamespace

from fsacd.acd.callback import _Runner, _Try
from fsacd.config import QueueConfig
from fsacd.state.store import Offer


def _runner() -> _Runner:
    cbs = SimpleNamespace(ctl=SimpleNamespace(store=SimpleNamespace()))
    return _Runner(cbs, "call-1")  # type: ignore[arg-type]


def _try(offer_id: str) -> _Try:
    offer = Offer(offer_id=offer_id, call_id="call-1", queue="support", agents=["1001"])
    return _Try(
        offer, QueueConfig(name="support"), {"leg-2": "1001"}, "cust-2", "agent", job_pending=True
    )


def test_a_late_error_of_an_earlier_try_is_ignored():
    runner, t = _runner(), _try("offer-2")
    runner._absorb(t, "job", ("offer-1", "-ERR NO_ANSWER"))
    runner._absorb(t, "job-lost", ("offer-1", None))
    assert t.job_pending and t.job_error is None and t.generation == 0


def test_the_result_of_this_try_counts():
    runner, t = _runner(), _try("offer-2")
    runner._absorb(t, "job", ("offer-2", "-ERR USER_BUSY"))
    assert not t.job_pending and t.job_error == "USER_BUSY"
    t2 = _try("offer-3")
    runner._absorb(t2, "job", ("offer-3", "+OK leg-2"))
    assert t2.answered_legs == {"leg-2"}
