"""Classifying bridge results per agent leg, on events recorded from a real FreeSWITCH."""

import json

import pytest

from fsacd.core.outcomes import OUTCOMES, classify, leg_results, parse_originate_causes
from fsacd.esl.framing import FrameReader, frame_event

# leg uuids FreeSWITCH gave the agent legs in the recordings
BUSY_1006 = "8b0a8a50-4193-48f4-a921-5c47132d9e54"
REJECT_1007 = "0b4d9287-16ee-4880-ad3a-09fc7a3a30b4"
NOANSWER_1002 = "ffc56c78-9356-47ac-8ba8-5f3517f96ee9"
RA_NOANSWER_1002 = "6bc62f8f-cd67-43ad-af4c-129725e95ffb"
RA_AGENT_1003 = "cdc09575-fe39-4d41-b289-33891f991559"
EARLY_1201 = "f55878d1-c41c-4022-99f8-ade34910cf50"
SLOW_1202 = "f82dbd37-fa96-4ae1-ab86-57ab491a905a"
EARLY_1203 = "d11f32d5-42da-4295-9fe2-889d9a9b0ff2"
SLOW_1204 = "d6edb511-43b5-4611-9046-3e2d1843b76d"


def events(transcripts_dir, name):
    """The events FreeSWITCH sent in a recording, parsed by our framing."""
    reader, out = FrameReader(), []
    with open(transcripts_dir / f"{name}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["dir"] == "in":
                for frame in reader.feed(rec["data"].encode("utf-8")):
                    ev = frame_event(frame)
                    if ev is not None:
                        out.append(ev)
    return out


def bridge_results(transcripts_dir, name):
    """Headers of each CHANNEL_EXECUTE_COMPLETE of a bridge, in order."""
    return [
        ev.headers
        for ev in events(transcripts_dir, name)
        if ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.get("Application") == "bridge"
    ]


@pytest.mark.parametrize(
    "scenario, index, legs, expected",
    [
        ("outbound-bridge-no-answer", 0, {NOANSWER_1002: "1002"}, {"1002": "no-answer"}),
        ("busy-then-reject", 0, {BUSY_1006: "1006"}, {"1006": "busy"}),
        ("busy-then-reject", 1, {REJECT_1007: "1007"}, {"1007": "reject"}),
        # causes accumulate over the bridges of a call: the first leg is still listed
        ("busy-then-reject", 1, {BUSY_1006: "1006"}, {"1006": "busy"}),
        (
            "outbound-ring-all",
            0,
            {RA_NOANSWER_1002: "1002", RA_AGENT_1003: "1003"},
            {"1002": "lose-race", "1003": "answered"},
        ),
        (
            "ring-all-early-media",
            0,
            {EARLY_1201: "1201", SLOW_1202: "1202"},
            {"1201": "answered", "1202": "lose-race"},  # early media "won" the race
        ),
        (
            "ring-all-early-media",
            1,
            {EARLY_1203: "1203", SLOW_1204: "1204"},
            {"1203": "lose-race", "1204": "answered"},
        ),
        # a single leg missing from originate_causes: the bridge's disposition
        ("busy-then-reject", 1, {"not-in-causes": "1007"}, {"1007": "reject"}),
        ("outbound-bridge-no-answer", 0, {"x": "1002"}, {"1002": "no-answer"}),
        # several legs and one missing: nothing known about it
        (
            "busy-then-reject",
            1,
            {REJECT_1007: "1007", "missing": "1008"},
            {"1007": "reject", "1008": "none"},
        ),
    ],
)
def test_leg_results_on_recordings(transcripts_dir, scenario, index, legs, expected):
    headers = bridge_results(transcripts_dir, scenario)[index]
    assert leg_results(headers, legs) == expected


def test_leg_results_on_channel_bridge_event(transcripts_dir):
    bridge = next(
        e for e in events(transcripts_dir, "outbound-ring-all") if e.name == "CHANNEL_BRIDGE"
    )
    got = leg_results(bridge.headers, {RA_NOANSWER_1002: "1002", RA_AGENT_1003: "1003"})
    assert got == {"1002": "lose-race", "1003": "answered"}


def test_parse_originate_causes():
    assert parse_originate_causes(None) == {}
    assert parse_originate_causes("") == {}
    assert parse_originate_causes("u1;USER_BUSY") == {"u1": "USER_BUSY"}
    assert parse_originate_causes("ARRAY::u1;USER_BUSY|:u2;call_rejected") == {
        "u1": "USER_BUSY",
        "u2": "CALL_REJECTED",
    }
    # still URL-encoded, as on the wire
    assert parse_originate_causes("ARRAY%3A%3Au1%3BNONE%7C%3Au2%3BLOSE_RACE") == {
        "u1": "NONE",
        "u2": "LOSE_RACE",
    }
    assert parse_originate_causes("garbage") == {}


@pytest.mark.parametrize(
    "cause, outcome",
    [
        ("ALLOTTED_TIMEOUT", "no-answer"),
        ("NO_ANSWER", "no-answer"),
        ("NO_USER_RESPONSE", "no-answer"),
        ("PROGRESS_TIMEOUT", "no-answer"),
        ("USER_BUSY", "busy"),
        ("CALL_REJECTED", "reject"),
        ("LOSE_RACE", "lose-race"),
        ("ORIGINATOR_CANCEL", "cancel"),
        ("USER_NOT_REGISTERED", "unreachable"),
        ("SUBSCRIBER_ABSENT", "unreachable"),
        ("UNALLOCATED_NUMBER", "unreachable"),
        ("NO_ROUTE_DESTINATION", "unreachable"),
        ("DESTINATION_OUT_OF_ORDER", "unreachable"),
        ("NONE", "answered"),
        ("SUCCESS", "answered"),
        ("success", "answered"),
        ("INCOMPATIBLE_DESTINATION", "error"),
        ("", "none"),
        (None, "none"),
    ],
)
def test_classify(cause, outcome):
    assert classify(cause) == outcome
    assert outcome in OUTCOMES
