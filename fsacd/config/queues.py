"""``[queues.NAME]``: strategy, timers, hold music, queue rules, overflow.

A queue's keys for the screen pop, caller ID and the IVR are read by the modules of those
sections (:func:`~fsacd.config.screenpop.queue_pop`, :func:`~fsacd.config.callerid.queue_callerid`,
:func:`~fsacd.config.ivr.queue_ivr`) into the same :class:`~fsacd.config.model.QueueConfig`.
"""

from __future__ import annotations

import re
from typing import Any

from fsacd.config.callerid import queue_callerid
from fsacd.config.ivr import dtmf_key, prompt_key, queue_ivr
from fsacd.config.model import ANSWER_MODES, QueueConfig
from fsacd.config.reader import Table, e164_key
from fsacd.config.screenpop import queue_pop
from fsacd.core import routing
from fsacd.core.strategies import STRATEGIES
from fsacd.core.text import quote_key, show

QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def read_queues(data: Any, errors: list[str]) -> dict[str, QueueConfig]:
    """The ``[queues]`` table (at least one queue); overflow targets checked."""
    if data is None:
        errors.append("queues: at least one queue is required, e.g. [queues.support]")
        return {}
    if not isinstance(data, dict):
        errors.append(f"queues: must be a table of queues, got {show(data)}")
        return {}
    if not data:
        errors.append("queues: at least one queue is required, e.g. [queues.support]")
    queues: dict[str, QueueConfig] = {}
    for name, body in data.items():
        path = f"queues.{quote_key(name)}"
        if not QUEUE_NAME.fullmatch(name):
            errors.append(f"{path}: a queue name must be 1 to 64 letters, digits, _ or -")
            continue
        if not isinstance(body, dict):
            errors.append(f"{path}: must be a table, got {show(body)}")
            continue
        queues[name] = _queue(name, Table(body, path, errors))
    _check_overflow(queues, errors)
    return queues


def _queue(name: str, t: Table) -> QueueConfig:
    d = QueueConfig(name=name)
    strategy = t.string("strategy", d.strategy, max_len=64)
    if strategy not in STRATEGIES:
        t.error("strategy", f"must be one of {', '.join(STRATEGIES)}, got {show(strategy)}")
        strategy = d.strategy
    moh = t.string("moh", d.moh, max_len=1024)
    if "$" in moh:
        t.error(
            "moh",
            "must be a sound file or stream (e.g. local_stream://moh); ${...} is not expanded",
        )
        moh = d.moh
    answer_mode = t.string("answer_mode", d.answer_mode, max_len=16)
    if answer_mode not in ANSWER_MODES:
        t.error("answer_mode", f"must be one of {', '.join(ANSWER_MODES)}, got {show(answer_mode)}")
        answer_mode = d.answer_mode
    number = e164_key(t, "number", "+493012345678")
    out = QueueConfig(
        name=name,
        strategy=strategy,
        ring_timeout=t.integer("ring_timeout", d.ring_timeout, 1, 3600, "seconds"),
        max_wait=t.seconds("max_wait", d.max_wait),
        overflow=t.string("overflow", None, max_len=64),
        wrap_up=t.seconds("wrap_up", d.wrap_up),
        max_no_answer=t.integer("max_no_answer", d.max_no_answer, 0, 1000),
        no_answer_delay=t.seconds("no_answer_delay", d.no_answer_delay),
        busy_delay=t.seconds("busy_delay", d.busy_delay),
        reject_delay=t.seconds("reject_delay", d.reject_delay),
        moh=moh,
        priority=t.integer("priority", d.priority, routing.PRIORITY_MIN, routing.PRIORITY_MAX),
        number=number,
        display_name=t.string("display_name", None, max_len=80),
        join_empty=t.boolean("join_empty", d.join_empty),
        leave_empty=t.boolean("leave_empty", d.leave_empty),
        max_length=t.integer("max_length", d.max_length, 0, 1_000_000),
        skip_busy_agents=t.boolean("skip_busy_agents", d.skip_busy_agents),
        moh_segment=float(t.integer("moh_segment", int(d.moh_segment), 2, 3600, "seconds")),
        answer_mode=answer_mode,
        service_level_seconds=t.seconds(
            "service_level_seconds", d.service_level_seconds, 1, 3600
        ),
        revoke_key=dtmf_key(t, "revoke_key", d.revoke_key),
        callback_prompt=prompt_key(t, "callback_prompt", d.callback_prompt),
        callback_invalid_prompt=prompt_key(t, "callback_invalid_prompt", d.callback_invalid_prompt),
        callback_confirmed_prompt=prompt_key(
            t, "callback_confirmed_prompt", d.callback_confirmed_prompt
        ),
        **queue_pop(t),
        **queue_callerid(t),
        **queue_ivr(t),
    )
    t.unknown()
    return out


def _check_overflow(queues: dict[str, QueueConfig], errors: list[str]) -> None:
    for name, q in queues.items():
        if q.overflow is None:
            continue
        key = f"queues.{name}.overflow"
        if q.overflow == name:
            errors.append(f"{key}: a queue can't overflow to itself")
        elif q.overflow not in queues:
            errors.append(f"{key}: no queue named {show(q.overflow)}")
        else:
            chain = [name]
            nxt: str | None = q.overflow
            while nxt is not None and nxt in queues and nxt not in chain:
                chain.append(nxt)
                nxt = queues[nxt].overflow
            if nxt == name and name == min(chain):  # report each loop once
                errors.append(f"{key}: overflow chain loops: {' -> '.join([*chain, name])}")
