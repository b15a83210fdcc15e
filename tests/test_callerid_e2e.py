"""What the agent's phone shows for each inbound caller-ID policy, through the stand-in."""

from __future__ import annotations

import pytest

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
agent_sees = "{policy}"
allow_network_number = {allow}
number = "+4922199990"
display_name = "Support Hotline"

[queues.sales]
strategy = "ring-all"
"""

CALLER = "+4922129191999"


@pytest.fixture(autouse=True)
def salt(monkeypatch):
    monkeypatch.setenv("FSACD_HISTORY_SALT", "test-salt-0123456789")


def run_call(redis_url, policy, *, allow="false", withheld=False, variables=None):
    acd = Acd(redis_url, queues=QUEUES.format(policy=policy, allow=allow))
    acd.agent("1001", P.answers(after=0.2, talk=30), {"support": 1})
    call = acd.fs.place_call(
        destination="5000",
        caller_number=CALLER,
        caller_name="Erika Muster",
        variables=variables or {},
    )
    if withheld:  # before the channel's greenlet runs: the connect data carries the flag
        call.channel.profile.hide_number = True
        call.channel.profile.hide_name = True
    leg = call.wait_bridged(8)
    return acd, call, leg


def all_redis_text(acd) -> str:
    out = []
    for key in acd.r.scan_iter("*"):
        kind = acd.r.type(key)
        if kind == "hash":
            out += [key, *acd.r.hgetall(key).keys(), *acd.r.hgetall(key).values()]
        elif kind == "string":
            out += [key, acd.r.get(key) or ""]
        elif kind == "stream":
            for _, f in acd.r.xrange(key):
                out += [*f.keys(), *f.values()]
        elif kind in ("set",):
            out += [key, *acd.r.smembers(key)]
        elif kind == "zset":
            out += [key, *acd.r.zrange(key, 0, -1)]
        elif kind == "list":
            out += [key, *acd.r.lrange(key, 0, -1)]
    return "\n".join(out)


def test_agent_sees_the_caller(redis_url):
    acd, call, leg = run_call(redis_url, "caller")
    try:
        assert leg.display.number == CALLER
        assert leg.display.name == "Erika Muster"
        assert acd.store.get_call(call.uuid)["number"] == CALLER
    finally:
        call.hangup()
        acd.stop()


def test_agent_sees_the_queue_number(redis_url):
    acd, call, leg = run_call(redis_url, "queue")
    try:
        assert leg.display.number == "+4922199990"
        assert leg.display.name == "Support Hotline"
    finally:
        call.hangup()
        acd.stop()


def test_agent_sees_the_transferring_agent(redis_url):
    acd, call, leg = run_call(
        redis_url, "transferring-agent", variables={"sip_referred_by": "<sip:1002@pbx.example>"}
    )
    try:
        assert leg.display.number == "1002"
    finally:
        call.hangup()
        acd.stop()


def test_anonymous_hotline_shows_and_stores_no_number(redis_url):
    acd, call, leg = run_call(redis_url, "anonymous")
    try:
        assert leg.display.number in ("anonymous", "")
        assert CALLER not in leg.display.number
        call.hangup()
        wait_for(lambda: acd.store.get_call(call.uuid)["state"] == "ended", what="ended")
        rec = acd.store.get_call(call.uuid)
        assert rec["number"] == "" and rec["number_status"] == "hidden" and rec["number_hash"]
        text = all_redis_text(acd)
        assert CALLER not in text and CALLER[1:] not in text
    finally:
        acd.stop()


def test_withheld_number_is_anonymous_unless_the_queue_allows_network_numbers(redis_url):
    acd, call, leg = run_call(redis_url, "caller", withheld=True)
    try:
        assert CALLER not in leg.display.number
        assert acd.store.get_call(call.uuid)["number_status"] == "hidden"
    finally:
        call.hangup()
        acd.stop()
    acd, call, leg = run_call(redis_url, "caller", allow="true", withheld=True)
    try:
        assert leg.display.number == CALLER
    finally:
        call.hangup()
        acd.stop()
