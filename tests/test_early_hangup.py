"""A caller who hangs up once fsacd took its socket (``connect``) but before it entered the
queue still ends with an outcome: ``call-abandoned`` with ``stage=before-queue`` (no call
record, not in the queue's figures: it never entered the queue). The soak found such calls
without any outcome (docs/reliability.md#soak)."""

from __future__ import annotations

import gevent
import pytest

from fsacd.standin import PhoneBehaviour
from fsacd.standin.listener import Listener
from tests.acd_harness import Acd, wait_for

ENDS = ("call-ended", "call-abandoned", "call-rejected")


@pytest.fixture
def acd(redis_url):
    a = Acd(redis_url)
    yield a
    a.stop()


def hang_up_after_connect(monkeypatch, delay: float | None) -> None:
    """Every caller hangs up ``delay`` s after the stand-in answered fsacd's ``connect``
    (None: while the ``connect`` is on its way, i.e. just before the stand-in reads it)."""
    orig = Listener._session_cmds

    def session_cmds(self, cmd, low):
        connect = low.startswith("connect") and self.session is not None
        if connect and delay is None:
            self.session.call.hangup()
        out = orig(self, cmd, low)
        if connect and delay is not None:
            gevent.spawn_later(delay, self.session.call.hangup)
        return out

    monkeypatch.setattr(Listener, "_session_cmds", session_cmds)


@pytest.mark.parametrize("delay", [None, 0.0, 0.002, 0.01])
def test_a_caller_gone_right_after_connect_has_an_outcome(acd, monkeypatch, delay):
    acd.agent("1001", PhoneBehaviour.answers(after=0.2, talk=1.0), {"support": 1})
    hang_up_after_connect(monkeypatch, delay)
    calls = [acd.fs.place_call(destination="5000") for _ in range(5)]
    for call in calls:
        call.wait_hangup(5)
    ids = {c.uuid for c in calls}

    def ended() -> dict[str, dict]:
        return {e["call"]: e for e in acd.events(*ENDS) if e.get("call") in ids}

    wait_for(lambda: len(ended()) == len(ids), what="an outcome for every caller")
    for call in calls:
        ev = ended()[call.uuid]
        assert ev["type"] == "call-abandoned" and ev["outcome"] == "abandoned", ev
        if ev.get("stage") == "before-queue":  # never entered: no record, not in the figures
            assert ev["queue"] == "support"
            assert acd.store.get_call(call.uuid) is None
    wait_for(acd.all_agents_free, what="the agent idle")


def test_the_queue_figures_do_not_count_a_caller_who_never_entered(acd, monkeypatch):
    hang_up_after_connect(monkeypatch, None)
    call = acd.fs.place_call(destination="5000")
    call.wait_hangup(5)
    wait_for(lambda: acd.events("call-abandoned"), what="the outcome")
    [ev] = acd.events("call-abandoned")
    assert ev.get("stage") == "before-queue"
    assert acd.store.waiting_count("support") == 0


@pytest.mark.parametrize("feed", [True, False], ids=["shared-feed", "own-socket"])
def test_a_socket_error_before_the_queue_ends_the_call_with_outcome_error(acd, monkeypatch, feed):
    """The soak's stalled stand-in: no reply to fsacd's event subscription in time."""
    from fsacd.esl.session import ESLError, OutboundSession

    call_feed = acd.ctl.call_feed
    assert call_feed is not None
    if feed:
        wait_for(lambda: call_feed.connected and call_feed.core_uuid, what="the event feed")
    else:
        call_feed.stop()

    def no_reply(self, *a, **kw):
        raise ESLError("no reply within 10.0s")

    # the call's first command after connect: ``linger`` when the shared event feed is up,
    # its own subscription when not (the feed may or may not have connected yet)
    monkeypatch.setattr(OutboundSession, "own_events", no_reply)
    monkeypatch.setattr(OutboundSession, "linger", no_reply)
    call = acd.fs.place_call(destination="5000")
    wait_for(lambda: acd.events(*ENDS), what="the outcome")
    [ev] = acd.events(*ENDS)
    assert (ev["type"], ev["call"], ev["outcome"]) == ("call-ended", call.uuid, "error")
    assert (ev["stage"], ev["queue"]) == ("before-queue", "support")
    assert acd.store.get_call(call.uuid) is None
