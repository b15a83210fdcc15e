"""The figures of a queue or an agent, from the counters in Redis (docs/monitoring.md).

The one definition of service level, ASA and AHT, used by the wallboard, ``/metrics`` and
``fsacd stats`` alike; and which counter buckets (UTC days, 15-minute intervals) cover a
period. Plain Python: counters come in as mappings of strings.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Length of one interval of the counters, seconds (``STATS_SLOT`` in state/keys.py).
SLOT = 900
DAY_SECONDS = 86400
#: Counter fields that keep a maximum instead of a sum.
MAX_FIELDS = ("longest_wait",)
#: What an agent can be doing, for time in state (``agent_activity`` in ``_lib.lua``).
ACTIVITIES = ("idle", "ringing", "in-call", "wrap-up", "on-break", "logged-out")


def add_counters(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Counter hashes added up field by field (``longest_wait``: the largest)."""
    out: dict[str, float] = {}
    for row in rows:
        for k, v in row.items():
            try:
                x = float(v)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(x):
                continue
            if k in MAX_FIELDS:
                out[k] = max(out.get(k, 0.0), x)
            else:
                out[k] = out.get(k, 0.0) + x
    return out


def service_level(answered_in_sl: float, answered: float, abandoned: float) -> float | None:
    """The share of calls answered within the queue's ``service_level_seconds``, of the
    calls answered or abandoned: ``answered_in_sl / (answered + abandoned)``; None when
    there were none."""
    total = answered + abandoned
    if total <= 0:
        return None
    return min(1.0, answered_in_sl / total)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


@dataclass(frozen=True)
class QueueFigures:
    """A queue over a period. Seconds for times; None where there is nothing to divide by."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_sl: int = 0
    overflowed: int = 0
    handled: int = 0
    service_level: float | None = None
    asa: float | None = None
    aht: float | None = None
    longest_wait: float = 0.0
    talk_time: float = 0.0
    wrap_time: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``fsacd stats`` (docs/cli.md): fixed fields, rounded."""
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "answered_in_sl": self.answered_in_sl,
            "overflowed": self.overflowed,
            "service_level": _round(self.service_level, 4),
            "asa": _round(self.asa, 1),
            "aht": _round(self.aht, 1),
            "longest_wait": _round(self.longest_wait, 1),
            "talk_time": _round(self.talk_time, 1),
            "wrap_time": _round(self.wrap_time, 1),
            "outcomes": dict(sorted(self.outcomes.items())),
        }


def queue_figures(c: Mapping[str, float]) -> QueueFigures:
    """A queue's figures from its summed counters (:func:`add_counters`).

    ASA = mean wait of the answered calls; AHT = (talk + wrap-up) / calls handled (answered
    and finished); longest wait = the longest a call waited before it was answered or gave up.
    """
    g = c.get
    answered, abandoned = g("answered", 0.0), g("abandoned", 0.0)
    handled = g("handled", 0.0)
    return QueueFigures(
        offered=int(g("offered", 0)),
        answered=int(answered),
        abandoned=int(abandoned),
        answered_in_sl=int(g("answered_in_sl", 0)),
        overflowed=int(g("overflowed", 0)),
        handled=int(handled),
        service_level=service_level(g("answered_in_sl", 0.0), answered, abandoned),
        asa=_ratio(g("wait_answered", 0.0), answered),
        aht=_ratio(g("talk_time", 0.0) + g("wrap_time", 0.0), handled),
        longest_wait=g("longest_wait", 0.0),
        talk_time=g("talk_time", 0.0),
        wrap_time=g("wrap_time", 0.0),
        outcomes={
            k.split(":", 1)[1]: int(v) for k, v in c.items() if k.startswith("outcome:")
        },
    )


@dataclass(frozen=True)
class AgentFigures:
    """An agent over a period: calls rung, answered, missed; talk, wrap-up, time in state."""

    offered: int = 0
    answered: int = 0
    missed: int = 0
    handled: int = 0
    talk_time: float = 0.0
    wrap_time: float = 0.0
    aht: float | None = None
    time_in_state: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "answered": self.answered,
            "missed": self.missed,
            "talk_time": _round(self.talk_time, 1),
            "wrap_time": _round(self.wrap_time, 1),
            "aht": _round(self.aht, 1),
            "time_in_state": {k: _round(v, 1) for k, v in self.time_in_state.items()},
        }


def agent_figures(c: Mapping[str, float], live: tuple[str, float] | None = None) -> AgentFigures:
    """An agent's figures from its summed counters; ``live`` = (activity, seconds so far)
    of the activity still going on, which the counters only get when it ends."""
    g = c.get
    times = {a: g(f"time:{a}", 0.0) for a in ACTIVITIES}
    if live is not None and live[0] in times:
        times[live[0]] += max(0.0, live[1])
    handled = g("handled", 0.0)
    return AgentFigures(
        offered=int(g("offered", 0)),
        answered=int(g("answered", 0)),
        missed=int(g("missed", 0)),
        handled=int(handled),
        talk_time=g("talk_time", 0.0),
        wrap_time=g("wrap_time", 0.0),
        aht=_ratio(g("talk_time", 0.0) + g("wrap_time", 0.0), handled),
        time_in_state={k: v for k, v in times.items() if v > 0},
    )


def activity(status: str, state: str) -> str:
    """What an agent is doing (``agent_activity`` in ``_lib.lua``): the call state while it
    has a call, else logged-out / on-break / idle. Reserved counts as idle (milliseconds)."""
    if state in ("ringing", "in-call", "wrap-up"):
        return state
    if status in ("logged-out", "on-break"):
        return status
    return "idle"


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


# --- periods: which buckets cover [start, now] ----------------------------------------------


def utc_day(t: float) -> str:
    """``YYYY-MM-DD`` (UTC) of epoch seconds ``t``: the name of a day bucket."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")


def utc_slot(t: float) -> str:
    """``YYYY-MM-DDTHH:MM`` (UTC) of the interval holding ``t``: the name of an interval bucket."""
    start = math.floor(t / SLOT) * SLOT
    return dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M")


def buckets(start: float, now: float) -> list[tuple[str, str]]:
    """The buckets that cover ``start`` (rounded down to its interval) to ``now``, as
    ``("day", name)`` for whole UTC days and ``("slot", name)`` for the intervals around them."""
    out: list[tuple[str, str]] = []
    t = math.floor(start / SLOT) * SLOT
    while t <= now:
        if t % DAY_SECONDS == 0:
            out.append(("day", utc_day(t)))
            t += DAY_SECONDS
        else:
            out.append(("slot", utc_slot(t)))
            t += SLOT
    return out


_SINCE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY_SECONDS}


def zone(name: str) -> dt.tzinfo:
    """The time zone of ``[stats] timezone`` (``local``: the machine's)."""
    if name == "local":
        tz = dt.datetime.now().astimezone().tzinfo
        return tz or dt.UTC
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def day_start(now: float, tz: dt.tzinfo) -> float:
    """Epoch seconds of the start of ``now``'s day in ``tz`` (what "today" means)."""
    local = dt.datetime.fromtimestamp(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


def parse_since(text: str, now: float, tz: dt.tzinfo) -> float:
    """``--since``: ``today``, a duration (``90s``, ``15m``, ``1h``, ``7d``) or a date
    ``YYYY-MM-DD`` (its midnight in ``tz``); ValueError with a message otherwise."""
    s = text.strip().lower()
    if s == "today":
        return day_start(now, tz)
    m = _SINCE.fullmatch(s)
    if m:
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds > 400 * DAY_SECONDS:
            raise ValueError(f"--since {text}: at most 400 days are kept")
        return now - seconds
    try:
        day = dt.date.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"--since must be today, a duration like 1h or 30m, or a date YYYY-MM-DD, not {text!r}"
        ) from None
    start = dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    if start > now:
        raise ValueError(f"--since {text}: that day has not begun")
    return start
