"""Recording only with consent (pure): the decision, the agent's consent, the call's record.

A call is recorded only when every party consented (docs/ivr.md#recording-consent):

- the queue's policy (``recording``) is ``ask`` and the caller pressed the consent key, or
  ``always-announced`` and the notice was played to the end;
- and the agent's profile holds an explicit, unrevoked consent.

Everything here fails closed: an unknown policy, a missing or malformed field, a consent
that was revoked, no answer — no recording. Either party can revoke during the call; the
caller of :func:`revoke` then stops the recording at once with :func:`stop_command`
(``api uuid_record <uuid> stop all`` acts immediately; an ``execute`` would wait behind the
bridge).

Agent consent lives in the agent's hash (``agent:{id}``) as the fields of
:data:`AGENT_FIELDS`; a call's consent in the call's hash (``call:{id}``) as the fields of
:data:`CALL_FIELDS`. The functions return the fields to write (``HSET``); they never touch
Redis themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

POLICIES = ("off", "ask", "always-announced")
PARTIES = ("caller", "agent", "cli")
DEFAULT_PATH_TEMPLATE = "{queue}/{date}/{call}.wav"

#: Agent hash fields: ``rec_consent`` (``given``/``revoked``), when and by whom it was given,
#: when and by whom it was revoked.
AGENT_FIELDS = (
    "rec_consent",
    "rec_consent_at",
    "rec_consent_by",
    "rec_revoked_at",
    "rec_revoked_by",
)
#: Call hash fields: ``recorded`` (``yes``/``no``), ``rec_reason``, ``rec_policy``,
#: ``rec_consent_at`` (when the caller's consent was given), ``rec_agent_consent_at``,
#: ``rec_path``, ``rec_started_at``, ``rec_revoked_at``, ``rec_revoked_by``, ``rec_stopped_at``.
CALL_FIELDS = (
    "recorded",
    "rec_reason",
    "rec_policy",
    "rec_consent_at",
    "rec_agent_consent_at",
    "rec_path",
    "rec_started_at",
    "rec_revoked_at",
    "rec_revoked_by",
    "rec_stopped_at",
)

_PLACEHOLDERS = ("{queue}", "{date}", "{call}")
_TEMPLATE_CHARS = re.compile(r"[A-Za-z0-9_./{}-]+")
_VALUE_KEEP = re.compile(r"[^A-Za-z0-9_-]")
_UUID_SAFE = re.compile(r"[A-Za-z0-9-]{1,64}")
_BY = re.compile(r"[^A-Za-z0-9_.:@-]")


@dataclass(frozen=True)
class Decision:
    """Whether to record, and why (``reason`` is stored as ``rec_reason``).

    Reasons: ``consented`` (ask: caller pressed the key; agent consents), ``announced``
    (always-announced: notice played; agent consents), ``recording-off``, ``unknown-policy``,
    ``caller-no-answer``, ``caller-declined``, ``notice-not-played``, ``agent-no-consent``.
    """

    record: bool
    reason: str


def decide(
    queue_policy: str | None,
    caller_answer: str | None,
    agent_consent: Mapping[str, Any] | None,
    *,
    consent_key: str = "1",
    notice_played: bool = False,
) -> Decision:
    """Record this call? ``caller_answer``: the key the caller pressed after the notice (``ask``),
    None for no key. ``agent_consent``: the agent's hash (or just its consent fields).
    ``notice_played``: the notice was played to the end (``always-announced``)."""
    if queue_policy == "off" or queue_policy is None:
        return Decision(False, "recording-off")
    if queue_policy not in POLICIES:
        return Decision(False, "unknown-policy")
    if queue_policy == "ask":
        if caller_answer is None or caller_answer == "":
            return Decision(False, "caller-no-answer")
        if not consent_key or caller_answer != consent_key:
            return Decision(False, "caller-declined")
    elif notice_played is not True:
        return Decision(False, "notice-not-played")
    if not agent_has_consent(agent_consent):
        return Decision(False, "agent-no-consent")
    return Decision(True, "consented" if queue_policy == "ask" else "announced")


# --- the agent's consent ---------------------------------------------------------------------


def agent_has_consent(agent: Mapping[str, Any] | None) -> bool:
    """True only for an explicit consent with a valid date that was not revoked since."""
    if not agent:
        return False
    if agent.get("rec_consent") != "given":
        return False
    given = _time(agent.get("rec_consent_at"))
    if given is None:
        return False
    revoked = _time(agent.get("rec_revoked_at"))
    return revoked is None or revoked < given


def give_agent_consent(now: float, by: str = "agent") -> dict[str, str]:
    """Fields to write to the agent's hash when the agent consents (``by``: who recorded it,
    e.g. ``agent``, ``cli:alice``)."""
    return {
        "rec_consent": "given",
        "rec_consent_at": _stamp(now),
        "rec_consent_by": _who(by),
        "rec_revoked_at": "",
        "rec_revoked_by": "",
    }


def revoke_agent_consent(now: float, by: str = "agent") -> dict[str, str]:
    """Fields to write when the agent's consent is revoked (the date given stays, for the
    record)."""
    return {"rec_consent": "revoked", "rec_revoked_at": _stamp(now), "rec_revoked_by": _who(by)}


def agent_consent_view(agent: Mapping[str, Any] | None) -> dict[str, Any]:
    """For display (CLI): ``consent`` (bool), ``state`` (given/revoked/never), the dates."""
    agent = agent or {}
    state = agent.get("rec_consent") or "never"
    return {
        "consent": agent_has_consent(agent),
        "state": state if state in ("given", "revoked") else "never",
        "given_at": _time(agent.get("rec_consent_at")),
        "given_by": agent.get("rec_consent_by") or "",
        "revoked_at": _time(agent.get("rec_revoked_at")),
        "revoked_by": agent.get("rec_revoked_by") or "",
    }


# --- the call's record -----------------------------------------------------------------------


def call_fields(
    decision: Decision,
    policy: str,
    now: float,
    *,
    agent: Mapping[str, Any] | None = None,
    path: str = "",
) -> dict[str, str]:
    """Fields for the call's hash once the decision is made (before the recording starts)."""
    out = {
        "recorded": "yes" if decision.record else "no",
        "rec_reason": decision.reason,
        "rec_policy": policy if policy in POLICIES else "",
        "rec_consent_at": _stamp(now) if decision.record else "",
        "rec_agent_consent_at": "",
        "rec_path": path if decision.record else "",
    }
    given = _time((agent or {}).get("rec_consent_at"))
    if decision.record and given is not None:
        out["rec_agent_consent_at"] = _stamp(given)
    return out


def may_start(call: Mapping[str, Any] | None) -> bool:
    """The last check before ``uuid_record ... start``: the call's record says consented and
    nothing was revoked. Anything missing or odd → False."""
    if not call:
        return False
    return (
        call.get("recorded") == "yes"
        and call.get("rec_reason") in ("consented", "announced")
        and _time(call.get("rec_consent_at")) is not None
        and not call.get("rec_revoked_at")
    )


@dataclass(frozen=True)
class Revocation:
    """``stop``: stop the recording now (always True: stopping twice is harmless, not stopping
    is not); ``fields``: for the call's hash; ``event``: fields for the events stream."""

    stop: bool
    fields: dict[str, str]
    event: dict[str, str]


def revoke(call_id: str, party: str, now: float) -> Revocation:
    """A party (``caller``, ``agent``, ``cli``) revoked consent during the call."""
    who = party if party in PARTIES else "unknown"
    stamp = _stamp(now)
    fields = {"rec_revoked_at": stamp, "rec_revoked_by": who, "rec_stopped_at": stamp}
    event = {"type": "recording-revoked", "call": call_id, "by": who}
    return Revocation(True, fields, event)


def absolute_path(base: str, path: str) -> str:
    """``path`` (relative, from :func:`recording_path`) under the directory ``base``."""
    if path.startswith("/"):
        return path
    return f"{base.rstrip('/')}/{path}"


def start_command(uuid: str, path: str) -> str:
    """``uuid_record <uuid> start <path>`` for ``api``; ValueError on an unsafe uuid/path."""
    if not _UUID_SAFE.fullmatch(uuid or ""):
        raise ValueError("unsafe channel uuid")
    if not path or not _TEMPLATE_CHARS.fullmatch(path.replace("{", "").replace("}", "")):
        raise ValueError("unsafe recording path")
    if "{" in path or "}" in path or ".." in path.split("/"):
        raise ValueError("unsafe recording path")
    return f"uuid_record {uuid} start {path}"


def stop_command(uuid: str) -> str:
    """``uuid_record <uuid> stop all`` for ``api`` (acts at once, even during the bridge)."""
    if not _UUID_SAFE.fullmatch(uuid or ""):
        raise ValueError("unsafe channel uuid")
    return f"uuid_record {uuid} stop all"


# --- the recording path ----------------------------------------------------------------------


def check_template(template: Any) -> str | None:
    """Why ``template`` can't be a recording path template, or None if it can."""
    if not isinstance(template, str) or not template:
        return "must be a path template string"
    if not _TEMPLATE_CHARS.fullmatch(template):
        return "may only use letters, digits, _ . - / and the placeholders {queue} {date} {call}"
    rest = template
    for p in _PLACEHOLDERS:
        rest = rest.replace(p, "")
    if "{" in rest or "}" in rest:
        return "may only contain the placeholders {queue}, {date} and {call}"
    if "{call}" not in template:
        return "must contain {call} (one file per call)"
    if ".." in template.split("/") or "//" in template or template.endswith("/"):
        return "must not contain .. or empty path parts, and must end in a file name"
    if not re.search(r"\.[A-Za-z0-9]{2,5}$", template):
        return "must end in a file extension such as .wav or .mp3"
    return None


def recording_path(
    template: str, queue: str, when: date | datetime | float | str, call: str
) -> str:
    """The template with its placeholders filled. Values are reduced to ``A-Z a-z 0-9 _ -`` (a
    value can't add a directory, ``..`` or an absolute path); ``{date}`` is ``YYYY-MM-DD``
    (UTC for a timestamp). ValueError if the template is unusable."""
    problem = check_template(template)
    if problem:
        raise ValueError(f"recording path template {problem}")
    if isinstance(when, datetime):
        day = when.date().isoformat()
    elif isinstance(when, date):
        day = when.isoformat()
    elif isinstance(when, int | float) and math.isfinite(when):
        day = datetime.fromtimestamp(when, UTC).date().isoformat()
    else:
        day = _value(str(when))
    out = template.replace("{queue}", _value(queue)).replace("{date}", day)
    return out.replace("{call}", _value(call))


def _value(text: str) -> str:
    v = _VALUE_KEEP.sub("_", str(text))[:64].strip("_")
    return v or "_"


# --- helpers ---------------------------------------------------------------------------------


def _time(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) and t > 0 else None


def _stamp(t: float) -> str:
    return f"{float(t):.3f}"


def _who(by: str) -> str:
    return _BY.sub("_", str(by))[:64] or "unknown"
