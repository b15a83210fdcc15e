"""Calls out to customers (``fsacd_route=dial:QUEUE``): what the customer's phone shows."""

from __future__ import annotations

import pytest

from fsacd.standin import PhoneBehaviour as P
from fsacd.verified.registry import VerifiedNumbers
from tests.acd_harness import Acd, wait_for

NUMBERS = """
[numbers]
network_number = "+4922199000"
pai_host = "pbx.example"
gateway = "trunk1"

[queues.support]
strategy = "first-available"

[queues.sales]
strategy = "ring-all"
customer_sees = "{policy}"
display_name = "Sales"
{extra}
"""
POOL = "+4922199990"


def start(redis_url, policy, extra=""):
    acd = Acd(redis_url, queues=NUMBERS.format(policy=policy, extra=extra))
    acd.fs.phones.register("sofia/gateway/trunk1/*", P.answers(after=0.1, talk=30))
    acd.agent("1001", P.answers(after=0.1, talk=30), {"sales": 1})
    return acd


def dial(acd, number="030 1234567"):
    call = acd.fs.place_call(
        destination=number,
        caller_number="1001",
        variables={"fsacd_route": "dial:sales", "fsacd_agent": "1001"},
    )
    leg = call.wait_bridged(8)
    return call, leg


@pytest.fixture
def verified(redis_url):
    def mark(acd, number, **kw):
        v = VerifiedNumbers(acd.r, acd.store.keys, acd.cfg.numbers)
        v.mark_verified(number, reason="test portfolio", by="test", queues=["sales"], **kw)

    return mark


def test_network_policy_shows_the_trunk_number(redis_url):
    acd = start(redis_url, "network")
    try:
        call, leg = dial(acd)
        assert leg.endpoint == "sofia/gateway/trunk1/+49301234567"
        assert leg.display.number == "+4922199000"
        ev = acd.events("outbound-started")[0]
        assert ev["agent"] == "1001" and ev["number"] == "+49301234567"
        call.hangup()
    finally:
        acd.stop()


def test_pool_number_is_shown_when_verified_with_network_number_in_pai(redis_url, verified):
    acd = start(redis_url, "pool", f'pool_fixed = "{POOL}"')
    try:
        verified(acd, POOL)
        call, leg = dial(acd)
        assert leg.display.number == POOL
        assert leg.display.sip_headers["P-Asserted-Identity"] == "<sip:+4922199000@pbx.example>"
        assert acd.events("outbound-started")[0]["cid"] == "pool"
        call.hangup()
    finally:
        acd.stop()


def test_unverified_pool_number_falls_back_to_network_and_says_why(redis_url):
    acd = start(redis_url, "pool", f'pool_fixed = "{POOL}"')
    try:
        call, leg = dial(acd)  # not even registered
        assert leg.display.number == "+4922199000"
        ev = acd.events("outbound-started")[0]
        assert "not registered" in ev["reason"] and "fell back to network" in ev["reason"]
        call.hangup()
        # registered, verification pending: still never presented
        VerifiedNumbers(acd.r, acd.store.keys, acd.cfg.numbers).add(POOL, queues=["sales"])
        call, leg = dial(acd)
        assert leg.display.number == "+4922199000"
        ev = acd.events("outbound-started")[1]
        assert POOL in ev["reason"] and "fell back to network" in ev["reason"]
        call.hangup()
    finally:
        acd.stop()


def test_anonymous_policy_hides_the_number_from_the_customer(redis_url):
    acd = start(redis_url, "anonymous")
    try:
        call, leg = dial(acd)
        assert leg.display.number == "anonymous"
        assert leg.display.sip_headers["Privacy"] == "id"
        assert leg.display.sip_headers["P-Asserted-Identity"] == "<sip:+4922199000@pbx.example>"
        call.hangup()
    finally:
        acd.stop()


def test_an_invalid_destination_is_refused_clearly(redis_url):
    acd = start(redis_url, "network")
    try:
        call = acd.fs.place_call(
            destination="12", caller_number="1001", variables={"fsacd_route": "dial:sales"}
        )
        assert call.wait_hangup(5) == "INVALID_NUMBER_FORMAT"
        wait_for(lambda: acd.events("outbound-refused"), what="refusal recorded")
    finally:
        acd.stop()
