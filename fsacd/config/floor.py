"""``[supervisor]`` and ``[agents]``: the floor supervisor's phone, the break reasons.

``[supervisor] contact`` is the dial string ``fsacd listen|whisper|barge`` rings when no
``--from`` is given (checked like an agent's contact); ``ring_timeout`` how long it rings.
``[agents] break_reasons`` is the list ``fsacd agent break --reason`` accepts (the first is
the default).
"""

from __future__ import annotations

from fsacd.config.model import AgentsConfig, SupervisorConfig
from fsacd.config.reader import Table
from fsacd.core import dialstring
from fsacd.core.text import has_control, show

#: Longest break reason (the Store's limit).
REASON_MAX = 64


def read_supervisor(t: Table) -> SupervisorConfig:
    d = SupervisorConfig()
    contact = t.string("contact", None, max_len=dialstring.MAX_VALUE)
    if contact is not None:
        problem = dialstring.contact_problem(contact)
        if problem:
            t.error("contact", f"the dial string {problem}")
            contact = None
    out = SupervisorConfig(
        contact=contact,
        ring_timeout=t.integer("ring_timeout", d.ring_timeout, 5, 300, "seconds"),
    )
    t.unknown()
    return out


def read_agents(t: Table) -> AgentsConfig:
    d = AgentsConfig()
    reasons = d.break_reasons
    if t.has("break_reasons"):
        v = t.raw("break_reasons")
        problem = _reasons_problem(v)
        if problem:
            t.error("break_reasons", problem)
        else:
            reasons = tuple(v)
    out = AgentsConfig(break_reasons=reasons)
    t.unknown()
    return out


def _reasons_problem(v: object) -> str | None:
    if not isinstance(v, list) or not v:
        return f"must be a non-empty array of strings, got {show(v)}"
    seen: set[str] = set()
    for item in v:
        if not isinstance(item, str) or not item.strip() or len(item) > REASON_MAX:
            return f"each reason must be a string of 1 to {REASON_MAX} characters, got {show(item)}"
        if has_control(item) or item != item.strip():
            return f"a reason must not contain control characters or end in spaces: {show(item)}"
        if item in seen:
            return f"{show(item)} is listed twice"
        seen.add(item)
    return None
