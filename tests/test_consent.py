"""fsacd.core.consent: recording only with every party's consent; the queue's recording keys."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from fsacd.config import ConfigError, load_text
from fsacd.core import consent
from fsacd.core.consent import Decision, decide

NOW = 1_800_000_000.0
AGENT_YES = consent.give_agent_consent(NOW - 86400, by="cli:alice")
AGENT_REVOKED = {**AGENT_YES, **consent.revoke_agent_consent(NOW - 3600, by="agent")}
AGENT_AGAIN = {**AGENT_REVOKED, **consent.give_agent_consent(NOW - 60)}


@pytest.mark.parametrize(
    ("policy", "answer", "agent", "kw", "expected"),
    [
        ("off", "1", AGENT_YES, {}, Decision(False, "recording-off")),
        (None, "1", AGENT_YES, {}, Decision(False, "recording-off")),
        ("sometimes", "1", AGENT_YES, {}, Decision(False, "unknown-policy")),
        ("ask", "1", AGENT_YES, {}, Decision(True, "consented")),
        ("ask", None, AGENT_YES, {}, Decision(False, "caller-no-answer")),
        ("ask", "", AGENT_YES, {}, Decision(False, "caller-no-answer")),
        ("ask", "2", AGENT_YES, {}, Decision(False, "caller-declined")),
        ("ask", "11", AGENT_YES, {}, Decision(False, "caller-declined")),
        ("ask", "9", AGENT_YES, {"consent_key": "9"}, Decision(True, "consented")),
        ("ask", "1", AGENT_YES, {"consent_key": ""}, Decision(False, "caller-declined")),
        ("ask", "1", None, {}, Decision(False, "agent-no-consent")),
        ("ask", "1", {}, {}, Decision(False, "agent-no-consent")),
        ("ask", "1", AGENT_REVOKED, {}, Decision(False, "agent-no-consent")),
        ("ask", "1", AGENT_AGAIN, {}, Decision(True, "consented")),
        ("ask", "1", {"rec_consent": "given"}, {}, Decision(False, "agent-no-consent")),
        (
            "ask",
            "1",
            {"rec_consent": "given", "rec_consent_at": "x"},
            {},
            Decision(False, "agent-no-consent"),
        ),  # fmt: skip
        (
            "ask",
            "1",
            {"rec_consent": "yes", "rec_consent_at": NOW},
            {},
            Decision(False, "agent-no-consent"),
        ),  # fmt: skip
        ("always-announced", None, AGENT_YES, {"notice_played": True}, Decision(True, "announced")),
        ("always-announced", "5", AGENT_YES, {"notice_played": True}, Decision(True, "announced")),
        ("always-announced", None, AGENT_YES, {}, Decision(False, "notice-not-played")),
        (
            "always-announced",
            None,
            AGENT_YES,
            {"notice_played": "yes"},
            Decision(False, "notice-not-played"),
        ),  # fmt: skip
        (
            "always-announced",
            None,
            AGENT_REVOKED,
            {"notice_played": True},
            Decision(False, "agent-no-consent"),
        ),  # fmt: skip
    ],
)
def test_decide(policy, answer, agent, kw, expected):
    assert decide(policy, answer, agent, **kw) == expected


def test_agent_consent_fields():
    fields = consent.give_agent_consent(NOW, by="cli:alice bob")
    assert fields == {
        "rec_consent": "given",
        "rec_consent_at": "1800000000.000",
        "rec_consent_by": "cli:alice_bob",
        "rec_revoked_at": "",
        "rec_revoked_by": "",
    }
    assert set(fields) <= set(consent.AGENT_FIELDS)
    assert consent.agent_has_consent(fields)
    # what Store.get_agent gives back: numbers decoded
    assert consent.agent_has_consent({**fields, "rec_consent_at": NOW})
    revoked = {**fields, **consent.revoke_agent_consent(NOW + 5, by="agent")}
    assert not consent.agent_has_consent(revoked)
    assert revoked["rec_consent_at"] == "1800000000.000"  # the date given is kept
    view = consent.agent_consent_view(revoked)
    assert view["consent"] is False and view["state"] == "revoked"
    assert view["given_at"] == NOW and view["revoked_at"] == NOW + 5
    assert consent.agent_consent_view(None)["state"] == "never"


def test_call_record_and_revocation():
    d = decide("ask", "1", AGENT_YES)
    fields = consent.call_fields(d, "ask", NOW, agent=AGENT_YES, path="support/x.wav")
    assert fields["recorded"] == "yes" and fields["rec_reason"] == "consented"
    assert fields["rec_agent_consent_at"] == AGENT_YES["rec_consent_at"]
    assert consent.may_start(fields)
    rev = consent.revoke("c1", "agent", NOW + 10)
    assert rev.stop is True
    assert rev.event == {"type": "recording-revoked", "call": "c1", "by": "agent"}
    assert not consent.may_start({**fields, **rev.fields})
    assert consent.revoke("c1", "somebody", NOW).fields["rec_revoked_by"] == "unknown"
    no = consent.call_fields(decide("ask", None, AGENT_YES), "ask", NOW, path="p.wav")
    assert no["recorded"] == "no" and no["rec_path"] == "" and not consent.may_start(no)
    for broken in (None, {}, {"recorded": "yes"}, {**fields, "rec_consent_at": ""}):
        assert not consent.may_start(broken)


def test_commands():
    assert consent.start_command("abc-1", "support/2026-01-01/abc-1.wav") == (
        "uuid_record abc-1 start support/2026-01-01/abc-1.wav"
    )
    assert consent.stop_command("abc-1") == "uuid_record abc-1 stop all"
    for bad in ("a b", "a;b", "", "x" * 100):
        with pytest.raises(ValueError):
            consent.stop_command(bad)
    for bad in ("a b.wav", "../x.wav", "{call}.wav", "x.wav\nhangup"):
        with pytest.raises(ValueError):
            consent.start_command("abc", bad)


@pytest.mark.parametrize(
    ("queue", "when", "call", "expected"),
    [
        ("support", date(2026, 11, 22), "a79895a1-7e01", "support/2026-11-22/a79895a1-7e01.wav"),
        ("support", datetime(2026, 11, 22, 23, 0), "c", "support/2026-11-22/c.wav"),
        ("support", 1795317816.0, "c", "support/2026-11-22/c.wav"),
        ("../../etc", "2026-11-22", "c", "etc/2026-11-22/c.wav"),
        ("/abs", "2026-11-22", "../../x", "abs/2026-11-22/x.wav"),
        ("a b", "../..", "c/d", "a_b/_/c_d.wav"),
        ("", "", "", "_/_/_.wav"),
        ("..", "..", "..", "_/_/_.wav"),
    ],
)
def test_recording_path_values_are_sanitised(queue, when, call, expected):
    assert consent.recording_path("{queue}/{date}/{call}.wav", queue, when, call) == expected


def test_recording_path_template():
    assert (
        consent.recording_path("/var/rec/{date}-{queue}-{call}.mp3", "q", "2026-01-02", "c")
        == "/var/rec/2026-01-02-q-c.mp3"
    )
    for bad, words in [
        ("{queue}/{date}.wav", "must contain {call}"),
        ("../{call}.wav", "must not contain .."),
        ("a//{call}.wav", "must not contain .."),
        ("{call}", "file extension"),
        ("{call}.wav ", "may only use"),
        ("${x}/{call}.wav", "may only use"),
        ("{user}/{call}.wav", "only contain the placeholders"),
        (3, "must be a path template string"),
    ]:
        problem = consent.check_template(bad)
        assert problem and words in problem, (bad, problem)
    with pytest.raises(ValueError):
        consent.recording_path("{queue}.wav", "q", "d", "c")


# --- config keys ----------------------------------------------------------------------------


def queue_errors(body: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text("[queues.support]\n" + body, env={})
    return exc.value.errors


def test_recording_keys():
    cfg = load_text(
        "[queues.support]\n"
        'recording = "ask"\n'
        'recording_notice = ["say:This call may be recorded.", "rec/press-1.wav"]\n'
        'consent_key = "5"\n'
        'recording_path = "{queue}/{date}/{call}.mp3"\n'
        "[queues.sales]\n",
        env={},
    )
    q = cfg.queues["support"]
    assert q.recording == "ask" and q.consent_key == "5"
    assert q.recording_notice == ("say:This call may be recorded.", "rec/press-1.wav")
    assert q.recording_path == "{queue}/{date}/{call}.mp3"
    d = cfg.queues["sales"]
    assert (d.recording, d.recording_notice, d.consent_key) == ("off", None, "1")
    assert d.recording_path == "{queue}/{date}/{call}.wav"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('recording = "yes"\n', "queues.support.recording: must be one of off, ask,"),
        ('recording = "ask"\n', "queues.support.recording_notice: is required with recording"),
        (
            'recording = "always-announced"\n',
            "queues.support.recording_notice: is required with recording",
        ),
        ('recording_notice = "a b.wav"\n', "queues.support.recording_notice:"),
        ('recording_path = "../{call}.wav"\n', "queues.support.recording_path: must not"),
        ('recording_path = "{call}"\n', "queues.support.recording_path: must end in"),
        ('consent_key = "12"\n', "queues.support.consent_key: must be one key of 0-9 * #"),
        ('consent_key = "A"\n', "queues.support.consent_key: must be one key of 0-9 * #"),
    ],
)
def test_recording_key_errors(body, expected):
    errors = queue_errors(body)
    assert any(e.startswith(expected) for e in errors), errors
