"""Classify the result of a bridge per agent leg (pure).

FreeSWITCH reports every originated leg in the caller's ``originate_causes`` variable:
``uuid;CAUSE`` for one leg, ``ARRAY::uuid;CAUSE|:uuid;CAUSE`` for several. The variable
accumulates over all bridges of the call, so callers look up their own leg uuids (the
``origination_uuid`` they set on each leg).

Outcomes and what the store does with them (``Store.offer_failed``):

==============  ======================================================  ========================
outcome         causes                                                  effect on the agent
==============  ======================================================  ========================
answered        NONE, SUCCESS (the leg that won)                        -
no-answer       ALLOTTED_TIMEOUT, NO_ANSWER, NO_USER_RESPONSE,          missed+1, streak+1,
                PROGRESS_TIMEOUT                                        no_answer_delay
unreachable     USER_NOT_REGISTERED, SUBSCRIBER_ABSENT,                 like no-answer (the
                UNALLOCATED_NUMBER, NO_ROUTE_DESTINATION,               streak puts an agent
                DESTINATION_OUT_OF_ORDER, NETWORK_OUT_OF_ORDER,         whose phone is gone on
                RECOVERY_ON_TIMER_EXPIRE, NO_ROUTE_TRANSIT_NET          break)
busy            USER_BUSY                                               busy_delay
reject          CALL_REJECTED                                           reject_delay
lose-race       LOSE_RACE (another leg of a ring-all answered)          -
cancel          ORIGINATOR_CANCEL (the caller went away)                -
error           any other cause                                         no_answer_delay only
none            no cause known for the leg                              -
==============  ======================================================  ========================

``unreachable`` counts towards ``max_no_answer`` on purpose: an agent logged in with an
unregistered phone would otherwise be offered every call again after each delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

OUTCOMES = (
    "answered",
    "no-answer",
    "busy",
    "reject",
    "lose-race",
    "cancel",
    "unreachable",
    "error",
    "none",
)

_CAUSES: dict[str, str] = {
    "NONE": "answered",
    "SUCCESS": "answered",
    "ALLOTTED_TIMEOUT": "no-answer",
    "NO_ANSWER": "no-answer",
    "NO_USER_RESPONSE": "no-answer",
    "PROGRESS_TIMEOUT": "no-answer",
    "USER_BUSY": "busy",
    "CALL_REJECTED": "reject",
    "LOSE_RACE": "lose-race",
    "ORIGINATOR_CANCEL": "cancel",
    "USER_NOT_REGISTERED": "unreachable",
    "SUBSCRIBER_ABSENT": "unreachable",
    "UNALLOCATED_NUMBER": "unreachable",
    "NO_ROUTE_DESTINATION": "unreachable",
    "NO_ROUTE_TRANSIT_NET": "unreachable",
    "DESTINATION_OUT_OF_ORDER": "unreachable",
    "NETWORK_OUT_OF_ORDER": "unreachable",
    "RECOVERY_ON_TIMER_EXPIRE": "unreachable",
}


def _decoded(value: str) -> str:
    """Tolerate a still URL-encoded value (``uuid%3BCAUSE``)."""
    if "%" in value and ";" not in value:
        return unquote(value)
    return value


def parse_originate_causes(value: str | None) -> dict[str, str]:
    """``originate_causes`` as {leg uuid: CAUSE}; later entries win."""
    if not value:
        return {}
    value = _decoded(value.strip())
    if value.startswith("ARRAY::"):
        items = value[len("ARRAY::") :].split("|:")
    else:
        items = [value]
    out: dict[str, str] = {}
    for item in items:
        uuid, sep, cause = item.partition(";")
        if sep and uuid.strip():
            out[uuid.strip()] = cause.strip().upper()
    return out


def classify(cause: str | None) -> str:
    """The outcome (one of :data:`OUTCOMES`) for a hangup cause; empty -> ``none``."""
    if not cause or not cause.strip():
        return "none"
    return _CAUSES.get(cause.strip().upper(), "error")


def leg_results(headers: Mapping[str, str], legs: Mapping[str, str]) -> dict[str, str]:
    """{agent id: outcome} for our legs (``legs``: origination uuid -> agent id).

    ``headers`` are the (decoded) headers of the bridge's CHANNEL_EXECUTE_COMPLETE (or any
    later event of the caller's channel). A leg missing from ``originate_causes`` gets the
    bridge's ``originate_disposition`` (else ``last_bridge_hangup_cause``) when it was the only
    leg, else ``none``.
    """
    causes = parse_originate_causes(headers.get("variable_originate_causes"))
    out: dict[str, str] = {}
    for uuid, agent in legs.items():
        cause = causes.get(uuid)
        if cause is None and len(legs) == 1:
            cause = headers.get("variable_originate_disposition") or headers.get(
                "variable_last_bridge_hangup_cause"
            )
        out[agent] = classify(cause)
    return out
