"""A prompt FreeSWITCH cannot play is logged once, clearly (stand-in: a file that is not
there gives ``FILE NOT FOUND`` / a read that gives up at once, as FreeSWITCH does)."""

from __future__ import annotations

import logging

import pytest

from fsacd.acd import prompts
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
wrap_up = 0.2

[queues.sales]

[ivr.main]
greeting = "ivr/missing-greeting.wav"
prompt = "ivr/missing-menu.wav"
timeout = 3
max_tries = 1
default = "queue:support"

[ivr.main.options]
"1" = "queue:support"
"""
ROUTES = '"5003" = "ivr:main"\n'


@pytest.fixture
def acd(redis_url):
    prompts.reset()
    h = Acd(redis_url, queues=QUEUES, extra_routes=ROUTES)
    h.fs.media_durations.update({"ivr/missing-greeting.wav": None, "ivr/missing-menu.wav": None})
    h.agent("1001", P.answers(after=0.1, talk=30), {"support": 1})
    yield h
    h.stop()


def test_a_missing_menu_prompt_is_logged_once(acd, caplog):
    caplog.set_level(logging.ERROR, logger="fsacd.acd.prompts")
    for _ in range(2):
        call = acd.fs.place_call(destination="5003")
        call.wait_bridged(8)  # the menu gave up at once and went to its default
        call.hangup()
        wait_for(lambda: acd.all_agents_free(), what="agent free")
    lines = [r.getMessage() for r in caplog.records if r.name == "fsacd.acd.prompts"]
    assert len(lines) == 1, lines
    assert "FreeSWITCH cannot play the prompt" in lines[0]
    assert "missing-greeting.wav" in lines[0] and "without waiting for a key" in lines[0]
    assert "fsacd doctor" in lines[0]


def test_check_playback_and_read_rules():
    prompts.reset()
    assert prompts.check_playback("a.wav", "FILE NOT FOUND")
    assert not prompts.report("a.wav", "again")  # once
    assert not prompts.check_playback("b.wav", "FILE PLAYED")
    assert not prompts.check_read("c.wav", "1", 0.1, 5000)  # a key: heard
    assert not prompts.check_read("c.wav", "", 3.0, 5000)  # waited for a key
    assert prompts.check_read("c.wav", "", 0.2, 5000)
