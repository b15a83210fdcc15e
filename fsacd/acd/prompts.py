"""Prompts FreeSWITCH could not play, logged once per prompt (per process), clearly.

FreeSWITCH's ``playback`` says so in its completion (``Application-Response`` ``FILE NOT
FOUND`` or ``PLAYBACK ERROR``, mod_dptools ``playback_function``). ``play_and_get_digits``
says nothing: when its prompt cannot be opened (``switch_ivr_play_file`` returns
``SWITCH_STATUS_NOTFOUND``) the read gives up at once, so a read that ends without a key
well before its timeout means the prompt was not heard.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: Completion responses of ``playback`` that mean nothing was played.
FAILED_RESPONSES = frozenset({"FILE NOT FOUND", "PLAYBACK ERROR"})
#: At most this many prompts are remembered as reported.
REMEMBERED = 1000

_reported: set[str] = set()


def report(target: str, why: str, call_id: str = "") -> bool:
    """Log that FreeSWITCH cannot play ``target`` (once per target); True if logged now."""
    if not target or target in _reported:
        return False
    if len(_reported) >= REMEMBERED:
        _reported.clear()
    _reported.add(target)
    log.error(
        "FreeSWITCH cannot play the prompt %r (%s%s): callers hear nothing there. Install the "
        "sound files or fix the path; `fsacd doctor` lists every prompt the switch lacks "
        "(logged once per prompt)",
        target[:300],
        why,
        f", call {call_id}" if call_id else "",
    )
    return True


def check_playback(target: str, response: str | None, call_id: str = "") -> bool:
    """``playback``'s completion: report a failed one; True if it failed."""
    if response in FAILED_RESPONSES:
        report(target, f"playback: {response}", call_id)
        return True
    return False


def check_read(
    target: str, digits: str, elapsed: float, timeout_ms: int, call_id: str = ""
) -> bool:
    """A ``play_and_get_digits`` that ended without a key in under half its timeout: its
    prompt could not be played. True (and reported) then."""
    if digits or not target or timeout_ms <= 0 or elapsed >= timeout_ms / 2000.0:
        return False
    report(
        target, f"play_and_get_digits ended after {elapsed:.1f}s without waiting for a key", call_id
    )
    return True


def reset() -> None:
    """Forget what was reported (tests)."""
    _reported.clear()
