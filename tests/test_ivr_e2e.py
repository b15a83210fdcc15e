"""The IVR inside the full call path: stand-in DTMF -> menus -> the right queue and agent."""

from __future__ import annotations

import pytest

from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2

[queues.sales]
strategy = "first-available"
ring_timeout = 2

[ivr.main]
prompt = "tone_stream://%(100,0,600)"
invalid_prompt = "tone_stream://%(100,0,300)"
timeout = 1
max_tries = 2
default = "queue:support"

[ivr.main.options]
"1" = "queue:support"
"2" = "ivr:account"
"0" = "hangup"

[ivr.account]
timeout = 2

[ivr.account.collect]
var = "account"
min = 4
max = 8
terminator = "#"
prompt = "tone_stream://%(100,0,500)"
regex = "\\\\d+"
next = "queue:sales"
"""
ROUTES = '"5003" = "ivr:main"\n'


@pytest.fixture
def acd(redis_url):
    h = Acd(redis_url, queues=QUEUES, extra_routes=ROUTES)
    h.agent("1001", P.answers(after=0.2, talk=30), {"support": 1})
    h.agent("2001", P.answers(after=0.2, talk=30), {"sales": 1})
    yield h
    h.stop()


def test_menu_choice_routes_to_the_queue(acd):
    call = acd.fs.place_call(destination="5003", dtmf=[(0.3, "1")])
    leg = call.wait_bridged(8)
    assert leg.variables["fsacd_agent"] == "1001"
    ev = acd.events("call-ivr")[0]
    assert ev["action"] == "queue" and ev["target"] == "support" and ev["reason"] == "selected"
    call.hangup()


def test_multi_digit_input_is_stored_for_the_screen_pop(acd):
    call = acd.fs.place_call(destination="5003", dtmf=[(0.3, "2"), (0.8, "4711#")])
    leg = call.wait_bridged(10)
    assert leg.variables["fsacd_agent"] == "2001"
    rec = acd.store.get_call(call.uuid)
    assert rec["ivr_account"] == "4711"
    assert "4711" not in acd.events("call-ivr")[0]["path"]  # never the digits in the path
    call.hangup()


def test_invalid_then_no_input_leads_to_the_default(acd):
    call = acd.fs.place_call(destination="5003", dtmf=[(0.3, "7")])
    leg = call.wait_bridged(12)
    assert leg.variables["fsacd_agent"] == "1001"
    ev = acd.events("call-ivr")[0]
    assert ev["reason"] == "default"
    call.hangup()


def test_hangup_option_ends_the_call(acd):
    call = acd.fs.place_call(destination="5003", dtmf=[(0.3, "0")])
    call.wait_hangup(8)
    assert acd.events("call-entered") == []
