"""What a waiting caller hears about their place (pure): position and estimated wait.

:func:`estimate_wait` turns the queue's recent handle times and its agents into an estimate;
:func:`announcement_phrases` turns position and estimate into the applications to execute
(``playback`` of sound files, ``say`` of numbers in the caller's language). The sound files
are relative to the channel's ``sound_prefix`` (FreeSWITCH's ``en/us/callie`` set by
default); pass :class:`Sounds` to use others.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

#: Handle times beyond this (seconds) are treated as outliers and ignored.
MAX_HANDLE_TIME = 4 * 3600.0
#: Estimates above this are not announced (only the position is).
MAX_ANNOUNCED_WAIT = 3600.0
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z]{2,4})?")


def estimate_wait(
    position: int | None,
    recent_handle_times: Iterable[float],
    free_agents: int,
    staffed_agents: int,
) -> float | None:
    """Seconds until the caller at ``position`` (1 = next) is likely to be served; None when
    it can't be told (no position, no agent staffed, no usable handle times).

    With ``free`` free agents the first ``free`` callers are served at once (0 s). Otherwise
    the caller waits for ``position - free`` calls to end among ``staffed`` agents; the call
    in progress is on average half done: ``(position - free - 0.5) * AHT / staffed``, where AHT
    is the median of the recent handle times (robust against a few very long calls).
    """
    if position is None or position < 1 or staffed_agents is None or staffed_agents < 1:
        return None
    times = [
        float(t)
        for t in recent_handle_times
        if isinstance(t, int | float)
        and not isinstance(t, bool)
        and math.isfinite(t)
        and 0 < t <= MAX_HANDLE_TIME
    ]
    free = max(0, min(int(free_agents or 0), staffed_agents))
    if position <= free:
        return 0.0
    if not times:
        return None
    aht = statistics.median(times)
    return max(0.0, (position - free - 0.5) * aht / staffed_agents)


@dataclass(frozen=True)
class Sounds:
    """Sound files of the announcement (relative to ``sound_prefix``, or absolute)."""

    you_are_number: str = "ivr/ivr-you_are_number.wav"
    in_line: str = "ivr/ivr-in_line.wav"
    estimated_wait: str = "ivr/ivr-estimated_hold_time.wav"


def announcement_phrases(
    position: int | None,
    estimate: float | None,
    language: str | None = "en",
    *,
    sounds: Sounds | None = None,
) -> list[tuple[str, str]]:
    """``(app, arg)`` pairs to execute, in order; empty without a position.

    Position: "you are number" + ``say LANG number pronounced N`` + "in line". Estimate (if
    known and at most :data:`MAX_ANNOUNCED_WAIT`): "estimated hold time" + ``say LANG
    time_measurement pronounced S`` with S the estimate rounded up to whole minutes (at least
    one minute), so the say module speaks "N minutes" in the caller's language.
    """
    if position is None or not isinstance(position, int) or position < 1:
        return []
    s = sounds or Sounds()
    lang = language if language and _LANGUAGE.fullmatch(language) else "en"
    out = [
        ("playback", s.you_are_number),
        ("say", f"{lang} number pronounced {int(position)}"),
        ("playback", s.in_line),
    ]
    if estimate is not None and math.isfinite(estimate) and 0 <= estimate <= MAX_ANNOUNCED_WAIT:
        minutes = max(1, math.ceil(estimate / 60.0))
        out += [
            ("playback", s.estimated_wait),
            ("say", f"{lang} time_measurement pronounced {minutes * 60}"),
        ]
    return out


def due(last_announced: float | None, now: float, every: float) -> bool:
    """Is an announcement due? ``every`` 0 = off; the first one is due ``every`` seconds after
    the caller entered the queue (``last_announced`` = the time they entered)."""
    if not every or every <= 0 or last_announced is None:
        return False
    return now - last_announced >= every
