"""Reads sent along with a script (fsacd/state/base.py ``script_with_reads``): the screen
pop's reads ride with ``answered`` and ``finish_call``, one round trip each, on a real Redis."""

from __future__ import annotations

import pytest
from redis import connection as redis_connection

from fsacd.state.pop import PopStore
from fsacd.state.store import Store
from tests.matching import match_one

T0 = 1_800_000_000.0


@pytest.fixture
def store(r):
    s = Store(r, controller_id="c1", clock=lambda: T0)
    s.sync_queues(["sales"])
    s.add_agent("a1", "user/1001", {"sales": 1})
    s.login("a1")
    return s


@pytest.fixture
def trips(monkeypatch):
    """Round trips made (packed sends), counted on the real connection class."""
    sent = [0]
    orig = redis_connection.AbstractConnection.send_packed_command

    def counting(self, *a, **kw):
        sent[0] += 1
        return orig(self, *a, **kw)

    monkeypatch.setattr(redis_connection.AbstractConnection, "send_packed_command", counting)
    return sent


def offered(store, call_id="c1"):
    store.enqueue({"id": call_id, "number": "+4930123456"}, "sales", 0)
    offer = match_one(store, "sales")
    assert offer is not None and offer.agents == ["a1"]
    pops = PopStore.of(store)
    pops.offered(call_id, ["a1"], T0, 2.0, "sales")
    return offer, pops


def test_answered_brings_the_pop_reads_in_the_same_round_trip(store, trips):
    offer, pops = offered(store)
    store.r.script_load(store.scripts.answered.script)  # loaded, as after the first call
    reads = pops.reads("c1")
    before = trips[0]
    assert store.answered(offer, "a1", also=reads) is True
    assert trips[0] - before == 1
    h, queue = reads.result
    assert queue == "sales" and h["agents"] == "a1" and h["waited"] == "2.000"
    assert store.get_agent("a1")["state"] == "in-call"


def test_finish_brings_the_pop_reads_in_the_same_round_trip(store, trips):
    offer, pops = offered(store)
    assert store.answered(offer, "a1")
    store.r.script_load(store.scripts.finish.script)
    reads = pops.reads("c1")
    before = trips[0]
    assert store.finish_call("c1", "answered", 0.0, also=reads) is True
    assert trips[0] - before == 1
    assert reads.result[0]["agents"] == "a1"
    assert store.get_agent("a1")["state"] == "idle"


def test_a_script_redis_forgot_is_run_again_the_usual_way(store, r):
    offer, pops = offered(store)
    r.script_flush()  # as after a restart of Redis without persistence of scripts
    reads = pops.reads("c1")
    assert store.answered(offer, "a1", also=reads) is True
    assert reads.result is not None and reads.result[1] == "sales"
    assert store.get_agent("a1")["state"] == "in-call"


def test_a_stale_answer_is_still_refused_with_reads_along(store):
    offer, pops = offered(store)
    assert store.answered(offer, "a1", also=pops.reads("c1"))
    assert store.answered(offer, "a1", also=pops.reads("c1")) is False  # the duplicate


def test_a_failed_read_leaves_the_result_empty_and_the_step_done(store, r):
    offer, pops = offered(store)
    r.delete(pops.keys.call_pop("c1"))
    r.set(pops.keys.call_pop("c1"), "not a hash")  # HGETALL fails with WRONGTYPE
    reads = pops.reads("c1")
    assert store.answered(offer, "a1", also=reads) is True
    assert reads.result is None  # the pop reads again (and fails there, logged, not fatal)
    assert store.get_agent("a1")["state"] == "in-call"
