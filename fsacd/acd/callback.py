"""Callbacks (virtual hold): the caller hung up, the call keeps its place, fsacd calls back.

A waiting caller presses the queue's ``callback_key``, confirms the number (the call flow
does that part) and hangs up; :meth:`Callbacks.register` marks the call record
(``callback=1``) and takes the call's offer inbox over from the caller's greenlet. The call
stays in its queue's ``waiting`` zset with its score, so matching reaches it exactly when the
caller would have been served. Then one greenlet per callback call (:class:`_Runner`):

1. an offer comes → ``mark_ringing`` → ``bgapi originate`` of the agent leg(s) with the
   application ``&bridge(<customer leg>)``: the agent is called first; once the agent
   answers, FreeSWITCH runs ``bridge`` on the agent's channel, which dials the customer
   through the queue's gateway under the queue's outbound caller-ID policy
   (:func:`fsacd.core.callerid.customer_leg_vars`) and bridges them;
2. the agent does not answer → ``offer_failed`` (the usual penalties; the call is back in
   its place and goes to the next agent);
3. the agent answers but the customer does not (or is busy, rejects, ...) → the agent is
   freed without penalty, the call leaves ``waiting`` for ``callback_retry_delay`` seconds
   (``callback_state=scheduled``, ``callback_due`` in Redis) and then goes back with its old
   score; after ``callback_retries`` such failures the call ends as ``callback-failed``;
4. the customer answers → ``answered`` (agent in-call, call bridged); when both legs are
   gone the call ends as ``callback-answered`` (wrap-up as usual).

The legs are followed on one inbound event-socket connection of its own (:class:`EventFeed`:
``CHANNEL_ANSWER``, ``CHANNEL_HANGUP_COMPLETE`` and ``BACKGROUND_JOB``, with a ``filter
Unique-ID`` per watched leg), with ``uuid_exists`` / ``uuid_getvar`` on the controller's
FreeSWITCH client as a fallback when events may have been lost. Every wait is bounded.

Everything a callback needs lives in Redis (``call:{id}`` fields ``callback_*``, ``legs``),
so a restarted controller, or a survivor of a dead one, picks it up (:meth:`Callbacks.start`,
:meth:`Callbacks.take`) - also in the middle of a try. Numbers never appear in logs, and
never in events when the call is hidden (``number_status = hidden``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent

from fsacd import config as configmod
from fsacd.acd.outage import Durable, RedisUnavailable
from fsacd.acd.recovery import format_legs, parse_legs
from fsacd.core import callerid, dialstring, numbers, outcomes
from fsacd.esl.feed import ReconnectingFeed
from fsacd.esl.mailbox import Empty, Mailbox
from fsacd.esl.session import ESLDisconnected, ESLError, InboundClient
from fsacd.state.store import Offer

if TYPE_CHECKING:
    from fsacd.acd.services import Services
    from fsacd.config import QueueConfig
    from fsacd.esl.framing import Event

log = logging.getLogger(__name__)

#: Events the feed subscribes to (nothing else reaches this connection).
EVENTS = ["CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB"]
#: How long the customer's phone may ring (``leg_timeout`` of the customer leg), seconds.
CUSTOMER_RING_TIMEOUT = 30
#: Extra time past a ring timeout before fsacd stops waiting and kills the legs.
MARGIN = 15.0
#: Granularity of every wait of a try (events come at once; this bounds the polling).
TICK = 0.5
#: How often FreeSWITCH is asked directly (uuid_exists) while events may have been lost.
POLL = 2.0
#: While the legs are up and the event feed is fine: a slow safety check anyway.
SAFETY_POLL = 30.0
#: How often a waiting callback re-reads its record (ownership, state).
RECHECK = 5.0
#: FreeSWITCH not reachable when an offer came: the call waits this long (not a try).
UNREACHABLE_DELAY = 5.0
#: After one leg of a talking callback is gone: how long the other may linger before a kill.
LINGER = 5.0
#: After the originate failed: how long to wait for the legs' hangup causes.
GRACE = 1.0

_UUID = re.compile(r"[0-9A-Za-z-]{1,64}")


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _int(v: Any) -> int:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 0


# --- the event feed ------------------------------------------------------------------------


class EventFeed(ReconnectingFeed):
    """One inbound event-socket connection for all callbacks of a controller.

    Subscribed to :data:`EVENTS` only and filtered (``filter Event-Name BACKGROUND_JOB``
    plus ``filter Unique-ID <leg>`` per watched leg), so FreeSWITCH sends it the events of
    fsacd's callback legs and background-job results, nothing else. Reconnects with backoff;
    ``generation`` counts connections (a change means events may have been lost).
    """

    events = EVENTS
    label = "callbacks"

    def __init__(self, address: tuple[str, int], password: str | None) -> None:
        super().__init__(address, password)
        self._watch: dict[str, Mailbox] = {}

    def watch(self, uuids: list[str], inbox: Mailbox) -> None:
        """Deliver the events of these channels to ``inbox`` as ``("event", Event)``."""
        uuids = [u for u in uuids if _UUID.fullmatch(u or "")]
        for u in uuids:
            self._watch[u] = inbox
        client = self._client
        if client is not None and client.connected:
            try:
                for u in uuids:
                    client.filter("Unique-ID", u)
            except ESLError:
                pass  # the reconnect adds the filters of every watched leg again

    def unwatch(self, uuids: list[str]) -> None:
        client = self._client
        for u in uuids:
            if self._watch.pop(u, None) is None or not _UUID.fullmatch(u or ""):
                continue
            if client is not None and client.connected:
                try:
                    client.send_command(f"filter delete Unique-ID {u}", check=False)
                except ESLError:
                    pass

    def bgapi(self, cmd: str, timeout: float) -> str:
        """``bgapi <cmd>`` on this connection; the BACKGROUND_JOB body. ESLError if the
        connection is down or goes away, ESLTimeout if the job takes longer than ``timeout``."""
        client = self._client
        if client is None or not client.connected:
            raise ESLDisconnected("callback event feed: not connected")
        return client.bgapi(cmd, timeout=timeout)

    def on_connect(self, client: InboundClient) -> None:
        client.filter("Event-Name", "BACKGROUND_JOB")
        for u in list(self._watch):
            client.filter("Unique-ID", u)

    def on_event(self, ev: Event) -> None:
        if ev.name == "BACKGROUND_JOB":
            return  # the client's bgapi waiter has it
        inbox = self._watch.get(ev.get("Unique-ID") or "")
        if inbox is not None:
            inbox.put(("event", ev))


# --- one try -------------------------------------------------------------------------------


@dataclass
class _Try:
    """What a try knows about its legs (fresh, or resumed from the call record)."""

    offer: Offer
    qcfg: QueueConfig
    legs: dict[str, str]  # agent leg uuid -> agent id
    customer_leg: str
    stage: str  # agent | customer | talking
    job_pending: bool = False
    job_error: str | None = None  # the originate's "-ERR CAUSE"
    winner: str = ""  # agent id who answered
    winner_leg: str = ""
    customer_answered: bool = False
    gone: dict[str, str] = field(default_factory=dict)  # leg -> hangup cause ("" if unknown)
    answered_legs: set[str] = field(default_factory=set)
    deadline: float = 0.0
    generation: int = 0
    last_poll: float = 0.0
    first_gone_at: float = 0.0
    decided_at: float = 0.0
    talking_since: float = 0.0

    @property
    def all_legs(self) -> list[str]:
        return [*self.legs, self.customer_leg] if self.customer_leg else list(self.legs)


class _Runner:
    """The greenlet of one callback call: waits in the queue, makes tries, ends the call."""

    def __init__(self, cbs: Callbacks, call_id: str) -> None:
        self.cbs = cbs
        self.ctl = cbs.ctl
        # a try rides out a Redis outage (fsacd/acd/outage.py)
        self.store = Durable(cbs.ctl.store)
        self.call_id = call_id
        self.inbox: Mailbox = Mailbox()
        self.events: Mailbox = Mailbox()
        self.greenlet: gevent.Greenlet | None = None
        self._watched: list[str] = []

    def start(self) -> None:
        self.greenlet = gevent.spawn(self.run)

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                try:
                    if not self._step():
                        return
                except gevent.GreenletExit:
                    raise
                except RedisUnavailable as exc:
                    log.warning("callback %s: %s; retrying", self.call_id, exc)
                    gevent.sleep(2.0)
                except Exception:  # noqa: BLE001 - Redis trouble or a bug: retry, never strand
                    log.exception("callback %s: failed; retrying", self.call_id)
                    gevent.sleep(2.0)
        finally:
            self._unwatch()
            self.cbs._forget(self)

    def _step(self) -> bool:
        """One turn; False when the callback is no longer this controller's to run."""
        rec = self.store.get_call(self.call_id)
        if not self._mine(rec):
            return False
        assert rec is not None
        state = rec.get("state")
        if state == "offering" and rec.get("callback_state") == "waiting":
            # reserved a moment ago: the offer is in (or on its way to) the inbox
            self._fresh_offer(rec)
            return True
        if state in ("offering", "bridged"):
            self._resume(rec)
            return True
        if rec.get("callback_state") == "scheduled":
            self._wait_due(rec)
            return True
        kind, item = self._next(RECHECK)
        if kind == "offer":
            self._attempt(item)
        return True

    def _mine(self, rec: dict[str, Any] | None) -> bool:
        if rec is None or rec.get("state") == "ended" or rec.get("callback") != "1":
            return False
        return (rec.get("owner") or "") == self.ctl.controller_id

    def _next(self, timeout: float) -> tuple[str, Any]:
        try:
            return self.inbox.get(timeout=timeout)
        except Empty:
            return "timeout", None

    def _fresh_offer(self, rec: dict[str, Any]) -> None:
        deadline = time.time() + RECHECK
        while time.time() < deadline:
            kind, item = self._next(max(0.0, deadline - time.time()))
            if kind == "offer":
                if item.offer_id == rec.get("offer"):
                    self._attempt(item)
                    return
                self.store.cancel_offer(item)  # stale
        # the offer never came (lost on its way): release it, the call keeps its place
        self.store.cancel_offer(
            Offer(
                offer_id=rec.get("offer") or "",
                call_id=self.call_id,
                queue=rec.get("queue") or "",
                agents=list(rec.get("agents") or []),
                owner=self.ctl.controller_id,
            )
        )

    def _wait_due(self, rec: dict[str, Any]) -> None:
        """A scheduled retry: out of ``waiting`` until ``callback_due``, then back in place."""
        due = _float(rec.get("callback_due"))
        while True:
            left = due - time.time()
            if left <= 0:
                break
            kind, item = self._next(min(left, RECHECK))
            if kind == "offer":
                self.store.cancel_offer(item)  # stale: the call is not in waiting
            elif kind == "timeout" and left > RECHECK:
                return  # re-read the record (ownership may have changed)
        if self.store.callback_requeue(self.call_id):
            log.info("callback %s: back in its place in queue %s", self.call_id, rec.get("queue"))

    # --- a try -------------------------------------------------------------------------------

    def _attempt(self, offer: Offer) -> None:
        cfg = self.ctl.cfg
        qcfg = cfg.queues.get(offer.queue)
        if qcfg is None:
            self.store.cancel_offer(offer)
            return
        if not self.store.mark_ringing(offer):
            log.info("callback %s: offer %s no longer valid", self.call_id, offer.offer_id)
            return
        rec = self.store.get_call(self.call_id) or {}
        legs: dict[str, str] = {}
        specs: list[tuple[str, str, str]] = []
        agents: dict[str, dict[str, Any]] = {}
        for agent_id in offer.agents:
            agent = self.store.get_agent(agent_id)
            contact = (agent or {}).get("contact") or ""
            if not contact or dialstring.contact_problem(contact):
                log.warning("callback %s: agent %s has no usable contact", self.call_id, agent_id)
                continue
            leg = str(uuidlib.uuid4())
            legs[leg] = agent_id
            agents[agent_id] = agent or {}
            specs.append((leg, agent_id, contact))
        if not specs:
            self.store.cancel_offer(offer)
            return
        customer_leg = str(uuidlib.uuid4())
        try:
            cmd, cid, reason = self.cbs.originate_command(
                rec, qcfg, specs, customer_leg, agents[specs[0][1]]
            )
        except ValueError as exc:
            hidden = rec.get("number_status") == "hidden"
            log.warning("callback %s: cannot be dialled (queue %s)", self.call_id, qcfg.name)
            self.store.event(
                "callback-error",
                call=self.call_id,
                queue=qcfg.name,
                reason="" if hidden else str(exc),
            )
            t = _Try(offer, qcfg, legs, "", "agent")
            self._customer_failed(t, "config-error")
            return
        if not self.cbs.feed.connected and not self.cbs.feed.wait_connected(2.0):
            log.warning("callback %s: FreeSWITCH not reachable; trying later", self.call_id)
            self.store.callback_schedule(
                self.call_id,
                offer,
                time.time() + UNREACHABLE_DELAY,
                "freeswitch-unreachable",
                count=False,
            )
            return
        now = time.time()
        t = _Try(
            offer,
            qcfg,
            legs,
            customer_leg,
            "agent",
            job_pending=True,
            deadline=now + int(qcfg.ring_timeout) + MARGIN,
            generation=self.cbs.feed.generation,
            last_poll=now,
        )
        self.store.set_call_fields(
            self.call_id,
            legs=format_legs(legs),
            callback_leg=customer_leg,
            callback_state="dialing-agent",
            callback_agent="",
            callback_cid=cid,
        )
        self._watch(t.all_legs)
        waited = now - (_float(rec.get("entered_at")) or now)
        self.ctl.pop.offered(self.call_id, list(legs.values()), waited)
        hidden = rec.get("number_status") == "hidden"
        self.store.event(
            "callback-calling",
            call=self.call_id,
            queue=qcfg.name,
            offer=offer.offer_id,
            agents=list(legs.values()),
            tries=_int(rec.get("callback_tries")),
            cid=cid,
            reason="" if hidden else reason,
        )
        gevent.spawn(self._run_job, offer.offer_id, cmd, int(qcfg.ring_timeout) + MARGIN + 5.0)
        self._follow(t)

    def _run_job(self, offer_id: str, cmd: str, timeout: float) -> None:
        """The originate of one try; its result is tagged with the try's offer, so a late
        ``-ERR`` of an earlier try can never fail the next one."""
        try:
            self.events.put(("job", (offer_id, self.cbs.feed.bgapi(cmd, timeout))))
        except ESLError as exc:
            log.warning("callback %s: originate: %s", self.call_id, type(exc).__name__)
            self.events.put(("job-lost", (offer_id, None)))

    def _resume(self, rec: dict[str, Any]) -> None:
        """The call is offering or bridged but no try of this greenlet is running: a restart,
        an adoption, or a greenlet killed mid-try. Follow the legs from the record."""
        qcfg = self.ctl.cfg.queues.get(rec.get("queue") or "")
        offer = Offer(
            offer_id=rec.get("offer") or "",
            call_id=self.call_id,
            queue=rec.get("queue") or "",
            agents=list(rec.get("agents") or []),
            owner=self.ctl.controller_id,
        )
        legs = parse_legs(rec.get("legs"))
        customer_leg = rec.get("callback_leg") or ""
        if qcfg is None:
            qcfg = configmod.QueueConfig(name=offer.queue)
        winner = rec.get("callback_agent") or ""
        if rec.get("state") == "bridged":
            stage = "talking"
            winner = winner or rec.get("agent") or ""
        elif rec.get("callback_state") == "dialing-customer" and winner:
            stage = "customer"
        else:
            stage = "agent"
        if not legs:
            # the try had not started any leg
            if stage == "talking":
                self._ended(_Try(offer, qcfg, legs, customer_leg, stage, winner=winner))
            else:
                self.store.set_call_fields(self.call_id, callback_state="waiting")
                self.store.cancel_offer(offer)
            return
        log.info("callback %s: resuming a try (%s)", self.call_id, stage)
        now = time.time()
        if stage == "agent":
            deadline = (_float(rec.get("state_since")) or now) + int(qcfg.ring_timeout) + MARGIN
        else:
            since = _float(rec.get("callback_dialed_at")) or now
            deadline = since + self.cbs.customer_ring_timeout + MARGIN
        t = _Try(
            offer,
            qcfg,
            legs,
            customer_leg,
            stage,
            winner=winner,
            winner_leg=next((u for u, a in legs.items() if a == winner), ""),
            customer_answered=stage == "talking",
            deadline=deadline,
            generation=-1,  # events before now were not seen: ask FreeSWITCH at once
            talking_since=now,
        )
        self._watch(t.all_legs)
        self._follow(t)

    # --- following the legs ------------------------------------------------------------------

    def _follow(self, t: _Try) -> None:
        """Until the try is decided and recorded in Redis."""
        try:
            while True:
                try:
                    kind, item = self.events.get(timeout=TICK)
                except Empty:
                    kind, item = "tick", None
                self._absorb(t, kind, item)
                if self._decide(t):
                    return
        finally:
            self._unwatch()
            while not self.events.empty():  # leftovers of this try
                self.events.get_nowait()

    def _absorb(self, t: _Try, kind: str, item: Any) -> None:
        if kind in ("job", "job-lost"):
            offer_id, item = item
            if offer_id != t.offer.offer_id:
                log.info("callback %s: late originate result of an earlier try", self.call_id)
                return
        if kind == "job":
            t.job_pending = False
            text = (item or "").strip()
            if text.startswith("+OK"):
                leg = text[3:].strip()
                if leg in t.legs:
                    t.answered_legs.add(leg)
            else:
                t.job_error = text.removeprefix("-ERR").strip() or "NONE"
        elif kind == "job-lost":
            t.job_pending = False
            t.generation = -1  # ask FreeSWITCH
        elif kind == "event":
            ev: Event = item
            uid = ev.get("Unique-ID") or ""
            if ev.name == "CHANNEL_ANSWER":
                t.answered_legs.add(uid)
            elif ev.name == "CHANNEL_HANGUP_COMPLETE":
                t.gone[uid] = ev.get("Hangup-Cause") or ""
                if _int(ev.get("Caller-Channel-Answered-Time")) > 0:
                    t.answered_legs.add(uid)

    def _decide(self, t: _Try) -> bool:
        """Advance the try; True when it is over (Redis updated)."""
        now = time.time()
        if self._uncertain(t) and now - t.last_poll >= POLL:
            self._poll(t)
        if t.stage == "agent":
            return self._agent_stage(t, now)
        if t.stage == "customer":
            return self._customer_stage(t, now)
        return self._talking_stage(t, now)

    def _uncertain(self, t: _Try) -> bool:
        """True when events of the legs may have been missed."""
        feed = self.cbs.feed
        return t.generation != feed.generation or not feed.connected

    def _poll(self, t: _Try) -> None:
        """Ask FreeSWITCH which legs still exist (and whether the customer answered)."""
        t.last_poll = time.time()
        fs = self.ctl.fs
        known = True
        for leg in t.all_legs:
            if leg in t.gone:
                continue
            exists = fs.channel_exists(leg)
            if exists is None:
                known = False
            elif exists is False:
                if t.stage != "agent" or not t.job_pending:
                    t.gone[leg] = ""
            elif leg == t.customer_leg and not t.customer_answered:
                if (fs.api(f"uuid_getvar {leg} endpoint_disposition") or "").strip() == "ANSWER":
                    t.answered_legs.add(leg)
            elif leg in t.legs and t.stage == "agent":
                if (fs.api(f"uuid_getvar {leg} endpoint_disposition") or "").strip() == "ANSWER":
                    t.answered_legs.add(leg)
        if known and self.cbs.feed.connected:
            t.generation = self.cbs.feed.generation

    def _agent_stage(self, t: _Try, now: float) -> bool:
        answered = [leg for leg in t.legs if leg in t.answered_legs]
        if answered:
            self._agent_answered(t, answered[0])
            return self._customer_stage(t, now)
        agent_legs_gone = all(leg in t.gone for leg in t.legs)
        if t.job_error is not None or (not t.job_pending and agent_legs_gone):
            if not t.decided_at:
                t.decided_at = now
            if not agent_legs_gone and now - t.decided_at < GRACE:
                return False  # the legs' hangup events carry the per-leg causes: wait a little
            results = {}
            for leg, agent_id in t.legs.items():
                cause = t.gone.get(leg) or (t.job_error if len(t.legs) == 1 else "")
                results[agent_id] = outcomes.classify(cause)
            self._kill(t.all_legs, t)
            self._agents_failed(t, results)
            self.store.event(
                "callback-agent-failed",
                call=self.call_id,
                queue=t.qcfg.name,
                offer=t.offer.offer_id,
                outcome=",".join(f"{a}:{o}" for a, o in results.items()),
            )
            return True
        if now >= t.deadline:
            if t.job_pending:
                log.warning("callback %s: originate gave no result in time", self.call_id)
                self._kill(list(t.legs), t)
                t.job_pending = False
                t.deadline = now + MARGIN
                return False
            self._poll(t)
            if any(leg in t.answered_legs for leg in t.legs):
                return False
            self._kill(t.all_legs, t)
            self._agents_failed(t, dict.fromkeys(t.offer.agents, "none"))
            return True
        return False

    def _agents_failed(self, t: _Try, results: dict[str, str]) -> None:
        """No agent answered: the usual penalties, the call back in its place."""
        self.store.set_call_fields(self.call_id, callback_state="waiting", legs="")
        self.store.offer_failed(t.offer, results, t.qcfg)

    def _agent_answered(self, t: _Try, leg: str) -> None:
        t.stage = "customer"
        t.decided_at = 0.0
        t.winner_leg = leg
        t.winner = t.legs[leg]
        t.deadline = time.time() + self.cbs.customer_ring_timeout + MARGIN
        for other, agent_id in t.legs.items():
            if other != leg:
                self.store.release_agent(agent_id, self.call_id, "lost")
        self.store.set_call_fields(
            self.call_id,
            callback_state="dialing-customer",
            callback_agent=t.winner,
            callback_dialed_at=f"{time.time():.3f}",
        )
        self.store.event(
            "callback-dialing",
            call=self.call_id,
            queue=t.qcfg.name,
            agent=t.winner,
            offer=t.offer.offer_id,
        )

    def _customer_stage(self, t: _Try, now: float) -> bool:
        if t.customer_leg in t.answered_legs:
            self._customer_answered(t)
            return self._talking_stage(t, now)
        cust_gone = t.customer_leg in t.gone
        agent_gone = t.winner_leg in t.gone or not t.winner_leg
        if agent_gone and not cust_gone:
            # the customer's hangup event (with its cause) may still be on its way
            t.decided_at = t.decided_at or now
            if now - t.decided_at < GRACE:
                return False
        if cust_gone or agent_gone:
            cause = t.gone.get(t.customer_leg) or ""
            if not cust_gone or cause == "ORIGINATOR_CANCEL":
                outcome = "agent-hangup"  # the agent gave up before the customer answered
            else:
                outcome = outcomes.classify(cause) if cause else "no-answer"
            self._kill(t.all_legs, t)
            self._customer_failed(t, outcome)
            return True
        if now >= t.deadline:
            self._poll(t)
            if t.customer_leg in t.answered_legs:
                return False
            self._kill(t.all_legs, t)
            self._customer_failed(t, "no-answer")
            return True
        return False

    def _customer_answered(self, t: _Try) -> None:
        t.stage = "talking"
        t.customer_answered = True
        t.talking_since = time.time()
        if not self.store.answered(t.offer, t.winner):
            # both legs talk: the records must say so (never a talking agent shown free)
            rec = self.store.get_call(self.call_id) or {}
            if rec.get("state") != "bridged" or rec.get("agent") != t.winner:
                if self.store.claim_bridged(t.offer, t.winner):
                    log.warning(
                        "callback %s: agent %s answered a stale offer; recorded as bridged",
                        self.call_id,
                        t.winner,
                    )
                else:
                    log.error(
                        "callback %s: agent %s answered a stale offer while in another call",
                        self.call_id,
                        t.winner,
                    )
        self.store.set_call_fields(self.call_id, callback_state="talking")
        self.ctl.pop.answered(self.call_id, t.winner)

    def _talking_stage(self, t: _Try, now: float) -> bool:
        if not self._uncertain(t) and now - t.last_poll >= SAFETY_POLL:
            self._poll(t)
        legs = [leg for leg in (t.winner_leg, t.customer_leg) if leg]
        gone = [leg for leg in legs if leg in t.gone]
        if not gone:
            return False
        if len(gone) < len(legs):
            if not t.first_gone_at:
                t.first_gone_at = now
            if now - t.first_gone_at < LINGER:
                return False
            self._kill(legs, t)
            self._poll(t)
            if any(leg not in t.gone for leg in legs):
                t.first_gone_at = now  # FreeSWITCH did not answer: try again later
                return False
        self._ended(t)
        return True

    # --- outcomes --------------------------------------------------------------------------

    def _ended(self, t: _Try) -> None:
        """The customer talked to the agent: the call is over."""
        qcfg = t.qcfg
        self.store.finish_call(self.call_id, "callback-answered", qcfg.wrap_up)
        self.store.set_call_fields(self.call_id, callback_state="done")
        self.ctl.pop.finished(self.call_id, t.winner or None, "callback-answered")
        if t.talking_since:
            handled = time.time() - t.talking_since + qcfg.wrap_up
            self.store.record_handle_time(qcfg.name, handled)
        if t.winner:
            self.ctl.wake_later(qcfg.wrap_up)
        log.info("callback %s: done (agent %s)", self.call_id, t.winner)

    def _customer_failed(self, t: _Try, outcome: str) -> None:
        """The customer was not reached: retry after the delay, or give up."""
        qcfg = self.ctl.cfg.queues.get(t.qcfg.name) or t.qcfg
        rec = self.store.get_call(self.call_id) or {}
        tries = _int(rec.get("callback_tries")) + 1
        if tries > qcfg.callback_retries:
            self.store.finish_call(self.call_id, "callback-failed", 0.0)
            self.store.set_call_fields(
                self.call_id,
                callback_state="failed",
                callback_tries=str(tries),
                callback_last=outcome,
            )
            if t.winner:
                self.store.set_agent_fields(t.winner, no_answer_streak=0)
            self.store.event(
                "callback-failed",
                call=self.call_id,
                queue=qcfg.name,
                outcome=outcome,
                tries=tries,
            )
            self.ctl.pop.finished(self.call_id, None, "callback-failed")
            log.info("callback %s: failed after %d tries (%s)", self.call_id, tries, outcome)
            return
        due = time.time() + qcfg.callback_retry_delay
        ok, _ = self.store.callback_schedule(
            self.call_id, t.offer, due, outcome, count=True, answered_by=t.winner
        )
        if ok:
            log.info(
                "callback %s: customer not reached (%s); try %d again in %.0fs",
                self.call_id,
                outcome,
                tries + 1,
                qcfg.callback_retry_delay,
            )

    # --- plumbing --------------------------------------------------------------------------

    def _kill(self, legs: list[str], t: _Try) -> None:
        for leg in legs:
            if leg and leg not in t.gone and _UUID.fullmatch(leg):
                self.ctl.fs.api(f"uuid_kill {leg} NORMAL_CLEARING")

    def _watch(self, legs: list[str]) -> None:
        self._watched = list(legs)
        self.cbs.feed.watch(self._watched, self.events)

    def _unwatch(self) -> None:
        if self._watched:
            self.cbs.feed.unwatch(self._watched)
            self._watched = []


# --- the controller's part -----------------------------------------------------------------


class Callbacks:
    """All callback calls of one controller (``ctl.callbacks``)."""

    def __init__(self, ctl: Services) -> None:
        self.ctl = ctl
        self.store = ctl.store
        fs = ctl.fs
        address = getattr(fs, "address", None) or ctl.cfg.freeswitch.inbound_address
        password = getattr(fs, "password", None)
        if password is None:
            password = configmod.password(ctl.cfg)
        self.feed = EventFeed(address, password)
        #: ``leg_timeout`` of the customer's leg, seconds
        self.customer_ring_timeout = CUSTOMER_RING_TIMEOUT
        self._runs: dict[str, _Runner] = {}
        self._stopped = False

    # --- API ---------------------------------------------------------------------------------

    def register(self, call_id: str, number: str, queue: str) -> bool:
        """The waiting caller confirmed ``number`` (E.164) and is about to hang up.

        Marks the call record (``callback=1``, ...), keeps the call in its queue with its
        score, and takes the call's offer inbox over: from now on offers for the call come
        here, whatever the caller's greenlet does. False (nothing changed) if the call is not
        waiting any more, the number is not a valid E.164 number, or the queue cannot call
        out (no gateway or network number: event ``callback-refused``); the caller then
        simply goes on waiting.
        """
        rec = self.store.get_call(call_id)
        if rec is None or self._stopped:
            return False
        qname = rec.get("queue") or queue
        qcfg = self.ctl.cfg.queues.get(qname)
        region = (qcfg.region if qcfg else None) or self.ctl.cfg.freeswitch.default_region
        n = numbers.normalise(number, region)
        if n.e164 is None or n.e164 != number:
            log.warning("call %s: callback number refused (%s)", call_id, n.status)
            return False
        hidden = rec.get("number_status") == "hidden"
        problem = self.refusal(qname, n.e164)
        if problem is not None:
            log.warning("call %s: queue %s cannot make callbacks", call_id, qname)
            self.store.event(
                "callback-refused", call=call_id, queue=qname, reason="" if hidden else problem
            )
            return False
        runner = self._runs.get(call_id) or _Runner(self, call_id)
        previous = self.ctl.call_inbox(call_id)
        # the inbox first: an offer made from here on must reach the runner
        self._runs[call_id] = runner
        self.ctl.register_call(call_id, runner.inbox)
        try:
            ok, info = self.store.callback_register(
                call_id, n.e164, show_number=not hidden, owner=self.ctl.controller_id
            )
        except Exception:
            ok, info = False, "error"
            log.exception("call %s: could not register the callback", call_id)
        if not ok:
            self._runs.pop(call_id, None)
            self.ctl.unregister_call(call_id, runner.inbox)
            if previous is not None:
                self.ctl.register_call(call_id, previous)
            log.info("call %s: no callback (the call is %s)", call_id, info or "gone")
            return False
        log.info("call %s: callback registered in %s at position %s", call_id, qname, info)
        if runner.greenlet is None:
            runner.start()
        return True

    def start(self) -> None:
        """Controller start: run every callback of this controller or of dead controllers."""
        self._stopped = False
        self.feed.start()
        try:
            calls = self.store.callback_calls()
        except Exception:  # noqa: BLE001 - the recovery pass hands them over later
            log.exception("callbacks: could not list the pending callbacks")
            return
        taken = sum(1 for c in calls if self.take(c))
        if taken:
            log.info("callbacks: %d pending callback(s) picked up", taken)

    def stop(self) -> None:
        """Stop every runner (Redis keeps the callbacks; a restart picks them up)."""
        self._stopped = True
        runners = list(self._runs.values())
        gevent.killall([r.greenlet for r in runners if r.greenlet is not None], timeout=2)
        for r in runners:
            self.ctl.unregister_call(r.call_id, r.inbox)
        self._runs.clear()
        self.feed.stop()

    def holds(self, call_id: str) -> bool:
        """True while a runner of this controller owns the call's inbox."""
        return call_id in self._runs

    def take(self, call: dict[str, Any] | str) -> bool:
        """Run a pending callback here: one of this controller's without a runner, or one of
        a dead controller (adopted first). Idempotent. False if it is not ours to run."""
        call_id = call if isinstance(call, str) else str(call.get("id") or "")
        if not call_id or self._stopped:
            return False
        if call_id in self._runs:
            return True
        rec = self.store.get_call(call_id)
        if rec is None or rec.get("state") == "ended" or rec.get("callback") != "1":
            return False
        owner = rec.get("owner") or ""
        me = self.ctl.controller_id
        if owner != me:
            if owner and self.store.alive([owner]):
                return False
            if not self.store.adopt_call(call_id, owner):
                return False
            log.warning("callback %s: its controller %s is gone; taken over", call_id, owner)
        runner = _Runner(self, call_id)
        self._runs[call_id] = runner
        self.ctl.register_call(call_id, runner.inbox)
        runner.start()
        return True

    def claim_orphan(self, call_id: str) -> bool:
        """For the matcher: an offer for ``call_id`` found no socket. True if the call is a
        callback (it must stay queued: taken over here, or by its live owner), False if it
        is an ordinary call whose caller is gone."""
        rec = self.store.get_call(call_id)
        if rec is None or rec.get("state") == "ended" or rec.get("callback") != "1":
            return False
        self.take(call_id)
        return True

    def refusal(self, queue: str, number: str) -> str | None:
        """Why a callback to ``number`` through ``queue`` could not be dialled (no gateway,
        no network number, ...), or None if it can. For the caller's dialog."""
        qcfg = self.ctl.cfg.queues.get(queue)
        if qcfg is None:
            return f"no queue named {queue}"
        rec = {"callback_number": number, "destination": "", "number_status": ""}
        try:
            self.originate_command(rec, qcfg, [("x", "x", "user/x")], "x", {})
        except ValueError as exc:
            return str(exc)
        return None

    # --- dial strings ----------------------------------------------------------------------

    def originate_command(
        self,
        rec: dict[str, Any],
        qcfg: QueueConfig,
        agent_legs: list[tuple[str, str, str]],
        customer_leg: str,
        agent: dict[str, Any],
    ) -> tuple[str, str, str]:
        """``originate {..}[..]AGENT,... &bridge({..}GATEWAY)``, the customer's caller-ID
        policy and its reason. ``agent_legs``: (leg uuid, agent id, contact). ValueError
        when the customer's leg cannot be built (invalid number, no gateway, ...)."""
        cfg = self.ctl.cfg
        region = qcfg.region or cfg.freeswitch.default_region
        hidden = rec.get("number_status") == "hidden"
        dest = numbers.normalise(rec.get("callback_number") or "", region)
        if dest.e164 is None:
            raise ValueError(f"the callback number is not valid ({dest.status})")
        called = numbers.normalise(rec.get("destination") or "", region).e164
        found, _ = self.ctl.contacts.lookup(dest, hidden)
        customer = found[0] if found else None
        verified = self.ctl.verified
        leg_vars, reason = callerid.customer_leg_vars(
            qcfg,
            destination=dest,
            customer=customer,
            verified=verified.snapshot(),
            agent={**agent, "id": agent.get("id") or agent_legs[0][1]},
            callback_of=called,
            network_number=None,
            host=cfg.numbers.pai_host,
        )
        timeout = str(int(self.customer_ring_timeout))
        customer_dial = callerid.outbound_dial_string(
            qcfg,
            dest,
            {
                **leg_vars,
                "origination_uuid": customer_leg,
                "fsacd_call": rec.get("id") or "",
                "fsacd_queue": qcfg.name,
                "fsacd_callback": "1",
                "leg_timeout": timeout,
                "ignore_early_media": "false",
            },
        )
        if "(" in customer_dial or ")" in customer_dial:
            raise ValueError(
                f"queues.{qcfg.name}.gateway_template: a callback's dial string must not"
                " contain ( or ) (it is the argument of &bridge(...))"
            )
        ring = str(int(qcfg.ring_timeout))
        global_vars = {
            **self._agent_presentation(rec, hidden),
            "fsacd_call": rec.get("id") or "",
            "fsacd_queue": qcfg.name,
            "fsacd_callback": "1",
            "leg_timeout": ring,
            "ignore_early_media": "true",
            "hangup_after_bridge": "true",
        }
        legs = ",".join(
            dialstring.var_block({"origination_uuid": leg, "fsacd_agent": agent_id}, "[") + contact
            for leg, agent_id, contact in agent_legs
        )
        cmd = f"originate {callerid.var_block(global_vars)}{legs} &bridge({customer_dial})"
        return cmd, leg_vars.get("fsacd_cid", "network"), reason

    @staticmethod
    def _agent_presentation(rec: dict[str, Any], hidden: bool) -> dict[str, str]:
        """What the agent's phone shows: the number to call back and ``Callback NAME`` (a
        hidden caller: anonymous, as on a normal call)."""
        if hidden:
            return {
                "origination_caller_id_number": callerid.ANONYMOUS_NUMBER,
                "origination_caller_id_name": callerid.ANONYMOUS_NAME,
                "origination_privacy": callerid.PRIVACY_HIDDEN,
                "origination_ani": callerid.ANONYMOUS_NUMBER,
            }
        number = dialstring.number_value(rec.get("callback_number") or "")
        name = dialstring.var_value(f"Callback {rec.get('name') or number}")[:80]
        return {
            "origination_caller_id_number": number,
            "origination_caller_id_name": name,
            "origination_privacy": callerid.PRIVACY_SHOWN,
        }

    # --- internal --------------------------------------------------------------------------

    def _forget(self, runner: _Runner) -> None:
        if self._runs.get(runner.call_id) is runner:
            del self._runs[runner.call_id]
        self.ctl.unregister_call(runner.call_id, runner.inbox)
