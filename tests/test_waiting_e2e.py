"""Recording only with consent, announcements and the exit key, through the stand-in."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.core import consent
from fsacd.standin import PhoneBehaviour as P
from tests.acd_harness import Acd, wait_for

QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
recording = "{recording}"
recording_notice = "tone_stream://%(200,0,500)"
recording_path = "{{queue}}/{{date}}/{{call}}.wav"
announce_every = {announce}
exit_key = "9"
exit_target = "queue:sales"

[queues.sales]
strategy = "first-available"
ring_timeout = 2
"""


def make(redis_url, recording="ask", announce=0):
    return Acd(redis_url, queues=QUEUES.format(recording=recording, announce=announce))


def recording_log(call) -> list[str]:
    return [what for _, what, _ in call.channel.log if what in ("record_start", "record_stop")]


def consenting_agent(acd, agent_id="1001", queue="support", talk=30.0):
    acd.agent(agent_id, P.answers(after=0.8, talk=talk), {queue: 1})
    acd.r.hset(acd.store.keys.agent(agent_id), mapping=consent.give_agent_consent(time.time()))


def test_caller_consents_and_agent_consents_so_the_call_is_recorded(redis_url):
    acd = make(redis_url)
    try:
        consenting_agent(acd)
        call = acd.fs.place_call(destination="5000", dtmf=[(0.1, "1")])
        call.wait_bridged(8)
        wait_for(lambda: recording_log(call) == ["record_start"], what="recording started")
        rec = acd.store.get_call(call.uuid)
        assert rec["recorded"] == "yes" and rec["rec_reason"] == "consented"
        assert rec["rec_path"].startswith("support/") and rec["rec_path"].endswith(".wav")
        # the caller revokes with the revoke key: the recording stops at once
        call.send_dtmf("*")
        wait_for(lambda: recording_log(call) == ["record_start", "record_stop"], what="stop")
        rec = acd.store.get_call(call.uuid)
        assert rec["rec_revoked_by"] == "caller" and rec["rec_revoked_at"]
        assert acd.events("recording-revoked")[0]["by"] == "caller"
        call.hangup()
    finally:
        acd.stop()


@pytest.mark.parametrize("dtmf", [[], [(0.1, "2")]], ids=["no-key", "other-key"])
def test_no_consent_from_the_caller_means_no_recording(redis_url, dtmf):
    acd = make(redis_url)
    try:
        consenting_agent(acd)
        call = acd.fs.place_call(destination="5000", dtmf=dtmf)
        call.wait_bridged(12)
        time.sleep(0.3)
        assert recording_log(call) == []
        assert acd.store.get_call(call.uuid)["recorded"] == "no"
        call.hangup()
    finally:
        acd.stop()


def test_agent_without_consent_is_never_recorded(redis_url):
    acd = make(redis_url)
    try:
        acd.agent("1001", P.answers(after=0.8, talk=30), {"support": 1})
        call = acd.fs.place_call(destination="5000", dtmf=[(0.1, "1")])
        call.wait_bridged(8)
        time.sleep(0.3)
        assert recording_log(call) == []
        assert acd.store.get_call(call.uuid)["rec_reason"] == "agent-no-consent"
        call.hangup()
    finally:
        acd.stop()


def test_agent_and_cli_can_revoke(redis_url, tmp_path):
    acd = make(redis_url, recording="always-announced")
    try:
        consenting_agent(acd)
        consenting_agent(acd, "1002")
        first = acd.fs.place_call(destination="5000")
        leg = first.wait_bridged(8)
        wait_for(lambda: recording_log(first) == ["record_start"], what="recording")
        leg.send_dtmf("*")  # the agent's key, seen on the inbound event socket
        wait_for(
            lambda: recording_log(first) == ["record_start", "record_stop"],
            what="stopped by the agent",
        )
        assert acd.store.get_call(first.uuid)["rec_revoked_by"] == "agent"

        second = acd.fs.place_call(destination="5000")
        second.wait_bridged(8)
        wait_for(lambda: recording_log(second) == ["record_start"], what="recording 2")
        cfg = tmp_path / "fsacd.toml"
        cfg.write_text(f'[redis]\nurl = "{redis_url}"\n[queues.support]\n')
        res = CliRunner().invoke(
            main, ["--config", str(cfg), "call", "revoke-recording", second.uuid]
        )
        assert res.exit_code == 0, res.output
        wait_for(
            lambda: recording_log(second) == ["record_start", "record_stop"],
            what="stopped from the CLI",
        )
        assert acd.store.get_call(second.uuid)["rec_revoked_by"] == "cli"
        for c in (first, second):
            c.hangup()
    finally:
        acd.stop()


def test_position_is_announced_while_waiting(redis_url):
    acd = make(redis_url, recording="off", announce=10)
    try:
        acd.cfg.queues["support"].__dict__["announce_every"] = 1.0  # short for the test
        calls = []
        for i in range(2):  # one after the other: the second caller is number 2 in line
            calls.append(acd.fs.place_call(destination="5000", caller_number=f"+49221000{i}"))
            wait_for(
                lambda c=calls[-1]: acd.store.position(c.uuid) == len(calls),
                what=f"caller {i + 1} queued",
            )
        wait_for(
            lambda: any(
                app == "say" and "number pronounced 2" in (arg or "") for app, arg in calls[1].apps
            ),
            timeout=8,
            what="position 2 announced",
        )
        assert calls[1].heard[-1][0] in ("moh", "file", "say", "tone")
        for c in calls:
            c.hangup()
    finally:
        acd.stop()


def test_exit_key_moves_the_caller_to_the_exit_target(redis_url):
    acd = make(redis_url, recording="off")
    try:
        acd.agent("2001", P.answers(after=0.1, talk=30), {"sales": 1})
        call = acd.fs.place_call(destination="5000", dtmf=[(0.5, "9")])
        leg = call.wait_bridged(8)
        assert leg.variables["fsacd_agent"] == "2001"
        ev = acd.events("call-exit-key")
        assert ev and ev[0]["target"] == "queue:sales"
        moved = acd.events("call-overflowed")
        assert moved and moved[0]["reason"] == "exit-with-key"
        call.hangup()
    finally:
        acd.stop()
