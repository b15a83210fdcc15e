"""Calls and agents left behind by a dead controller: take them over, free them when over.

A controller whose lease lapsed is dead. Its *waiting* callers are taken out of their queue
(with ``socket_resume=true`` FreeSWITCH already sent them on in the dialplan; if one comes back
to a controller it re-enters with its old place). Its *offering* and *bridged* calls are adopted
by one survivor, which keeps their agents busy for as long as FreeSWITCH says an agent leg
still exists (``uuid_exists``) - an agent who is still talking never gets a second call - and
frees them once the legs are gone. When FreeSWITCH cannot be asked, nothing is freed.

The same pass runs at start-up (reconciliation): calls in Redis that carry this controller's
id but have no greenlet here are treated the same way.

Callbacks (``callback=1``, fsacd/acd/callback.py) are the exception: they have no caller socket
by design and live in Redis, so they are never ended here but handed to ``on_callback``
(``Callbacks.take``), which runs them on this controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsacd.config import Config
    from fsacd.esl.client import FreeSwitchClient
    from fsacd.state.store import Store

log = logging.getLogger(__name__)

BUSY_STATES = ("reserved", "ringing", "in-call")


@dataclass
class PassReport:
    """What one recovery pass did (for logs and tests)."""

    adopted: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    watching: list[str] = field(default_factory=list)
    agents_released: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def parse_legs(value: str | None) -> dict[str, str]:
    """The ``legs`` field of a call: ``leg-uuid:agent,...`` -> {leg uuid: agent id}."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        leg, sep, agent = item.partition(":")
        if sep and leg and agent:
            out[leg] = agent
    return out


def format_legs(legs: dict[str, str]) -> str:
    return ",".join(f"{leg}:{agent}" for leg, agent in legs.items())


class Recovery:
    """One per controller; :meth:`run_pass` is called at start-up and periodically."""

    def __init__(
        self,
        store: Store,
        fs: FreeSwitchClient | None,
        cfg: Callable[[], Config],
        local_calls: Callable[[], set[str]],
    ) -> None:
        self.store = store
        self.fs = fs
        self.cfg = cfg
        self.local_calls = local_calls
        self.me = store.controller_id
        #: runs a callback call here (fsacd/acd/callback.py ``Callbacks.take``): callbacks live in
        #: Redis, not in a caller's socket, so they are handed over instead of ended
        self.on_callback: Callable[[dict[str, Any]], bool] | None = None

    def _exists(self, uuid: str) -> bool | None:
        if self.fs is None:
            return None
        return self.fs.channel_exists(uuid)

    def _wrap_up(self, queue: str) -> float:
        q = self.cfg().queues.get(queue)
        return float(q.wrap_up) if q is not None else 0.0

    def run_pass(self) -> PassReport:
        report = PassReport()
        calls = self.store.list_calls()
        agents = self.store.list_agents()
        owners = {c.get("owner") or "" for c in calls} | {a.get("owner") or "" for a in agents}
        alive = self.store.alive(owners - {self.me}) | {self.me}
        local = self.local_calls()
        for call in calls:
            owner = call.get("owner") or ""
            if owner == self.me:
                if call["id"] in local:
                    continue
            elif owner in alive or not owner:
                continue
            elif call.get("state") != "waiting" and call.get("legs") and not self._ours(call):
                continue  # on another FreeSWITCH: a controller of that one adopts it
            elif self.store.adopt_call(call["id"], owner):
                log.warning("call %s: its controller %s is gone; taken over", call["id"], owner)
                report.adopted.append(call["id"])
            else:
                continue  # another survivor was faster
            self._watch(call, report)
        live_ids = {c["id"] for c in calls}
        for agent in agents:
            self._check_agent(agent, alive, live_ids, local, report)
        return report

    def _ours(self, call: dict[str, Any]) -> bool | None:
        """Is the call on the FreeSWITCH this controller can ask? None: can't tell now.

        With several FreeSWITCH servers, a controller must not judge a call on another one
        (``uuid_exists`` there would say false while the agent still talks)."""
        core = call.get("fs_core") or ""
        if not core or self.fs is None:
            return True if self.fs is not None else None
        mine = self.fs.core_uuid()
        if mine is None:
            return None
        return mine == core

    def _watch(self, call: dict[str, Any], report: PassReport) -> None:
        call_id, state = call["id"], call.get("state")
        if call.get("callback") == "1" and self.on_callback is not None:
            if self.on_callback(call):
                report.watching.append(call_id)
            else:
                report.unknown.append(call_id)
            return
        if state == "waiting":
            # no socket holds this caller any more: out of the queue, place kept for a return
            self.store.finish_call(call_id, "controller-lost", 0.0)
            report.ended.append(call_id)
            return
        legs = parse_legs(call.get("legs"))
        if legs and not self._ours(call):
            report.unknown.append(call_id)  # a controller of that FreeSWITCH decides
            return
        states = {leg: self._exists(leg) for leg in legs}
        if any(v is None for v in states.values()):
            report.unknown.append(call_id)
            return
        if any(states.values()):
            report.watching.append(call_id)
            return
        outcome = "answered" if state == "bridged" else "controller-lost"
        self.store.finish_call(call_id, outcome, self._wrap_up(call.get("queue") or ""))
        report.ended.append(call_id)
        log.info("call %s: over after its controller died (%s)", call_id, outcome)

    def _check_agent(
        self,
        agent: dict[str, Any],
        alive: set[str],
        live_calls: set[str],
        local: set[str],
        report: PassReport,
    ) -> None:
        """An agent busy for a call that no longer exists in Redis (or ended)."""
        if agent.get("state") not in BUSY_STATES:
            return
        call_id = agent.get("call") or ""
        owner = agent.get("owner") or ""
        if call_id in live_calls:
            return  # the call's own handling (or _watch) takes care of it
        if owner in alive and owner != self.me:
            return  # its controller is alive and may be just finishing the call
        if owner == self.me and call_id in local:
            return
        # the agent's leg is unknown here; ask about the caller's channel instead
        exists = self._exists(call_id) if call_id else False
        if exists is None:
            report.unknown.append(agent["id"])
            return
        if exists:
            return
        if self.store.release_agent(agent["id"], call_id, "controller-lost"):
            report.agents_released.append(agent["id"])
            log.warning(
                "agent %s freed: its call %s ended while nobody watched", agent["id"], call_id
            )
