"""The life of one call on the outbound socket: route, queue, wait, offer, bridge, clean up.

One greenlet per call runs :meth:`CallFlow.run`. It reads events from the session and offers
from the matcher through one inbox, so it handles them one at a time, in order. Whatever
happens (hang-up at any step, errors, timeouts), the ``finally`` clause hands the call to
:meth:`Store.finish_call`, which releases every agent the call still holds.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import gevent

from fsacd.acd import ivr_esl, presence, prompts, recovery
from fsacd.acd.outage import Durable, RedisUnavailable, durable
from fsacd.core import announce, callerid, consent, dialstring, ivr, numbers, outcomes, routing
from fsacd.esl.framing import Event
from fsacd.esl.mailbox import Empty, Mailbox
from fsacd.esl.session import ESLDisconnected, ESLError, OutboundSession
from fsacd.pop.screen import caller_region

if TYPE_CHECKING:
    from fsacd.acd.services import Services
    from fsacd.config import QueueConfig
    from fsacd.pop.screen import Prepared
    from fsacd.state.store import Offer

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Played to a caller whose call cannot be routed, before the hang-up (SIT-like tones).
ERROR_TONE = "tone_stream://%(274,0,913.8);%(274,0,1370.6);%(380,0,1776.7)"
#: How long we wait for FreeSWITCH to finish a short application (set, answer, ...).
APP_TIMEOUT = 10.0
#: How long an application may take to start (its CHANNEL_EXECUTE). A channel runs what it
#: is sent at its next 20 ms media tick, so anything longer means it will never start:
#: ``uuid_break <uuid> all`` flushed it (no event ever comes for it) or it waits behind an
#: application that does not end.
APP_START_TIMEOUT = 2.0
#: Completed applications remembered per call (for waits that begin after the completion).
DONE_KEPT = 32
#: Extra time past ``ring_timeout`` before we stop waiting for a bridge to give its result.
BRIDGE_MARGIN = 15.0
#: The events of the caller's channel the call flow (and the IVR, ivr_esl.py) waits for; the
#: outbound socket subscribes to these only (``myevents`` would send 23 types; docs/performance.md).
#: At most this long (s) the end of a bridged call waits for the agent's leg to be gone.
LEG_END_WAIT = 1.0

CALL_EVENTS = (
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_BRIDGE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
)


def forged_headers(channel_data: Mapping[str, str]) -> list[str]:
    """The caller's channel variables in fsacd's SIP header namespace (``sip_h_X-Fsacd-*``,
    any case, FreeSWITCH's ``-N`` suffixes for repeated headers included)."""
    out = []
    for key in channel_data:
        if key.startswith("variable_"):
            name = key[len("variable_") :]
            if name.lower().startswith("sip_h_x-fsacd-") and _HEADER_VAR.fullmatch(name):
                out.append(name)
    return out


#: A SIP header name (a token) as FreeSWITCH makes it a variable.
_HEADER_VAR = re.compile(r"[A-Za-z0-9_.!%*+~`'-]{1,200}")

#: What is kept of the completion of an application nobody waits for.
_MARKER_HEADERS = ("Event-Name", "Unique-ID", "Application", "Application-UUID",
                   "Application-Response")  # fmt: skip


def _completion_marker(ev: Event) -> Event:
    """A CHANNEL_EXECUTE_COMPLETE cut to the headers that say which application ended how."""
    return Event({k: v for k in _MARKER_HEADERS if (v := ev.get(k)) is not None})


#: FreeSWITCH's recordings directory per switch (Core-UUID), asked once.
_RECORDINGS_DIRS: dict[str, str] = {}


class CallGone(Exception):
    """The caller hung up or the socket closed; stop working on this call."""


class HandBack(Exception):
    """The controller is stopping: give a waiting caller back to the dialplan."""


class DialogInterrupted(Exception):
    """An offer came during a dialog (consent notice, callback dialog, announcement): the
    running prompt was stopped so the reserved agent rings now, not after the dialog."""


class Reroute(Exception):
    """The caller left the queue for an IVR that leads to a queue again: served afresh from
    the top of the call (no recursion, no state carried over from the first queue)."""

    def __init__(self, target: routing.Target) -> None:
        super().__init__(target.name)
        self.target = target


class Moved(Exception):
    """A supervisor moved the waiting call to another queue (``fsacd call move``, drain)."""


class WaitingKey(Exception):
    """A waiting caller pressed the queue's exit or callback key."""

    def __init__(self, digit: str) -> None:
        super().__init__(digit)
        self.digit = digit


@dataclass
class CallState:
    """What the call greenlet knows about its call (mirrors part of the Redis record)."""

    uuid: str
    queue: str = ""
    priority: int = 0
    entered_at: float = 0.0
    queue_entered_at: float = 0.0
    phase: str = "new"  # new, waiting, offering, bridged, done
    outcome: str = ""
    agent: str = ""
    moh_app_uuid: str | None = None
    leaving_empty: bool = False
    overflowed: list[str] = field(default_factory=list)


class CallFlow:
    """Drive one call. ``controller`` gives config, store, matcher and the offer inbox."""

    def __init__(self, session: OutboundSession, controller: Services) -> None:
        self.session = session
        self.ctl = controller
        self.cfg = controller.cfg
        # every Redis step of a call rides out an outage (fsacd/acd/outage.py)
        self.store = Durable(controller.store)
        # events of the socket (delivered by its reader, see run) and offers and control
        # messages from the controller, read one at a time by this call's greenlet
        self.inbox: Mailbox[tuple[str, Any]] = Mailbox()
        self.state = CallState(uuid="")
        self.data: Mapping[str, str] = {}
        self._deferred: list[Offer] = []
        self._moved = False  # a supervisor moved the waiting call (seen by the wait loop)
        self.draining = False
        self.hidden = False
        self.caller: numbers.Number = numbers.normalise(None, numbers.DEFAULT_REGION)
        self.presentation: callerid.Presentation | None = None
        self.ivr_inputs: dict[str, str] = {}
        self.wants_callback = False
        self.became_callback = False
        self.answered_at = 0.0
        self.winner_leg = ""
        #: the screen pop prepared with the arrival (no CRM), held here for the offers
        self._prepared: Prepared | None = None
        self.last_announced: float | None = None
        self.language = "en"
        self.recording: dict[str, Any] = {}
        # what FreeSWITCH told us about the applications we sent (see _next)
        self._apps_started: set[str] = set()
        self._apps_done: OrderedDict[str, Event] = OrderedDict()
        # applications sent without waiting for them: their completion is kept as a marker
        # (a few headers), not as the whole event, which nobody reads
        self._unawaited: set[str] = set()
        self._pushback: list[tuple[str, Any]] = []
        self._answered = False
        self._vars_for = ""  # the queue whose channel variables were sent
        self._socket_resume = ""  # the socket_resume value last sent
        self._in_dialog = False  # an offer interrupts the prompt that runs (see _dialog)
        self._breaking = ""  # the application a uuid_break was sent for
        #: applications sent without waiting, held to go in one write with the next one
        self._held: list[tuple[str, str | None, str]] | None = None
        self._requeued = False  # a stay in a queue ended and the call went on (Reroute)

    # --- entry point ---------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.data = self.session.connect()
        except ESLError as exc:
            log.info("outbound connection dropped before connect: %s", exc)
            return
        self.state.uuid = self.data.get("Unique-ID") or self.data.get("variable_uuid") or ""
        if not self.state.uuid:
            log.warning("connect reply without a channel uuid; dropping the connection")
            return
        self.session.deliver_to(self._deliver_event)
        registered = False
        feed = self.ctl.feed_for(self.data.get("Core-UUID", ""))
        target: routing.Target | routing.RouteError | None = None
        gone = ""  # how the call ended for fsacd if not as planned: hangup, error
        try:
            if feed is not None and feed.attach(self.session, self._own_events):
                self.session.linger()
            else:
                self._own_events(linger=True)
            destination = self.data.get("Caller-Destination-Number", "")
            target = routing.resolve(self.data, destination, self.cfg)
            if isinstance(target, routing.RouteError):
                self._reject(target.reason)
                return
            self.ctl.register_call(self.state.uuid, self.inbox)
            registered = True
            if target.kind == "dial":
                self._dial_out(target.name)
                return
            if target.kind == "ivr":
                target = self._run_ivr(target.name)
                if target is None:
                    return
            while True:
                try:
                    self._serve_queue(target)
                    break
                except Reroute as again:
                    target = again.target
                    self._reset_for_requeue()
                    self._requeued = True
        except CallGone:
            log.info("call %s: caller gone (%s)", self.state.uuid, self.state.phase)
            gone = "hangup"
        except HandBack:
            log.info("call %s: handed back to the dialplan (controller stopping)", self.state.uuid)
            self.state.outcome = "handed-back"
        except ESLDisconnected:
            log.info("call %s: socket closed (%s)", self.state.uuid, self.state.phase)
            gone = "hangup"
        except RedisUnavailable as exc:
            log.warning("call %s: gave up in %s: %s", self.state.uuid, self.state.phase, exc)
            self.state.outcome = self.state.outcome or "error"
        except ESLError as exc:
            log.warning(
                "call %s: event-socket error in %s: %s", self.state.uuid, self.state.phase, exc
            )
            self.state.outcome = self.state.outcome or "error"
            gone = "error"
        except Exception:  # noqa: BLE001 - a bug must end this call only, never the server
            log.exception("call %s: unexpected error in %s", self.state.uuid, self.state.phase)
            self.state.outcome = self.state.outcome or "error"
            gone = "error"
        finally:
            # recorded first, then forgotten: an offer made before the end is released by
            # finish_call; one that finds no inbox here would end the call controller-lost
            if gone:
                self._ended_before_queue(target, gone)
            self._finish()
            if feed is not None:
                feed.detach(self.state.uuid)
            if registered:
                self.ctl.unregister_call(self.state.uuid)
            if self.winner_leg:
                self.ctl.unregister_leg(self.winner_leg)
            self.session.close()
            self.session.deliver_to(None)  # no cycle session <-> call: freed at once

    def _ended_before_queue(
        self, target: routing.Target | routing.RouteError | None, how: str
    ) -> None:
        """The call ended after fsacd took its socket but before it entered a queue (while
        fsacd subscribed to its events, or during a recording notice): the caller went
        (``how`` = hangup) or the socket failed (error). There is no call record to end, so
        the end is an event alone with ``stage=before-queue``: ``call-abandoned`` (outcome
        abandoned) or ``call-ended`` (outcome error); not in the queue's figures: it never
        entered the queue. Without it such a call had no outcome at all (found by the
        soak)."""
        if self.state.queue or self.state.phase != "new" or self._requeued:
            return  # entered a queue (finish records it), turned away, or already recorded
        if target is None:  # gone before fsacd looked at the route
            destination = self.data.get("Caller-Destination-Number", "")
            target = routing.resolve(self.data, destination, self.cfg)
        if not isinstance(target, routing.Target) or target.kind not in ("queue", "ivr"):
            return  # unroutable (rejected when seen) or an agent's call out (no queue call)
        where = {"queue": target.name} if target.kind == "queue" else {"ivr": target.name}
        hangup = how == "hangup"
        etype = "call-abandoned" if hangup else "call-ended"
        outcome = "abandoned" if hangup else "error"
        try:
            self.store.event(etype, call=self.state.uuid, outcome=outcome, stage="before-queue",
                             **where)  # fmt: skip
        except Exception:  # noqa: BLE001 - Redis gone for good: logged, the call is over
            log.warning("call %s: could not record its end before the queue", self.state.uuid)

    # --- routing -------------------------------------------------------------------------

    def _reject(self, reason: str) -> None:
        """Unknown target: error tone, hang-up with a clear cause, logged and recorded."""
        log.warning("call %s: cannot route: %s", self.state.uuid, reason)
        self.store.event("call-rejected", call=self.state.uuid, reason=reason)
        self.state.phase = "done"
        try:
            self._run_app("answer", wait=False)
            self._run_app("playback", ERROR_TONE)
            self._run_app("hangup", "UNALLOCATED_NUMBER", wait=False)
        except (CallGone, ESLError):
            pass

    def _dial_out(self, queue: str) -> None:
        """An agent's call out to a customer (``fsacd_route=dial:QUEUE``): the customer sees
        what the queue's ``customer_sees`` policy allows (fsacd/core/callerid.py)."""
        self.state.phase = "dialing"
        qcfg = self._queue_cfg(queue)
        region = qcfg.region or self.cfg.freeswitch.default_region
        dest = numbers.normalise(self.data.get("Caller-Destination-Number"), region)
        agent = self._calling_agent()
        if dest.e164 is None:
            self._refuse_dial(
                queue, agent, f"destination not dialable ({dest.reason})", "INVALID_NUMBER_FORMAT"
            )
            return
        customers, _ = self.ctl.contacts.lookup(dest)
        customer = customers[0] if customers else None
        try:
            leg_vars, reason = callerid.customer_leg_vars(
                qcfg,
                destination=dest,
                customer=customer,
                verified=self.ctl.verified.snapshot(),
                agent=agent,
                callback_of=None,
                network_number=None,
                host=self.cfg.numbers.pai_host,
            )
            leg_uuid = str(uuidlib.uuid4())
            dial = callerid.outbound_dial_string(
                qcfg,
                dest,
                {
                    **leg_vars,
                    "origination_uuid": leg_uuid,
                    "fsacd_call": self.state.uuid,
                    "fsacd_agent": (agent or {}).get("id", ""),
                    "fsacd_queue": queue,
                },
            )
        except ValueError as exc:
            self._refuse_dial(queue, agent, str(exc), "NORMAL_TEMPORARY_FAILURE")
            return
        self.store.event(
            "outbound-started",
            call=self.state.uuid,
            queue=queue,
            agent=(agent or {}).get("id", ""),
            number=dest.e164,
            cid=leg_vars.get("fsacd_cid", "network"),
            reason=reason,
        )
        self._run_app("set", "hangup_after_bridge=true", wait=False)
        app_uuid = self.session.execute("bridge", dial)
        ev = self._wait_app_complete(app_uuid, 24 * 3600.0)
        outcome = ev.var("originate_disposition") or ev.var("DIALSTATUS") or ""
        self.store.event(
            "outbound-ended",
            call=self.state.uuid,
            queue=queue,
            agent=(agent or {}).get("id", ""),
            outcome=outcome,
        )
        self.state.phase = "done"

    def _calling_agent(self) -> dict | None:
        """The agent placing a call out: ``fsacd_agent`` set by the dialplan, else the agent
        whose contact user is the calling user (presence id)."""
        aid = self.data.get("variable_fsacd_agent")
        if aid:
            return self.store.get_agent(aid)
        users = presence.channel_users(self.data)
        sip_user, sip_domain = (
            self.data.get("variable_sip_from_user"),
            self.data.get("variable_sip_from_host"),
        )
        if sip_user and sip_domain:
            users.add(f"{sip_user}@{sip_domain}".lower())
        for a in self.store.list_agents():
            if presence.contact_user(a.get("contact") or "") in users:
                return a
        return None

    def _refuse_dial(self, queue: str, agent: dict | None, reason: str, cause: str) -> None:
        log.warning("call %s: call out refused: %s", self.state.uuid, reason)
        self.store.event(
            "outbound-refused",
            call=self.state.uuid,
            queue=queue,
            agent=(agent or {}).get("id", ""),
            reason=reason,
        )
        self.state.phase = "done"
        self._run_app("hangup", cause, wait=False)

    def _run_ivr(self, menu: str) -> routing.Target | None:
        """Walk the DTMF menus (fsacd/core/ivr.py); the queue they lead to, or None when the call
        left fsacd (hang-up, voicemail, transfer)."""
        self.state.phase = "ivr"
        self._run_app("answer", wait=False)  # the menu's first prompt runs right after it
        self._answered = True

        def run_app(app: str, arg: str | None = None) -> Event:
            return self._wait_app_complete(
                self.session.execute(app, arg), ivr_esl.IVR_APP_TIMEOUT, app
            )

        result = ivr.run_menu(menu, ivr_esl.EslIvrCall(run_app), self.cfg)
        self.ivr_inputs = {**result.inputs, "ivr_path": " ".join(result.path)}
        self.language = result.language or self.language
        self.store.event(
            "call-ivr",
            call=self.state.uuid,
            menu=menu,
            action=result.action,
            target=result.target,
            reason=result.reason,
            path=" ".join(result.path),
        )
        if result.action in ("queue", "callback"):
            if result.action == "callback":
                self.wants_callback = True
            return routing.Target(kind="queue", name=result.target, source="ivr")
        self.state.phase = "done"
        if result.action in ("voicemail", "transfer"):
            self._run_app("transfer", dialstring.app_arg_safe(result.target), wait=False)
        else:
            self._run_app("hangup", "NORMAL_CLEARING", wait=False)
        return None

    def _serve_queue(self, target: routing.Target) -> None:
        qcfg = self._queue_cfg(target.name)
        caller = self.caller = self._caller_identity(qcfg)
        self.state.priority = routing.priority(self.data, qcfg)
        # Nothing is sent to the channel yet: a caller who finds a free agent gets the
        # bridge (and the variables before it) in the channel's first media tick, a caller
        # who has to wait gets answer, variables and hold music in that tick instead.
        admitted = self._admit(target.name)
        if admitted is None:
            return
        if admitted != target.name:
            qcfg = self._queue_cfg(admitted)
            target = routing.Target(kind="queue", name=admitted, source=target.source)
        now = time.time()
        self.state.entered_at = now
        self.hidden = any(callerid.caller_is_hidden(self.data, q) for q in self._chain(qcfg))
        fields = callerid.caller_record_fields(
            self.data, caller, self._privacy_cfg(qcfg), self.ctl.number_salt
        )
        call = {
            "id": self.state.uuid,
            "owner": self.ctl.controller_id,
            **fields,
            **{
                f"ivr_{k}" if not k.startswith("ivr_") else k: v
                for k, v in self.ivr_inputs.items()
            },
            "destination": self.data.get("Caller-Destination-Number", ""),
            "fs_core": self.data.get("Core-UUID", ""),
        }
        # the recording notice comes first: no agent is reserved while it plays
        parked = self._consent_dialog(qcfg)
        record = self._arrive(call, target.name, fields.get("name", ""), parked)
        self.state.queue = target.name
        self.state.queue_entered_at = now
        entered = float(record.get("entered_at") or now)
        self.state.entered_at = entered
        del record, fields, call  # not kept for the whole wait (memory per waiting call)
        self._ask_recording_consent(qcfg)
        if parked:  # back in its place after the notice: matched now, before any hold music
            self.ctl.matcher.match_now(target.name)
        self._wait_loop()  # a free agent: the offer is in the inbox already

    def _arrive(self, call: dict[str, Any], queue: str, name: str, parked: bool) -> dict:
        """The caller enters ``queue``: one round trip holds the arrival (the call recorded
        and queued, the queue matched: ``Matcher.arrive``) and the screen pop's lookup (no
        CRM: Redis only). A call another controller still held (it died, or FreeSWITCH
        moved the caller on in the dialplan) is ended there first: the caller is here."""
        store, pop = self.ctl.store, self.ctl.pop
        lookup: list[Any] = [None]

        def send(spec: Any) -> Any:
            batch = store.round_trip()
            arrival = store.arrive(call, queue, self.state.priority, parked=parked, match=spec,
                                   batch=batch)  # fmt: skip
            lookup[0] = pop.prepare_in(
                batch, self.state.uuid, queue, self.caller, self.hidden, name, self.ivr_inputs
            )
            batch.send()
            return arrival.get()

        def run(spec: Any) -> Any:
            return durable("arrival", send, spec)

        for _ in range(2):
            arrival = run(None) if parked else self.ctl.matcher.arrive(queue, run)
            if arrival.moved_from is None:
                break
            log.warning(
                "call %s: came back while %s held it; taking it over",
                self.state.uuid,
                arrival.moved_from,
            )
            self.store.finish_call(self.state.uuid, "controller-lost", 0.0)
        else:
            raise RuntimeError(f"call {self.state.uuid} is still held by {arrival.moved_from}")
        if lookup[0] is not None:
            self._prepared = lookup[0].get()
            if not any(o.call_id == self.state.uuid for o in arrival.offers):
                self._pop.save(self._prepared)  # the caller waits: stored now, not with an offer
        else:
            # a CRM may take its timeout: the lookup runs beside the call, and an offer made
            # meanwhile goes on and gets the pop completed when it ends (fsacd/pop/screen.py)
            gevent.spawn(
                self._pop.prepare,
                self.state.uuid,
                queue,
                self.caller,
                self.hidden,
                name,
                self.ivr_inputs,
            )
        return arrival.call or {}

    def _reset_for_requeue(self) -> None:
        """What the call knew about its first stay in a queue is over (that stay was
        recorded as ``exit-with-key``): a new stay starts with a fresh state. What
        FreeSWITCH was told (answer, channel variables, running applications) is kept."""
        for offer in self._deferred:  # offers for the stay that ended
            self.store.cancel_offer(offer)
        self._deferred = []
        self.state = CallState(uuid=self.state.uuid)
        self._finished = False
        self.became_callback = False
        self.answered_at = 0.0
        self.last_announced = None
        self.recording = {}

    def _admit(self, queue: str) -> str | None:
        """The queue this caller may join (``join_empty``, ``max_length``, then ``overflow``),
        or None when the call was turned away (recorded, hung up)."""
        seen: list[str] = []
        while queue not in seen:
            seen.append(queue)
            qcfg = self._queue_cfg(queue)
            reason = ""
            if not qcfg.join_empty and self.store.staffed(queue) == 0:
                reason = "empty"
            elif qcfg.max_length and self.store.waiting_count(queue) >= qcfg.max_length:
                reason = "full"
            if not reason:
                return queue
            self.store.event(
                "call-diverted",
                call=self.state.uuid,
                queue=queue,
                reason=reason,
                to=qcfg.overflow or "",
            )
            if not qcfg.overflow:
                self._turn_away(queue, reason)
                return None
            queue = qcfg.overflow
        self._turn_away(queue, "full")
        return None

    def _turn_away(self, queue: str, reason: str) -> None:
        log.info("call %s: not queued in %s (%s)", self.state.uuid, queue, reason)
        self.store.event("call-rejected", call=self.state.uuid, queue=queue, reason=reason)
        self.state.phase = "done"
        self._run_app("set", f"fsacd_result={reason}", wait=False)
        cause = "NORMAL_CIRCUIT_CONGESTION" if reason == "full" else "NORMAL_TEMPORARY_FAILURE"
        self._run_app("hangup", cause, wait=False)

    @property
    def _pop(self) -> Any:
        """The screen pop (re-read: a reload replaces it), riding out Redis outages."""
        return Durable(self.ctl.pop)

    def _queue_cfg(self, name: str) -> QueueConfig:
        return self.cfg.queues[name]

    def _caller_identity(self, qcfg: QueueConfig) -> numbers.Number:
        """The caller's number as the network gave it (privacy is applied where it is shown
        or stored: fsacd/core/callerid.py)."""
        # fsacd_region from the dialplan (per trunk), else the queue's region, else the default
        return callerid.network_caller(self.data, caller_region(self.cfg, qcfg.name, self.data))

    def _chain(self, qcfg: QueueConfig) -> list[QueueConfig]:
        """The queue and its overflow queues (a call may end up in any of them)."""
        chain = [qcfg]
        while chain[-1].overflow and chain[-1].overflow not in [q.name for q in chain]:
            chain.append(self._queue_cfg(chain[-1].overflow))
        return chain

    def _privacy_cfg(self, qcfg: QueueConfig) -> QueueConfig:
        """The queue config whose privacy rules apply: an anonymous queue anywhere in the
        overflow chain hides the number for the whole call."""
        if self.hidden and not callerid.caller_is_hidden(self.data, qcfg):
            return dataclasses.replace(qcfg, agent_sees="anonymous")
        return qcfg

    # --- waiting -------------------------------------------------------------------------

    def _wait_loop(self) -> None:
        """Hold music until an offer is made; max_wait leads to overflow or hang-up."""
        while True:
            qcfg = self._queue_cfg(self.state.queue)
            self.state.phase = "waiting"
            if self.draining:
                raise HandBack()
            if self.wants_callback:  # the IVR's callback:QUEUE option: the dialog at once
                self.wants_callback = False
                if self._ask_callback(qcfg):
                    return
            offer = None
            if self.state.moh_app_uuid is None:
                offer = self._offer_at_once()
                if offer is None:
                    self._start_moh(qcfg)
            deadline = self.state.queue_entered_at + qcfg.max_wait if qcfg.max_wait else None
            try:
                if offer is None:
                    offer = self._wait_for_offer(deadline)
                if offer is None:
                    offer = self._max_wait_reached(qcfg)
            except WaitingKey as key:
                if self._on_waiting_key(key.digit, qcfg):
                    return
                continue
            except Moved:
                self._follow_move(qcfg)
                continue
            if offer is None:
                if self.state.phase == "done":
                    return
                continue
            if offer.queue != self.state.queue and offer.queue in self.cfg.queues:
                # a supervisor moved the waiting call (fsacd call move / queue drain)
                self.state.queue = offer.queue
                qcfg = self._queue_cfg(offer.queue)
            if self._offer(offer, qcfg):
                return

    def _follow_move(self, qcfg: QueueConfig) -> None:
        """The call now waits in the queue Redis says: that queue's rules (max_wait from
        now) and, when it differs, its hold music (the old one stopped; the loop starts the
        new one, or offers the call at once)."""
        stored = (self.store.get_call(self.state.uuid) or {}).get("queue")
        if not stored or stored == self.state.queue or stored not in self.cfg.queues:
            return
        log.info("call %s: moved from %s to %s", self.state.uuid, self.state.queue, stored)
        self.state.queue = stored
        self.state.queue_entered_at = time.time()
        if self._queue_cfg(stored).moh != qcfg.moh:
            self._stop_moh()

    def _on_waiting_key(self, digit: str, qcfg: QueueConfig) -> bool:
        """The exit or callback key. True when the call left the queue for good."""
        if digit == qcfg.exit_key and qcfg.exit_target:
            return self._exit_with_key(qcfg)
        if digit == qcfg.callback_key:
            return self._ask_callback(qcfg)
        return False

    def _exit_with_key(self, qcfg: QueueConfig) -> bool:
        """Leave the queue to ``exit_target`` (recorded as ``exit-with-key``)."""
        action = ivr.parse_action(qcfg.exit_target)
        if isinstance(action, str):
            log.error("queue %s: bad exit_target: %s", qcfg.name, action)
            return False
        self.store.event(
            "call-exit-key", call=self.state.uuid, queue=self.state.queue, target=str(action)
        )
        if action.kind == "queue":
            if self.store.move_call(self.state.uuid, action.target, reason="exit-with-key"):
                self.state.queue = action.target
                self.state.queue_entered_at = time.time()
                self._stop_moh()
            return False
        self._stop_moh()
        self.state.outcome = "exit-with-key"
        self._finish()
        self.state.phase = "done"
        if action.kind == "ivr":
            target = self._run_ivr(action.target)
            if target is None:
                return True
            raise Reroute(target)  # served afresh by run(), not from inside this wait
        if action.kind in ("voicemail", "transfer"):
            self._run_app("transfer", dialstring.app_arg_safe(action.target), wait=False)
        else:
            self._run_app("hangup", "NORMAL_CLEARING", wait=False)
        return True

    def _ask_callback(self, qcfg: QueueConfig) -> bool:
        """Virtual hold: confirm the number to call back, register it, hang up. The call keeps
        its place in the queue (fsacd/acd/callback.py calls the agent, then the customer)."""
        callbacks = self.ctl.callbacks
        if self.caller.e164 and callbacks.refusal(self.state.queue, self.caller.e164):
            return False  # this queue cannot call out (no gateway or number): no callback
        self._stop_moh()
        self._prepare_channel(qcfg, "true", answer=True)
        region = qcfg.region or self.cfg.freeswitch.default_region
        call = ivr_esl.EslIvrCall(self._ivr_app)
        done, res = self._dialog(
            lambda: call.play_and_get_digits(
                1,
                15,
                2,
                6000,
                "#",
                tuple(qcfg.callback_prompt),
                tuple(qcfg.callback_invalid_prompt),
                "fsacd_callback_number",
                "\\d+",
                3000,
            ),
            park=True,
        )
        if not done or res is None:
            return False  # an agent is free for the caller now: no callback needed
        digits = res.digits or ""
        if digits == "1" and self.caller.e164:
            number = self.caller.e164
        else:
            number = numbers.normalise(digits, region).e164 if len(digits) > 1 else None
        if not number:
            self.store.event("callback-declined", call=self.state.uuid, queue=self.state.queue)
            return False
        if not callbacks.register(self.state.uuid, number, self.state.queue):
            self.store.event("callback-declined", call=self.state.uuid, queue=self.state.queue)
            return False  # back to hold music: the caller keeps waiting
        self.became_callback = True
        self.state.phase = "done"
        ivr_esl.EslIvrCall(self._ivr_app).playback(qcfg.callback_confirmed_prompt)
        self._run_app("hangup", "NORMAL_CLEARING", wait=False)
        return True

    def _dialog(self, run: Callable[[], T], *, park: bool = False) -> tuple[bool, T | None]:
        """Run a dialog with the caller while queued; (completed, result).

        No agent is left ``reserved`` while it runs: an offer that comes meanwhile stops it
        (an announcement: the agent rings now). With ``park`` (the recording notice, the
        callback dialog: long, and the caller's answer matters) the caller first leaves the
        queue's waiting list, keeping its place, so no offer is made for it meanwhile and
        the callers behind are served; it is put back in its place afterwards. A caller that
        cannot be parked has an offer on its way: the dialog is skipped."""
        if self._deferred:
            return False, None
        if park and not self.store.park(self.state.uuid):
            log.info("call %s: an offer is on its way; dialog skipped", self.state.uuid)
            return False, None
        self._in_dialog = True
        try:
            return True, run()
        except DialogInterrupted:
            log.info("call %s: dialog stopped: an agent is reserved", self.state.uuid)
            return False, None
        finally:
            self._in_dialog = False
            if park:
                self.store.unpark(self.state.uuid)

    def _ivr_app(self, app: str, arg: str | None = None) -> Event:
        return self._wait_app_complete(self.session.execute(app, arg), ivr_esl.IVR_APP_TIMEOUT, app)

    def _should_leave_empty(self) -> bool:
        qcfg = self._queue_cfg(self.state.queue)
        if not qcfg.leave_empty or self.store.staffed(self.state.queue):
            return False
        self.state.leaving_empty = True
        return True

    def _max_wait_reached(self, qcfg: QueueConfig) -> Offer | None:
        """Overflow to the next queue, or end the call (max_wait reached, or the queue has
        no agent left and ``leave_empty`` is set). An offer made meanwhile wins."""
        why = "empty" if self.state.leaving_empty else "max-wait"
        self.state.leaving_empty = False
        stored = (self.store.get_call(self.state.uuid) or {}).get("queue")
        if stored and stored != self.state.queue and stored in self.cfg.queues:
            # a supervisor moved the call (fsacd call move): the new queue's rules from now
            self.state.queue = stored
            self.state.queue_entered_at = time.time()
            return None
        if qcfg.overflow and qcfg.overflow not in self.state.overflowed:
            if self.store.move_call(self.state.uuid, qcfg.overflow, reason=why):
                log.info(
                    "call %s: max_wait in %s, overflow to %s",
                    self.state.uuid,
                    self.state.queue,
                    qcfg.overflow,
                )
                self.state.overflowed.append(self.state.queue)
                self.state.queue = qcfg.overflow
                self.state.queue_entered_at = time.time()
                new_moh = self._queue_cfg(qcfg.overflow).moh
                if new_moh != qcfg.moh:
                    self._stop_moh()
                return None
            # not waiting any more: an offer is on its way to us
            return self._wait_for_offer(time.time() + APP_TIMEOUT)
        self.state.outcome = why
        self.state.phase = "done"
        self._finish()
        self._stop_moh()
        self._run_app("hangup", "NORMAL_CLEARING", wait=False)
        return None

    # --- recording only with consent (fsacd/core/consent.py) -----------------------------------

    @staticmethod
    def _consent_dialog(qcfg: QueueConfig) -> bool:
        return qcfg.recording in ("ask", "always-announced") and bool(qcfg.recording_notice)

    def _ask_recording_consent(self, qcfg: QueueConfig) -> None:
        """``ask``: the notice, then a key; ``always-announced``: the notice. Before the wait."""
        policy = qcfg.recording
        self.recording = {"policy": policy, "key": None, "notice": False}
        if policy in ("ask", "always-announced") and qcfg.recording_notice:
            self._prepare_channel(qcfg, "true", answer=True)
        # an offer during the notice stops it: no key / notice not played, so no recording
        if policy == "ask" and qcfg.recording_notice:
            call = ivr_esl.EslIvrCall(self._ivr_app)
            _, self.recording["key"] = self._dialog(
                lambda: ivr.ask_key(call, qcfg.recording_notice, expect=qcfg.consent_key),
                park=True,
            )
        elif policy == "always-announced" and qcfg.recording_notice:
            call = ivr_esl.EslIvrCall(self._ivr_app)
            done, played = self._dialog(
                lambda: call.playback(qcfg.recording_notice), park=True
            )
            self.recording["notice"] = bool(done and played)

    def _start_recording(self, qcfg: QueueConfig, agent_id: str) -> None:
        """At the bridge: record only if the caller and the agent consented."""
        policy = self.recording.get("policy") or "off"
        if policy == "off":
            return
        agent = self.store.get_agent(agent_id)
        decision = consent.decide(
            policy,
            self.recording.get("key"),
            agent,
            consent_key=qcfg.consent_key,
            notice_played=bool(self.recording.get("notice")),
        )
        now = time.time()
        path = ""
        if decision.record:
            path = consent.recording_path(
                qcfg.recording_path, self.state.queue, now, self.state.uuid
            )
        fields = consent.call_fields(decision, policy, now, agent=agent, path=path)
        self.store.set_call_fields(self.state.uuid, **fields)
        self.store.event(
            "recording-decided",
            call=self.state.uuid,
            queue=self.state.queue,
            agent=agent_id,
            record="yes" if decision.record else "no",
            reason=decision.reason,
        )
        if not decision.record or not consent.may_start(self.store.get_call(self.state.uuid)):
            return
        file = self._recording_file(path)
        if file is None:
            log.warning(
                "call %s: not recording: FreeSWITCH did not say its recordings_dir", self.state.uuid
            )
            self.store.event("recording-failed", call=self.state.uuid, reason="no-recordings-dir")
            return
        try:
            command = consent.start_command(self.state.uuid, file)
        except ValueError as exc:
            log.warning("call %s: not recording: %s", self.state.uuid, exc)
            self.store.event("recording-failed", call=self.state.uuid, reason=str(exc))
            return
        self.store.set_call_fields(self.state.uuid, rec_file=file)
        reply = self.session.api(command)
        if reply.startswith("+OK"):
            self.recording["active"] = True
            self.store.event("recording-started", call=self.state.uuid, queue=self.state.queue)
        else:
            log.warning("call %s: recording did not start: %s", self.state.uuid, reply.strip())

    def _recording_file(self, path: str) -> str | None:
        """The recording's absolute file: a relative ``recording_path`` is relative to
        FreeSWITCH's ``recordings_dir`` (FreeSWITCH itself would put it under the channel's
        ``sound_prefix``, in the sounds directory). None when the switch does not say."""
        if path.startswith("/"):
            return path
        core = self.data.get("Core-UUID", "")
        base = _RECORDINGS_DIRS.get(core)
        if base is None:
            reply = self.session.api("global_getvar recordings_dir").strip()
            if not reply.startswith("/"):
                return None
            base = _RECORDINGS_DIRS[core] = reply.rstrip("/") or "/"
        return consent.absolute_path(base, path)

    def revoke_recording(self, party: str) -> None:
        """Caller, agent or CLI revoked consent: stop at once (``uuid_record ... stop all``
        acts even while the bridge runs) and record who and when."""
        rev = consent.revoke(self.state.uuid, party, time.time())
        self.store.set_call_fields(self.state.uuid, **rev.fields)
        if self.recording.get("active"):
            self._api_quiet(consent.stop_command(self.state.uuid))
            self.recording["active"] = False
        ev = dict(rev.event)
        self.store.event(ev.pop("type"), **ev)
        log.info("call %s: recording consent revoked by %s", self.state.uuid, party)

    def _announcement_due(self, qcfg: QueueConfig) -> bool:
        last = self.last_announced or self.state.queue_entered_at
        return announce.due(last, time.time(), qcfg.announce_every)

    def _announce(self, qcfg: QueueConfig) -> None:
        """Position and estimated wait (from the queue's recent handle times)."""
        self.last_announced = time.time()
        position = self.store.position(self.state.uuid)
        if position is None:
            return
        times = self.store.handle_times(self.state.queue)
        # two counts, not the whole queue view: this runs for every waiting caller
        _, free = self.store.candidates(self.state.queue)
        staffed = self.store.staffed(self.state.queue)
        estimate = announce.estimate_wait(position, times, len(free), staffed)
        self._stop_moh()
        phrases = announce.announcement_phrases(position, estimate, self.language)

        def say() -> None:
            for app, arg in phrases:
                done = self._run_app(app, arg)
                if app == "playback" and done is not None:
                    prompts.check_playback(arg, done.get("Application-Response"), self.state.uuid)

        done, _ = self._dialog(say)
        if done:
            self._start_moh(qcfg)  # else an offer is here: the agent rings next

    def _start_moh(self, qcfg: QueueConfig) -> None:
        """Answer (per ``answer_mode``), the channel variables and the hold music, sent back
        to back: they run in one media tick."""
        self._held = []
        try:
            self._prepare_channel(qcfg, "true", answer=True)
            self.state.moh_app_uuid = self._send_held("playback", qcfg.moh)
        finally:
            self._held = None
        self._unawaited.add(self.state.moh_app_uuid)  # its end is seen in the wait loop

    def _prepare_channel(self, qcfg: QueueConfig, socket_resume: str, *, answer: bool) -> None:
        """Send, without waiting, what must precede the next application: the answer (when
        ``answer`` and not yet done) and one ``multiset`` of the call's channel variables
        (only what changed since the last one)."""
        if answer and not self._answered:
            self._answered = True
            app = "pre_answer" if qcfg.answer_mode == "pre-answer" else "answer"
            self._run_app(app, wait=False)
        values: dict[str, str] = {}
        if self._socket_resume != socket_resume:
            # true while waiting: our death sends the caller on in the dialplan; false once
            # an agent rings: a dying controller must not cut the call (freeswitch/README.md)
            values["socket_resume"] = socket_resume
        if not self._vars_for:
            # headers of fsacd's own namespace a SIP caller sent (FreeSWITCH keeps them as
            # sip_h_X-Fsacd-* and copies them onto the agent's leg): gone before any bridge,
            # so an agent's screen never shows a forged contact, tier or match
            for name in forged_headers(self.data):
                self._run_app("unset", name, wait=False)
        if self._vars_for != qcfg.name:
            values.update(
                {
                    # hold music in bounded segments: even a caller whose controller died
                    # without socket_resume hears it end and goes on in the dialplan
                    "playback_timeout_sec": str(int(qcfg.moh_segment)),
                    "hangup_after_bridge": "true",
                    "continue_on_fail": "true",
                    "instant_ringback": "true",
                    # what the caller hears while agents ring: answered (transfer_ringback)
                    # or not yet answered (ringback, as early media), the hold music
                    "transfer_ringback": qcfg.moh,
                    "ringback": qcfg.moh,
                    "fsacd_call": self.state.uuid,
                    "fsacd_queue": qcfg.name,
                }
            )
        if not values:
            return
        self._run_app("multiset", dialstring.multiset_arg(values), wait=False)
        self._socket_resume = socket_resume
        self._vars_for = qcfg.name

    def _stop_moh(self) -> None:
        """Stop the hold music without waiting for it: what is sent next (event-lock) runs
        in the tick the playback ends.

        A plain ``uuid_break`` ends the running playback and leaves the channel's queue alone
        (``uuid_break ... all`` would also flush, silently, what is queued). A playback that
        has not started yet would clear the break when it starts, so we first wait (about a
        tick) for its CHANNEL_EXECUTE. If that never comes (flushed, or its event was lost
        while the call's events moved from the shared feed to its socket) the break is sent
        all the same: it ends the music if it runs, and does nothing if it does not.
        """
        app_uuid = self.state.moh_app_uuid
        if app_uuid is None:
            return
        self.state.moh_app_uuid = None
        if app_uuid not in self._apps_started and app_uuid not in self._apps_done:
            if not self._wait_app_start(app_uuid, APP_START_TIMEOUT):
                log.warning(
                    "call %s: no start seen for the hold music; breaking it anyway",
                    self.state.uuid,
                )
        if app_uuid in self._apps_done:
            return
        self.session.api(f"uuid_break {self.state.uuid}")

    def _wait_for_offer(self, deadline: float | None) -> Offer | None:
        if self._deferred:
            return self._deferred.pop(0)
        qcfg = self._queue_cfg(self.state.queue)
        poll = 1.0 if qcfg.leave_empty else 5.0
        if qcfg.announce_every:
            poll = min(poll, 1.0)
        keys = {k for k in (qcfg.exit_key, qcfg.callback_key) if k}
        while True:
            timeout = poll if deadline is None else max(0.0, min(poll, deadline - time.time()))
            if deadline is not None and timeout <= 0:
                return None
            if self._moved:
                self._moved = False
                raise Moved()
            kind, item = self._next(timeout)
            if kind == "offer":
                return item
            if self._moved:
                continue
            if kind == "timeout" and self._should_leave_empty():
                return None
            if kind == "timeout" and self._announcement_due(qcfg):
                self._announce(qcfg)
                if self._deferred:
                    return self._deferred.pop(0)
                continue
            if kind == "event":
                self._waiting_event(item, qcfg, keys)
            # the last event is not kept alive while the caller waits for the next one:
            # a real FreeSWITCH event is 100-300 headers (docs/performance.md)
            item = None

    def _waiting_event(self, ev: Event, qcfg: QueueConfig, keys: set[str]) -> None:
        """An event of the caller's channel while it waits (hold music playing)."""
        if ev.name == "DTMF":
            digit = ev.get("DTMF-Digit", "")
            if digit in keys:
                raise WaitingKey(digit)
            return  # a key nobody expected: ignored, the caller keeps waiting
        moh_done = ev.get("Application-UUID") == self.state.moh_app_uuid
        if ev.name == "CHANNEL_EXECUTE_COMPLETE" and moh_done:
            # the hold music ended by itself (a finite file): play it again
            prompts.check_playback(qcfg.moh, ev.get("Application-Response"), self.state.uuid)
            self.state.moh_app_uuid = None
            gevent.sleep(0.2)
            self._start_moh(self._queue_cfg(self.state.queue))

    # --- offering --------------------------------------------------------------------------

    def _offer(self, offer: Offer, qcfg: QueueConfig) -> bool:
        """Ring the reserved agent(s). True when the call was bridged and is over."""
        self.state.phase = "offering"
        # every agent's leg and pop are made before the contacts are read: ringing, the legs
        # and the pops go in one round trip (_ring); an agent whose contact turns out
        # unusable (rare: stored before the checks) is dropped afterwards
        legs = {str(uuidlib.uuid4()): agent_id for agent_id in offer.agents}
        leg_vars = {leg: self._leg_vars(leg, agent_id) for leg, agent_id in legs.items()}
        waited = time.time() - self.state.entered_at
        shown = self.presentation.reason if self.presentation else ""
        rung = self._ring(offer, legs, shown, waited)
        if rung is None:
            log.info("call %s: offer %s no longer valid", self.state.uuid, offer.offer_id)
            return False
        contacts, pop_headers = rung
        dropped = []
        for leg, agent_id in list(legs.items()):
            contact = contacts.get(agent_id)
            problem = dialstring.contact_problem(contact) if contact else "no contact"
            if problem:
                self._bench_agent(agent_id, problem)
                dropped.append(agent_id)
                del legs[leg]
        if dropped:
            self._pop.withdrawn(self.state.uuid, dropped)
            if self._prepared is not None:
                self._prepared.agents = [a for a in self._prepared.agents if a not in dropped]
            if not legs:
                self.store.cancel_offer(offer)
                return False
            self.store.set_call_fields(self.state.uuid, legs=recovery.format_legs(legs))
        leg_specs: list[tuple[dict[str, str], str]] = []
        for leg, agent_id in legs.items():
            leg_vars[leg].update(pop_headers.get(agent_id, {}))
            leg_specs.append((leg_vars[leg], contacts[agent_id]))
        global_vars = {"leg_timeout": str(int(qcfg.ring_timeout)), "ignore_early_media": "true"}
        bridge = dialstring.bridge_string(global_vars, leg_specs)
        self._stop_moh()
        # from here a dying controller must not cut the call (see freeswitch/README.md)
        self._held = []
        try:
            self._prepare_channel(qcfg, "false", answer=False)  # the bridge answers the caller
            app_uuid = self._send_held("bridge", bridge)
        finally:
            self._held = None
        deadline = time.time() + qcfg.ring_timeout + BRIDGE_MARGIN
        while True:
            kind, item = self._next(max(0.1, deadline - time.time()))
            if kind == "offer":
                self.store.cancel_offer(item)
                continue
            if kind == "timeout":
                if time.time() >= deadline:
                    log.warning(
                        "call %s: bridge gave no result in time; cancelling the legs",
                        self.state.uuid,
                    )
                    for leg in legs:
                        self._api_quiet(f"uuid_kill {leg} NORMAL_CLEARING")
                    deadline = time.time() + BRIDGE_MARGIN
                continue
            ev: Event = item
            if ev.name == "CHANNEL_BRIDGE":
                winner = legs.get(ev.get("Other-Leg-Unique-ID", ""))
                if winner is None:
                    log.warning("call %s: bridged to a leg we did not place", self.state.uuid)
                    continue
                pop = self._pop.reads(self.state.uuid)  # read with the answer: one trip
                if not self.store.answered(offer, winner, also=pop):
                    self._claim_stale(offer, winner)
                self._pop.answered(self.state.uuid, winner, loaded=pop)
                self.state.agent = winner
                self.winner_leg = ev.get("Other-Leg-Unique-ID", "")
                self.ctl.register_leg(self.winner_leg, self.state.uuid)
                self.answered_at = time.time()
                self.state.phase = "bridged"
                self._start_recording(qcfg, winner)
                self.state.outcome = "answered"
                return self._bridged(app_uuid)
            if ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.get("Application-UUID") == app_uuid:
                results = outcomes.leg_results(ev.headers, legs)
                self.store.offer_failed(offer, results, qcfg)
                self._prepare_channel(qcfg, "true", answer=False)
                return False

    def _ring(
        self, offer: Offer, legs: dict[str, str], shown: str, waited: float
    ) -> tuple[dict[str, str], dict[str, dict[str, str]]] | None:
        """The offer's agents go ringing, the call records its legs and the agents get their
        pops, in one round trip when the pop is held here (no CRM). Returns the agents'
        contacts and the pops' SIP header leg variables per agent; None for a stale offer
        (its pops are withdrawn)."""
        agents = list(legs.values())
        fields = {"legs": recovery.format_legs(legs), "presentation": shown}
        prepared = self._prepared
        if prepared is None:  # with a CRM: the pop as the lookup left it in Redis
            contacts = self.store.ring(offer, fields=fields)
            if contacts is None:
                return None
            return contacts, self._pop.offered(self.state.uuid, agents, waited)
        store, pop = self.ctl.store, self.ctl.pop

        def send() -> Any:
            batch = store.round_trip()
            ring = store.ring(offer, fields=fields, batch=batch)
            popped = pop.offered_in(batch, prepared, agents, waited, offer.queue)
            batch.send()
            return ring.get(), popped

        contacts, popped = durable("ringing", send)
        if contacts is None:
            self._pop.withdrawn(self.state.uuid, popped.agents)
            prepared.agents = []
            return None
        popped.sent()
        return contacts, popped.headers

    def _claim_stale(self, offer: Offer, winner: str) -> None:
        """FreeSWITCH bridged to ``winner`` but Redis refused the offer as stale: the agent
        talks to this caller, so the records are made to say so (never a talking agent shown
        free). A retry whose first try went through (its reply lost in an outage) finds the
        call already bridged to the agent."""
        rec = self.store.get_call(self.state.uuid) or {}
        if rec.get("state") == "bridged" and rec.get("agent") == winner:
            return
        if self.store.claim_bridged(offer, winner):
            log.warning(
                "call %s: agent %s answered a stale offer; recorded as bridged",
                self.state.uuid,
                winner,
            )
        else:
            log.error(
                "call %s: agent %s answered a stale offer while in-call for another call",
                self.state.uuid,
                winner,
            )

    def _bench_agent(self, agent_id: str, problem: str) -> None:
        """An agent whose contact cannot be dialled (it was stored before the checks, or by
        hand): on break ``bad-contact`` until a supervisor fixes it, so the next match picks
        someone else instead of offering the same agent again and again."""
        log.warning(
            "agent %s: contact cannot be dialled (%s): on break 'bad-contact'", agent_id, problem
        )
        self.store.set_break(agent_id, "bad-contact")
        self.store.event("agent-bad-contact", agent=agent_id, call=self.state.uuid, reason=problem)

    def _leg_vars(self, leg_uuid: str, agent_id: str) -> dict[str, str]:
        """Channel variables of one agent leg: who it is for and what the phone shows
        (the queue's ``agent_sees`` policy, fsacd/core/callerid.py)."""
        qcfg = self._privacy_cfg(self._queue_cfg(self.state.queue))
        shown, self.presentation = callerid.agent_leg_vars(None, self.data, self.caller, qcfg)
        return {
            **shown,
            "origination_uuid": leg_uuid,
            "fsacd_call": self.state.uuid,
            "fsacd_agent": agent_id,
            "fsacd_queue": self.state.queue,
        }

    def _bridged(self, app_uuid: str) -> bool:
        """Talking: wait for the bridge to end (no time limit, but every wait is bounded)."""
        revoke_key = self._queue_cfg(self.state.queue).revoke_key
        while True:
            kind, item = self._next(30.0)
            if kind == "offer":
                self.store.cancel_offer(item)
            elif kind == "event" and item.name == "DTMF":
                if revoke_key and item.get("DTMF-Digit") == revoke_key:
                    self.revoke_recording("caller")
            elif kind == "event":
                ev: Event = item
                if ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.get("Application-UUID") == app_uuid:
                    self.state.phase = "done"
                    self._finish()
                    return True

    # --- plumbing --------------------------------------------------------------------------

    def _own_events(self, *, linger: bool = False) -> None:
        """This call's socket subscribes to its own channel's events (no shared feed, or
        the feed went down: fsacd/esl/callfeed.py)."""
        self.session.own_events(CALL_EVENTS, linger=linger)

    def _deliver_event(self, ev: Event) -> None:
        """The socket's events into the inbox (called by the session's reader greenlet; the
        socket's close comes as a ``SOCKET_CLOSED`` event)."""
        self.inbox.put(("event", ev))

    def _offer_at_once(self) -> Offer | None:
        """An offer already in the inbox (the fast path), without waiting; what else is
        there stays for the next reader."""
        if self._deferred:
            return self._deferred.pop(0)
        seen: list[tuple[str, Any]] = []
        try:
            while self._pushback or not self.inbox.empty():
                kind, item = self._next(0)
                if kind == "offer":
                    return item
                if kind != "timeout":
                    seen.append((kind, item))
        finally:
            self._pushback[:0] = seen
        return None

    def _next(self, timeout: float) -> tuple[str, Any]:
        """Next inbox item; raises CallGone on hang-up or disconnect."""
        if self._pushback:
            kind, item = self._pushback.pop(0)
            return kind, item
        try:
            kind, item = self.inbox.get(timeout=timeout)
        except Empty:
            return "timeout", None
        if kind == "event":
            self._note_app(item)
        if kind == "gone":
            raise CallGone()
        if kind == "revoke":
            self.revoke_recording(item)
            return "timeout", None
        if kind == "moved":  # only a waiting call can be moved: noted for the waiting loop
            self._moved = True  # (whatever wait is running now: an announcement, a break)
            return "timeout", None
        if kind == "drain":
            self.draining = True
            if self.state.phase == "waiting":
                raise HandBack()
            return "timeout", None
        if kind == "event":
            name = item.name
            if name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "DISCONNECT", "SOCKET_CLOSED"):
                if self.state.phase == "bridged":
                    self.state.phase = "done"
                raise CallGone()
            if name == "CHANNEL_EXECUTE_COMPLETE" and item.get("Application") == "socket":
                # the channel left the socket app: transferred (fsacd call transfer, or the
                # dialplan moved it on); the call is no longer fsacd's
                self.state.outcome = self.state.outcome or "transferred"
                # closing the socket with socket_resume=true would reset the channel
                # (CS_RESET), breaking whatever its new extension runs
                try:
                    self.session.api(f"uuid_setvar {self.state.uuid} socket_resume false")
                except ESLError:
                    pass  # the socket is gone already: nothing to reset
                if self.state.phase == "bridged":
                    self.state.phase = "done"
                raise CallGone()
        return kind, item

    def _note_app(self, ev: Event) -> None:
        """Keep track of which of our applications started and which completed."""
        if ev.name == "CHANNEL_EXECUTE":
            self._apps_started.add(ev.get("Application-UUID", ""))
        elif ev.name == "CHANNEL_EXECUTE_COMPLETE":
            app_uuid = ev.get("Application-UUID", "")
            self._apps_started.discard(app_uuid)
            if app_uuid in self._unawaited:
                self._unawaited.discard(app_uuid)
                ev = _completion_marker(ev)
            self._apps_done[app_uuid] = ev
            while len(self._apps_done) > DONE_KEPT:
                self._apps_done.popitem(last=False)

    def _wait_app_start(self, app_uuid: str, timeout: float) -> bool:
        """Wait (bounded) for an application's CHANNEL_EXECUTE; False if it did not come."""
        deadline = time.time() + timeout
        while app_uuid not in self._apps_started and app_uuid not in self._apps_done:
            remaining = deadline - time.time()
            if remaining <= 0:
                return False
            kind, item = self._next(remaining)
            if kind == "offer":
                self._deferred.append(item)
            elif kind == "event" and item.name == "DTMF":
                self._pushback.append((kind, item))  # for whoever reads keys next
                return app_uuid in self._apps_started or app_uuid in self._apps_done
        return True

    def _wait_app_complete(self, app_uuid: str, timeout: float, app: str = "") -> Event:
        """The application's CHANNEL_EXECUTE_COMPLETE. Only waited for once its
        CHANNEL_EXECUTE came (within :data:`APP_START_TIMEOUT`): one that never starts was
        flushed and will never complete. Raises ESLError, saying why, when a wait runs out;
        DialogInterrupted (once the application ended) when an offer came in a dialog."""
        what = app or "application"
        started_by = time.time() + APP_START_TIMEOUT
        deadline = time.time() + timeout
        while True:
            started = app_uuid in self._apps_started
            if self._in_dialog and self._deferred and started and self._breaking != app_uuid:
                # an agent is reserved for this caller: end the prompt now (a plain
                # uuid_break stops the running application only)
                self._breaking = app_uuid
                self._api_quiet(f"uuid_break {self.state.uuid}")
            done = self._apps_done.pop(app_uuid, None)
            if done is not None:
                if self._in_dialog and self._deferred:
                    self._breaking = ""
                    raise DialogInterrupted()
                return done
            now = time.time()
            if not started and now >= started_by:
                raise ESLError(
                    f"{what} did not start within {APP_START_TIMEOUT:.0f}s "
                    "(flushed by uuid_break all, or queued behind an application that runs on)"
                )
            if now >= deadline:
                raise ESLError(f"{what} did not complete within {timeout:.0f}s")
            limit = deadline if started else min(deadline, started_by)
            kind, item = self._next(max(limit - now, 0.001))
            if kind == "offer":
                self._deferred.append(item)  # handled once the wait loop runs again

    def _run_app(self, app: str, arg: str | None = None, *, wait: bool = True) -> Event | None:
        """Send an application; with ``wait``, until it completed (a media tick at least).
        Without ``wait``, while applications are held (:meth:`_send_held`), it goes with the
        next one sent."""
        if not wait and self._held is not None:
            app_uuid = str(uuidlib.uuid4())
            self._held.append((app, arg, app_uuid))
            if len(self._unawaited) < DONE_KEPT:
                self._unawaited.add(app_uuid)
            return None
        app_uuid = self.session.execute(app, arg)
        if not wait:
            if len(self._unawaited) < DONE_KEPT:  # those that never complete (hangup) bounded
                self._unawaited.add(app_uuid)
            return None
        return self._wait_app_complete(app_uuid, APP_TIMEOUT, app)

    def _send_held(self, app: str, arg: str | None) -> str:
        """Send the held applications and then ``app`` in one write (a real switch reads a
        socket's commands slowly when busy: one round trip instead of one per application);
        return ``app``'s uuid. Holding ends here."""
        held, self._held = self._held or [], None
        app_uuid = str(uuidlib.uuid4())
        self.session.execute_many([*held, (app, arg, app_uuid)])
        return app_uuid

    def _api_quiet(self, cmd: str) -> None:
        try:
            self.session.api(cmd)
        except ESLError as exc:
            log.info("call %s: api %s failed: %s", self.state.uuid, cmd.split()[0], exc)

    def _wait_agent_leg_gone(self) -> None:
        """The caller's end comes before the agent's leg is down (the switch hangs the leg up
        in the leg's own thread, a tick or so later): released at once, the agent was offered
        the next call while the last one's leg was still up (two legs to one phone; a
        second INVITE before the first call's BYE). So the agent is released once the
        switch's watcher (fsacd/acd/presence.py) reports the leg gone, waiting at most
        LEG_END_WAIT; without a watcher of this switch up, at once."""
        gone = self.ctl.wait_leg_end(
            self.winner_leg, self.data.get("Core-UUID", ""), LEG_END_WAIT
        )
        if gone is False:
            log.info(
                "call %s: agent leg %s not reported gone after %gs; releasing the agent",
                self.state.uuid,
                self.winner_leg,
                LEG_END_WAIT,
            )

    def _finish(self) -> None:
        """Record the end of the call and release all it holds (idempotent)."""
        if not self.state.queue or getattr(self, "_finished", False) or self.became_callback:
            return
        self._finished = True
        outcome = self.state.outcome
        if not outcome:
            outcome = "abandoned"
        if self.state.agent and self.winner_leg:
            self._wait_agent_leg_gone()
        qcfg = self._queue_cfg(self.state.queue)
        pop = self._pop.reads(self.state.uuid)  # read with the end of the call: one trip
        try:
            if outcome == "abandoned" and not self.state.agent:  # hung up, never served
                self.store.abandon(self.state.uuid, outcome, also=pop)
            else:
                self.store.finish_call(self.state.uuid, outcome, qcfg.wrap_up, also=pop)
        except RedisUnavailable as exc:  # recovery records it once Redis is back
            log.warning("call %s: could not record the end of the call: %s", self.state.uuid, exc)
            return
        except Exception:  # noqa: BLE001 - a bug: recovery and the sweep clean up later
            log.exception("call %s: could not record the end of the call", self.state.uuid)
            return
        handle_time = None
        if self.state.agent and self.answered_at:
            handled = time.time() - self.answered_at + qcfg.wrap_up
            queue = self.state.queue

            def handle_time(pipe: object) -> None:  # written with the pop's end
                self.store.record_handle_time(queue, handled, pipe=pipe)

        self._pop.finished(
            self.state.uuid, self.state.agent or None, outcome, loaded=pop, also=handle_time
        )
        if self.state.agent and qcfg.wrap_up >= 0:
            self.ctl.wake_later(qcfg.wrap_up)
