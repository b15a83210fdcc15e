"""What a playback target sounds like: its kind (for the caller's ``heard`` log) and length.

No audio is produced. ``tone_stream://`` lengths are computed from the tone spec,
``silence_stream://N`` lasts N ms, ``local_stream://`` never ends, files last a configurable
short time (``FakeFreeSwitch(media_durations=..., default_file_duration=...)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TONE_SEG = re.compile(r"%\(([^)]*)\)")


@dataclass(frozen=True)
class Media:
    """A playback target: ``kind`` is moh/tone/silence/file, ``duration`` None = endless."""

    target: str
    kind: str
    duration: float | None
    exists: bool = True


def tone_duration(spec: str) -> float | None:
    """Seconds a ``tone_stream://`` spec plays; None when it loops forever."""
    total_ms = 0.0
    loops = 1
    for part in spec.split(";"):
        part = part.strip()
        m = re.fullmatch(r"(?:loops|l)=(-?\d+)", part, re.IGNORECASE)
        if m:
            loops = int(m.group(1))
            continue
        for seg in _TONE_SEG.findall(part):
            nums = [x.strip() for x in seg.split(",")]
            try:
                on = float(nums[0]) if nums and nums[0] else 0.0
                off = float(nums[1]) if len(nums) > 1 and nums[1] else 0.0
            except ValueError:
                continue
            total_ms += on + off
    if loops < 0:
        return None
    return total_ms * max(loops, 1) / 1000.0


def classify(
    target: str,
    durations: dict[str, float | None] | None = None,
    default_file: float = 0.2,
) -> Media:
    """Kind and duration of one playback target (``file_string://`` sums its parts)."""
    t = target.strip()
    durations = durations or {}
    if t in durations:
        d = durations[t]
        if d is None:
            return Media(t, "file", 0.0, exists=False)
        return Media(t, _kind(t), d)
    if t.startswith("file_string://"):
        parts = [classify(p, durations, default_file) for p in t[14:].split("!") if p]
        if any(p.duration is None for p in parts):
            return Media(t, parts[0].kind if parts else "file", None)
        kind = parts[0].kind if parts else "file"
        return Media(t, kind, sum(p.duration or 0.0 for p in parts), all(p.exists for p in parts))
    kind = _kind(t)
    if kind == "moh":
        return Media(t, kind, None)
    if kind == "tone":
        return Media(t, kind, tone_duration(t[len("tone_stream://") :]))
    if kind == "silence":
        ms = t[len("silence_stream://") :].split(",")[0]
        try:
            n = int(ms)
        except ValueError:
            n = 0
        return Media(t, kind, None if n <= 0 else n / 1000.0)
    if not t:
        return Media(t, "file", 0.0, exists=False)
    return Media(t, kind, default_file)


def _kind(t: str) -> str:
    if t.startswith("local_stream://") or t == "moh":
        return "moh"
    if t.startswith("tone_stream://"):
        return "tone"
    if t.startswith("silence_stream://"):
        return "silence"
    return "file"


def is_moh(target: str | None) -> bool:
    """``switch_is_moh``-like: a stream the caller hears as music."""
    return bool(target) and target.strip().startswith("local_stream://")
