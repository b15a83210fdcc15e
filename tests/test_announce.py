"""fsacd.core.announce: estimated wait and the announcement; the queue's waiting keys."""

from __future__ import annotations

import math

import pytest

from fsacd.config import ConfigError, load_text
from fsacd.core import announce
from fsacd.core.announce import announcement_phrases, estimate_wait


@pytest.mark.parametrize(
    ("position", "times", "free", "staffed", "expected"),
    [
        (1, [120, 120, 120], 0, 1, 60.0),  # the call in progress is half done on average
        (3, [120], 0, 1, 300.0),
        (3, [120], 0, 2, 150.0),
        (1, [120], 1, 1, 0.0),  # a free agent: served at once
        (2, [120], 1, 2, 30.0),
        (2, [], 2, 2, 0.0),  # free agents need no handle times
        (2, [], 1, 2, None),  # no data
        (1, [60, 60, 6000], 0, 1, 30.0),  # median: a single very long call does not dominate
        (1, [60, 60, 100_000], 0, 1, 30.0),  # beyond MAX_HANDLE_TIME: ignored
        (1, [60, float("nan"), -5, 0, float("inf"), True], 0, 1, 30.0),
        (1, [120], 0, 0, None),  # nobody staffed
        (0, [120], 0, 1, None),
        (None, [120], 0, 1, None),
        (2, [120], 5, 1, 60.0),  # free clamped to staffed
        (2, [120], -3, 1, 180.0),
    ],
)
def test_estimate_wait(position, times, free, staffed, expected):
    got = estimate_wait(position, times, free, staffed)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_phrases_position_and_estimate():
    assert announcement_phrases(3, 61.0, "en") == [
        ("playback", "ivr/ivr-you_are_number.wav"),
        ("say", "en number pronounced 3"),
        ("playback", "ivr/ivr-in_line.wav"),
        ("playback", "ivr/ivr-estimated_hold_time.wav"),
        ("say", "en time_measurement pronounced 120"),  # rounded up to whole minutes
    ]
    assert announcement_phrases(1, 0.0, "de")[-1] == ("say", "de time_measurement pronounced 60")
    assert len(announcement_phrases(2, None, "en")) == 3
    assert len(announcement_phrases(2, 2 * 3600.0, "en")) == 3  # too long to promise anything
    assert len(announcement_phrases(2, math.nan, "en")) == 3
    assert announcement_phrases(0, 10.0, "en") == []
    assert announcement_phrases(None, 10.0, "en") == []


def test_phrases_language_is_checked_and_sounds_replaceable():
    assert announcement_phrases(2, None, "en us; hangup")[1] == ("say", "en number pronounced 2")
    assert announcement_phrases(2, None, None)[1] == ("say", "en number pronounced 2")
    assert announcement_phrases(2, None, "pt_BR")[1] == ("say", "pt_BR number pronounced 2")
    sounds = announce.Sounds("a.wav", "b.wav", "c.wav")
    phrases = announcement_phrases(1, 30.0, "en", sounds=sounds)
    assert [arg for app, arg in phrases if app == "playback"] == ["a.wav", "b.wav", "c.wav"]


def test_due():
    assert not announce.due(100.0, 200.0, 0)
    assert not announce.due(100.0, 129.0, 30)
    assert announce.due(100.0, 130.0, 30)
    assert not announce.due(None, 130.0, 30)


# --- config keys ----------------------------------------------------------------------------


def test_waiting_keys():
    cfg = load_text(
        "[queues.support]\n"
        "announce_every = 45\n"
        'exit_key = "*"\n'
        'exit_target = "voicemail:5099 XML default"\n'
        'callback_key = "5"\n'
        "[queues.sales]\n"
        'exit_key = "0"\n'
        'exit_target = "ivr:main"\n'
        '[ivr.main]\nprompt = "m.wav"\noptions = { "1" = "queue:support" }\n',
        env={},
    )
    q = cfg.queues["support"]
    assert (q.announce_every, q.exit_key, q.callback_key) == (45.0, "*", "5")
    assert q.exit_target == "voicemail:5099 XML default"
    assert cfg.queues["sales"].exit_target == "ivr:main"
    d = load_text("[queues.x]\n", env={}).queues["x"]
    assert (d.announce_every, d.exit_key, d.exit_target, d.callback_key) == (0.0, None, None, None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("announce_every = 5\n", "queues.support.announce_every: must be 0 (off) or at least 10"),
        ("announce_every = -1\n", "queues.support.announce_every: must be a number of seconds"),
        ('exit_key = "*"\n', "queues.support.exit_target: is required with exit_key"),
        ('exit_target = "hangup"\n', "queues.support.exit_key: is required with exit_target"),
        ('exit_key = "x"\nexit_target = "hangup"\n', "queues.support.exit_key: must be one key"),
        ('exit_key = "*"\nexit_target = "queue:support"\n', "queues.support.exit_target: leads"),
        ('exit_key = "*"\nexit_target = "queue:nope"\n', "queues.support.exit_target: no queue"),
        ('exit_key = "*"\nexit_target = "ivr:nope"\n', "queues.support.exit_target: no menu"),
        ('exit_key = "*"\nexit_target = "callback:support"\n', "queues.support.exit_target: a"),
        ('exit_key = "*"\nexit_target = "bridge:x"\n', "queues.support.exit_target: unknown"),
        (
            'exit_key = "*"\nexit_target = "hangup"\ncallback_key = "*"\n',
            "queues.support.callback_key: must differ from exit_key",
        ),
        ('callback_key = "**"\n', "queues.support.callback_key: must be one key"),
    ],
)
def test_waiting_key_errors(body, expected):
    with pytest.raises(ConfigError) as exc:
        load_text("[queues.support]\n" + body, env={})
    assert any(e.startswith(expected) for e in exc.value.errors), exc.value.errors
