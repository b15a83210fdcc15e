"""The screen pop: who is calling, shown to the agent when a call is offered and answered.

The call flow uses :class:`ScreenPop` (docs/screen-pop.md):

1. :meth:`ScreenPop.prepare` right after the call is queued, while the caller waits: contact
   lookup (store, then the external CRM with its strict timeout), previous calls from
   fsacd's history; the result is kept in Redis (``pop:call:{id}``).
2. :meth:`ScreenPop.offered` when fsacd offers the call, before the bridge goes out: two
   Redis round trips (read the prepared pop, then PUBLISH + XADD per agent in one pipeline);
   returns the ``sip_h_X-Fsacd-*`` leg variables for each agent.
3. :meth:`ScreenPop.answered` when an agent answers (the other agents of a ring-all get a
   ``withdrawn`` message).
4. :meth:`ScreenPop.finished` at the end: history record, ``ended``/``withdrawn`` messages,
   the prepared pop is deleted.

Delivery per agent: pub/sub channel and MAXLEN-capped stream, both ``pop:agent:{id}``
(written by :class:`fsacd.state.pop.PopStore`); plus the queue's optional webhook (signed,
background greenlet, one attempt, fsacd/webclient.py). None of these
methods raises: a pop is never worth a failed call. Nothing is logged but call ids, queue
and agent names, stages and error kinds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent.pool

from fsacd.config import Config, QueueConfig
from fsacd.core import numbers
from fsacd.core.dialstring import var_value
from fsacd.core.numbers import Number
from fsacd.pop.contacts import Contacts
from fsacd.pop.crm import Crm
from fsacd.pop.history import History
from fsacd.secret import read_secret
from fsacd.state.base import Batch, Pipe, Reply
from fsacd.state.keys import Keys
from fsacd.state.pop import PopReads, PopStore
from fsacd.state.store import ID_RE
from fsacd.webclient import HttpFailure, http_request

if TYPE_CHECKING:
    from gevent import Greenlet

log = logging.getLogger(__name__)

#: Previous calls shown in a pop.
HISTORY_SHOWN = 5
#: IVR input kept: entries, key and value length.
MAX_IVR, MAX_IVR_KEY, MAX_IVR_VALUE = 20, 64, 256
#: Webhook requests in flight at once; more are dropped (logged), never queued.
WEBHOOK_POOL = 50
#: Prefix of the SIP header leg variables.
SIP_PREFIX = "sip_h_X-Fsacd-"


def caller_region(cfg: Config, queue: str, chanvars: Mapping[str, str] | None = None) -> str:
    """Region to read the caller number in: the channel variable ``fsacd_region`` (set by the
    dialplan per trunk) if it names a supported region, else the queue's ``region``, else
    ``freeswitch.default_region``."""
    for name in ("variable_fsacd_region", "fsacd_region"):
        value = (chanvars or {}).get(name) or ""
        if value and numbers.supported_region(value.strip().upper()):
            return value.strip().upper()
    q = cfg.queues.get(queue)
    if q is not None and q.region:
        return q.region
    return cfg.freeswitch.default_region


def clean_ivr(ivr: Mapping[str, Any] | None) -> dict[str, str]:
    """The IVR input as stored: string keys and values, capped in number and length."""
    out: dict[str, str] = {}
    for k, v in list((ivr or {}).items())[:MAX_IVR]:
        if v is None:
            continue
        out[str(k)[:MAX_IVR_KEY]] = str(v)[:MAX_IVR_VALUE]
    return out


def _contact_fields(fields: Iterable[str]) -> set[str] | None:
    """The contact fields a pop_fields list allows; None = all (``contact.*``)."""
    allowed = set()
    for f in fields:
        if f.startswith("contact."):
            name = f[len("contact.") :]
            if name == "*":
                return None
            allowed.add(name)
    return allowed


def shape(prepared: Mapping[str, Any], fields: Iterable[str], qcfg: QueueConfig | None) -> dict:
    """The pop's body (without stage, agent, ts, waited) limited to ``fields``.

    Always present: ``type``, ``call``, ``queue``, ``match``, ``hidden``. The rest only if
    named in ``fields`` (see ``pop_fields`` in docs/config.md).
    """
    f = set(fields)
    pop: dict[str, Any] = {
        "type": "pop",
        "call": prepared.get("call", ""),
        "queue": prepared.get("queue", ""),
        "match": prepared.get("match", "pending"),
        "hidden": bool(prepared.get("hidden", False)),
    }
    if "queue_name" in f and qcfg is not None and qcfg.display_name:
        pop["queue_name"] = qcfg.display_name
    if "number" in f and prepared.get("number"):
        pop["number"] = prepared["number"]
    if "caller_name" in f and prepared.get("caller_name"):
        pop["caller_name"] = prepared["caller_name"]
    if "contacts" in f and "contacts" in prepared:
        allowed = _contact_fields(f)
        pop["contacts"] = [
            {k: v for k, v in c.items() if k == "source" or allowed is None or k in allowed}
            for c in prepared["contacts"]
        ]
        pop["matches"] = prepared.get("matches", len(pop["contacts"]))
    if "new_contact" in f and prepared.get("new_contact") is not None:
        new = dict(prepared["new_contact"])
        if "number" not in f:
            new.pop("numbers", None)
        pop["new_contact"] = new
    if "ivr" in f and "ivr" in prepared:
        pop["ivr"] = prepared["ivr"]
    if "history" in f and "history" in prepared:
        pop["history"] = prepared["history"]
    return pop


def sip_headers(pop: Mapping[str, Any]) -> dict[str, str]:
    """The essentials of ``pop`` as ``sip_h_X-Fsacd-*`` leg variables for the agent's leg.

    Values go through :func:`fsacd.core.dialstring.var_value` (nothing that could split, quote or
    expand in a dial string survives); empty values are left out. Only what the pop itself
    carries (so ``pop_fields`` and hidden numbers are respected).
    """
    out: dict[str, str] = {}

    def put(name: str, value: Any) -> None:
        if value is None:
            return
        text = var_value(value)
        if text:
            out[SIP_PREFIX + name] = text

    put("Call", pop.get("call"))
    put("Queue", pop.get("queue"))
    put("Match", pop.get("match"))
    put("Number", pop.get("number"))
    contacts = pop.get("contacts") or []
    if contacts:
        first = contacts[0]
        put("Contact", first.get("id"))
        put("Contact-Name", first.get("name"))
        put("Company", first.get("company"))
        put("Tier", first.get("tier"))
        put("Matches", pop.get("matches", len(contacts)))
    if pop.get("waited") is not None:
        put("Waited", int(float(pop["waited"])))
    return out


def anonymous_queue(cfg: Config, queue: str) -> bool:
    """True if agents of ``queue`` must not see callers (``agent_sees = "anonymous"``)."""
    return getattr(cfg.queues.get(queue), "agent_sees", None) == "anonymous"


def _as_hidden(prepared: Mapping[str, Any]) -> dict[str, Any]:
    """A prepared pop stripped of everything that identifies the caller."""
    keep = ("call", "queue", "ivr")
    out = {k: prepared[k] for k in keep if k in prepared}
    out.update(hidden=True, match="hidden", history=[])
    return out


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _float(v: Any, default: float = 0.0) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


@dataclass
class Prepared:
    """A screen pop prepared by the call's own greenlet (:meth:`ScreenPop.prepare_in`): the
    pop ``data``, the queue it was prepared in, the history list (``ref``), when the lookup
    began, the agents it was last offered to, and whether it is stored yet."""

    call_id: str
    data: dict[str, Any]
    queue: str
    ref: str
    started: float
    agents: list[str] = field(default_factory=list)
    saved: bool = False


@dataclass
class OfferedPop:
    """The pops :meth:`ScreenPop.offered_in` queued: ``headers`` (SIP header leg variables
    per agent); :meth:`sent` once the batch went out and the offer stands."""

    screen: ScreenPop
    prepared: Prepared
    agents: list[str]
    headers: dict[str, dict[str, str]]
    pops: list[dict[str, Any]]

    def sent(self) -> None:
        """The pops are out: the prepared pop is stored, offered to ``agents``; webhooks."""
        self.prepared.saved = True
        self.prepared.agents = list(self.agents)
        self.screen._webhooks(self.pops)


class Webhooks:
    """POST pops to queues' ``webhook_url`` from background greenlets, signed."""

    def __init__(
        self,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        size: int = WEBHOOK_POOL,
    ) -> None:
        self.timeout = timeout
        self.env = env
        self.pool = gevent.pool.Pool(size)
        self.stats = {"sent": 0, "failed": 0, "dropped": 0}
        self._secrets: dict[str, str] = {}

    def _secret(self, q: QueueConfig) -> str | None:
        secret = self._secrets.get(q.name)
        if secret is None:
            secret = read_secret(q.webhook_secret_env, q.webhook_secret_file, self.env)
            if secret:
                self._secrets[q.name] = secret
        return secret

    def send(self, q: QueueConfig | None, pop: Mapping[str, Any]) -> Greenlet | None:
        if q is None or not q.webhook_url:
            return None
        if self.pool.full():
            self.stats["dropped"] += 1
            log.warning(
                "webhook of queue %s: %d requests in flight, pop %s of call %s dropped",
                q.name,
                self.pool.size,
                pop.get("stage"),
                pop.get("call"),
            )
            return None
        return self.pool.spawn(self._post, q, _dumps(pop).encode(), pop)

    def _post(self, q: QueueConfig, body: bytes, pop: Mapping[str, Any]) -> None:
        what = f"webhook of queue {q.name} (call {pop.get('call')}, {pop.get('stage')})"
        secret = self._secret(q)
        if not secret:
            self.stats["failed"] += 1
            log.warning("%s not sent: no secret (webhook_secret_env/_file)", what)
            return
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Fsacd-Signature": f"sha256={signature}",
            "X-Fsacd-Stage": str(pop.get("stage", "")),
            "X-Fsacd-Call": var_value(pop.get("call", "")),
        }
        timeout = self.timeout if self.timeout is not None else q.webhook_timeout
        try:
            status, _ = http_request(
                q.webhook_url, timeout=timeout, data=body, headers=headers, max_bytes=64 * 1024
            )
        except HttpFailure as exc:
            self.stats["failed"] += 1
            log.warning("%s failed: %s", what, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - a background send must never crash
            self.stats["failed"] += 1
            log.warning("%s failed: %s", what, type(exc).__name__)
            return
        if status >= 400:
            self.stats["failed"] += 1
            log.warning("%s failed: HTTP %d", what, status)
        else:
            self.stats["sent"] += 1

    def join(self, timeout: float | None = None) -> None:
        """Wait for the requests in flight (tests, shutdown)."""
        self.pool.join(timeout=timeout)


class ScreenPop:
    """Prepare and publish screen pops (module doc). ``cfg`` is the loaded config;
    ``http_timeout`` overrides the CRM and webhook timeouts; ``env`` (default ``os.environ``)
    supplies secrets (CRM token, webhook secrets, history salt)."""

    def __init__(
        self,
        r: Any,
        keys: Keys,
        cfg: Config,
        *,
        http_timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.db = PopStore(r, keys)
        self.keys = keys
        self.cfg = cfg
        self.contacts = Contacts(r, keys)
        self.crm = (
            Crm(
                r,
                keys,
                cfg.crm,
                region=cfg.freeswitch.default_region,
                timeout=http_timeout,
                env=env,
            )
            if cfg.crm is not None
            else None
        )
        self.history = History(r, keys, cfg.history, env=env)
        self.webhooks = Webhooks(timeout=http_timeout, env=env)
        self.clock = time.time

    # --- lookup ----------------------------------------------------------------------------

    def lookup(self, number: Number, hidden: bool) -> tuple[list[dict[str, Any]], int]:
        """Contacts for the caller: the store, then (no match) the CRM. Nothing for hidden,
        withheld or invalid numbers. Returns ``(contacts, total matches)``."""
        if hidden or number.status != "valid" or not number.e164:
            return [], 0
        found, total = self.contacts.lookup(number)
        for c in found:
            c["source"] = "store"
        if found or self.crm is None:
            return found, total
        from_crm = self.crm.lookup(number.e164)
        return from_crm, len(from_crm)

    # --- the integration API ------------------------------------------------------------------

    def prepare(
        self,
        call_id: str,
        queue: str,
        number: Number,
        hidden: bool,
        name: str,
        ivr: dict[str, str] | None = None,
    ) -> None:
        """Look the caller up and keep the pop ready for the offer. Takes at most about the
        CRM timeout; call it again after the call moved (overflow) or new IVR input."""
        started = self.clock()
        try:
            hidden = self._hidden(queue, number, hidden)
            found: tuple[list[dict[str, Any]], int] = ([], 0)
            if not hidden:
                found = self.lookup(number, hidden)
            ref = self.history.ref(number, hidden)
            history = self.history.previous_ref(ref, HISTORY_SHOWN) if ref is not None else []
            prepared = self._build(call_id, queue, number, hidden, name, ivr, found, history)
            agents, answered_by, offered_at, waited = self.db.save_prepared(
                call_id, _dumps(prepared), queue, ref or "", started
            )
            if agents and not answered_by:
                # offered while the lookup was running: the agents got a bare pop; complete it
                w = _float(waited) + max(0.0, self.clock() - _float(offered_at, self.clock()))
                self._publish_full(call_id, prepared, agents.split(","), "offer", w)
        except Exception as exc:  # noqa: BLE001 - a pop must never break a call
            log.warning("screen pop: prepare failed for call %s: %s", call_id, type(exc).__name__)
            log.debug("screen pop: prepare failed", exc_info=True)

    def prepare_in(
        self,
        batch: Batch,
        call_id: str,
        queue: str,
        number: Number,
        hidden: bool,
        name: str,
        ivr: dict[str, str] | None = None,
    ) -> Reply[Prepared] | None:
        """:meth:`prepare` for the call's own greenlet, its reads queued on ``batch`` (sent
        with the call's arrival): the reply is the :class:`Prepared` pop, kept in memory and
        stored with :meth:`save` or with the first offer (:meth:`offered_in`). None with a
        CRM (its lookup may take its timeout: :meth:`prepare` runs beside the call then)."""
        if self.crm is not None:
            return None
        started = self.clock()
        hidden = self._hidden(queue, number, hidden)
        start = len(batch)
        found = None
        if not hidden and number.status == "valid" and number.e164:
            found = self.contacts.find_in(batch, number.e164)
        ref = self.history.ref(number, hidden)
        recent = self.history.db.recent_in(batch, ref, HISTORY_SHOWN) if ref is not None else None
        agents = self.db.agents_in(batch, call_id)

        def done(_raw: list[Any]) -> Prepared:
            try:
                contacts = found.get() if found is not None else ([], 0)
                for c in contacts[0]:
                    c["source"] = "store"
                history = self.history.decode(recent.get()) if recent is not None else []
                data = self._build(call_id, queue, number, hidden, name, ivr, contacts, history)
                old = [a for a in agents.get().split(",") if a]
            except Exception as exc:  # noqa: BLE001 - a pop must never break a call
                log.warning(
                    "screen pop: lookup failed for call %s: %s", call_id, type(exc).__name__
                )
                data = self._build(call_id, queue, number, hidden, name, ivr, ([], 0), [])
                old = []
            return Prepared(call_id, data, queue, ref or "", started, old)

        return batch.reply(start, done, errors=True)

    def save(self, prepared: Prepared) -> None:
        """Store a prepared pop no offer came with (the caller waits)."""
        try:
            self.db.save(prepared.call_id, _dumps(prepared.data), prepared.queue, prepared.ref,
                         prepared.started)  # fmt: skip
            prepared.saved = True
        except Exception as exc:  # noqa: BLE001
            log.warning("screen pop: save failed for call %s: %s", prepared.call_id,
                        type(exc).__name__)  # fmt: skip

    def _hidden(self, queue: str, number: Number, hidden: bool) -> bool:
        hidden = bool(hidden) or number.status == "withheld"
        return hidden or anonymous_queue(self.cfg, queue)

    def _build(
        self,
        call_id: str,
        queue: str,
        number: Number,
        hidden: bool,
        name: str,
        ivr: dict[str, str] | None,
        found: tuple[list[dict[str, Any]], int],
        history: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The prepared pop of a caller from the lookup's results."""
        prepared: dict[str, Any] = {"call": call_id, "queue": queue, "hidden": hidden}
        if hidden:
            prepared["match"] = "hidden"
        else:
            contacts, total = found
            if number.e164:
                prepared["number"] = number.e164
            if name:
                prepared["caller_name"] = name[:80]
            prepared["contacts"] = contacts
            prepared["matches"] = total
            if contacts:
                prepared["match"] = "found"
            else:
                prepared["match"] = "none" if number.e164 else "no-number"
                new: dict[str, Any] = {}
                if name:
                    new["name"] = name[:80]
                if number.e164:
                    new["numbers"] = [{"label": "phone", "number": number.e164}]
                prepared["new_contact"] = new
        prepared["ivr"] = clean_ivr(ivr)
        prepared["history"] = history
        return prepared

    def offered_in(
        self,
        batch: Batch,
        prepared: Prepared,
        agent_ids: list[str],
        waited: float,
        queue: str,
    ) -> OfferedPop:
        """:meth:`offered` for a pop held in memory (:meth:`prepare_in`): no read, the writes
        (the prepared pop if not stored yet, the pops, ``withdrawn`` for agents of an earlier
        offer) queued on ``batch``. Call ``sent()`` of the result once the batch went out and
        the offer stands (the webhooks go then); its ``headers`` are the SIP header leg
        variables per agent."""
        agents = [a for a in dict.fromkeys(agent_ids) if ID_RE.fullmatch(a or "")]
        try:
            start = len(batch)
            pipe = batch.pipe
            if not prepared.saved:
                self.db.save(prepared.call_id, _dumps(prepared.data), prepared.queue,
                             prepared.ref, prepared.started, pipe=pipe)  # fmt: skip
            current = self._current(prepared.call_id, prepared.data, queue)
            pops = self._publish_full(prepared.call_id, current, agents, "offer", waited, pipe)
            for old in prepared.agents:
                if old not in agents:
                    msg = self._notice(prepared.call_id, current, old, "withdrawn")
                    msg["reason"] = "offer-ended"
                    self._publish(pipe, msg)
            self.db.offered(prepared.call_id, agents, self.clock(), waited, queue, pipe=pipe)
            batch.reply(start, self._quiet_writes(prepared.call_id), errors=True)
            headers = {p["agent"]: sip_headers(p) for p in pops}
            return OfferedPop(self, prepared, agents, headers, pops)
        except Exception as exc:  # noqa: BLE001
            log.warning("screen pop: offer failed for call %s: %s", prepared.call_id,
                        type(exc).__name__)  # fmt: skip
            return OfferedPop(self, prepared, agents, {a: {} for a in agents}, [])

    @staticmethod
    def _quiet_writes(call_id: str) -> Callable[[list[Any]], None]:
        def check(raw: list[Any]) -> None:
            errors = [x for x in raw if isinstance(x, Exception)]
            if errors:
                log.warning("screen pop: offer failed for call %s: %s", call_id,
                            type(errors[0]).__name__)  # fmt: skip

        return check

    def offered(
        self,
        call_id: str,
        agent_ids: list[str],
        waited: float,
        also: Callable[[Any], object] | None = None,
    ) -> dict[str, dict[str, str]]:
        """Publish the pop (stage ``offer``) to each agent; returns the SIP header leg
        variables per agent (``{}`` for an agent on failure). ``also(pipe)`` queues the
        caller's own writes in the same round trip (``also(None)``, written at once, when
        the pop fails or there is none)."""
        agents = [a for a in dict.fromkeys(agent_ids) if ID_RE.fullmatch(a or "")]
        if not agents:
            if also is not None:
                also(None)
            return {}
        try:
            prepared, h = self._load(call_id)
            now = self.clock()
            with self.db.batch() as pipe:
                pops = self._publish_full(call_id, prepared, agents, "offer", waited, pipe=pipe)
                for old in (h.get("agents") or "").split(","):
                    if old and old not in agents:
                        msg = self._notice(call_id, prepared, old, "withdrawn")
                        msg["reason"] = "offer-ended"
                        self._publish(pipe, msg)
                self.db.offered(call_id, agents, now, waited, prepared["queue"], pipe=pipe)
                if also is not None:
                    also(pipe)
            also = None  # sent with the pop
            self._webhooks(pops)
            return {p["agent"]: sip_headers(p) for p in pops}
        except Exception as exc:  # noqa: BLE001
            log.warning("screen pop: offer failed for call %s: %s", call_id, type(exc).__name__)
            log.debug("screen pop: offer failed", exc_info=True)
            if also is not None:
                also(None)
            return {a: {} for a in agents}

    def reads(self, call_id: str) -> PopReads:
        """The reads :meth:`answered` and :meth:`finished` need, to send along with the
        call's own step (``also=`` of ``Store.answered`` / ``Store.finish_call``)."""
        return self.db.reads(call_id)

    def answered(self, call_id: str, agent_id: str, loaded: PopReads | None = None) -> None:
        """Publish the pop again (stage ``answered``) to the agent who answered; the other
        agents of the offer get ``withdrawn``. ``loaded``: :meth:`reads` already sent."""
        try:
            prepared, h = self._load(call_id, loaded)
            now = self.clock()
            waited = _float(h.get("waited")) + max(0.0, now - _float(h.get("offered_at"), now))
            with self.db.batch() as pipe:
                pops = self._publish_full(
                    call_id, prepared, [agent_id], "answered", waited, pipe=pipe
                )
                for other in (h.get("agents") or "").split(","):
                    if other and other != agent_id:
                        msg = self._notice(call_id, prepared, other, "withdrawn")
                        msg["reason"] = "answered-elsewhere"
                        self._publish(pipe, msg)
                self.db.answered(call_id, agent_id, pipe=pipe)
            self._webhooks(pops)
        except Exception as exc:  # noqa: BLE001
            log.warning("screen pop: answer failed for call %s: %s", call_id, type(exc).__name__)
            log.debug("screen pop: answer failed", exc_info=True)

    def withdrawn(self, call_id: str, agent_ids: list[str], reason: str = "offer-ended") -> None:
        """Optional: tell agents whose offer ended without an answer to close the pop.
        (:meth:`offered` and :meth:`finished` also do this for agents of an earlier offer.)"""
        try:
            prepared, h = self._load(call_id)
            current = [a for a in (h.get("agents") or "").split(",") if a]
            with self.db.batch() as pipe:
                for a in agent_ids:
                    if ID_RE.fullmatch(a or ""):
                        msg = self._notice(call_id, prepared, a, "withdrawn")
                        msg["reason"] = reason
                        self._publish(pipe, msg)
                left = [a for a in current if a not in agent_ids]
                if h:
                    self.db.set_agents(call_id, left, pipe=pipe)
        except Exception as exc:  # noqa: BLE001
            log.warning("screen pop: withdraw failed for call %s: %s", call_id, type(exc).__name__)

    def finished(
        self,
        call_id: str,
        agent_id: str | None,
        outcome: str,
        loaded: PopReads | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> None:
        """Record the call in the history, tell the agents, drop the prepared pop.
        ``loaded``: :meth:`reads` already sent; ``also(pipe)`` queues the caller's own writes
        in the same round trip (``also(None)``, written at once, when the pop fails)."""
        try:
            prepared, h = self._load(call_id, loaded)
            ref = h.get("hist")
            if prepared.get("hidden") and ref and not ref.startswith("h:"):
                # prepared as an ordinary call, ended in an anonymous queue: hashed history
                e164 = prepared.get("number_for_history")
                ref = self.history.ref(Number("", e164, "valid", "ok"), True) if e164 else None
            with self.db.batch() as pipe:
                for other in (h.get("agents") or "").split(","):
                    if other and other != agent_id:
                        msg = self._notice(call_id, prepared, other, "withdrawn")
                        msg["reason"] = "call-ended"
                        self._publish(pipe, msg)
                if agent_id and ID_RE.fullmatch(agent_id):
                    msg = self._notice(call_id, prepared, agent_id, "ended")
                    msg["outcome"] = outcome
                    self._publish(pipe, msg)
                if ref:
                    started = _float(h.get("started"), self.clock())
                    self.history.record_ref(
                        ref, call_id, prepared["queue"], agent_id, outcome, started, pipe=pipe
                    )
                self.db.drop(call_id, pipe=pipe)
                if also is not None:
                    also(pipe)
            also = None  # sent with the pop
        except Exception as exc:  # noqa: BLE001
            log.warning("screen pop: finish failed for call %s: %s", call_id, type(exc).__name__)
            log.debug("screen pop: finish failed", exc_info=True)
        if also is not None:
            also(None)

    # --- plumbing -----------------------------------------------------------------------------

    def get_prepared(self, call_id: str) -> dict[str, Any] | None:
        """The prepared pop of a call as stored (tests, debugging)."""
        data = self.db.prepared(call_id)
        return json.loads(data) if data else None

    def _load(
        self, call_id: str, loaded: PopReads | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The prepared pop (or a bare one) with the call's current queue, and the pop hash
        (from ``loaded`` when those reads came back, else read now)."""
        if loaded is not None and loaded.call_id == call_id and loaded.result is not None:
            h, current_queue = loaded.result
        else:
            h, current_queue = self.db.load(call_id)
        prepared: dict[str, Any]
        try:
            prepared = json.loads(h["data"]) if h.get("data") else {}
        except ValueError:
            prepared = {}
        queue = current_queue or h.get("queue") or prepared.get("queue", "")
        return self._current(call_id, prepared, queue), h

    def _current(self, call_id: str, prepared: dict[str, Any], queue: str) -> dict[str, Any]:
        """The prepared pop as shown in ``queue``, the call's current queue (a bare one when
        there is none: offered before prepare finished, or without it)."""
        if not prepared:
            # offered before prepare finished (or without it): no lookup data, no number
            prepared = {"call": call_id, "hidden": False, "match": "pending"}
        prepared = {**prepared, "queue": queue or prepared.get("queue", "")}
        if not prepared.get("hidden") and anonymous_queue(self.cfg, prepared["queue"]):
            # moved (overflow) into a queue whose agents must not see callers
            prepared = {**_as_hidden(prepared), "number_for_history": prepared.get("number")}
        return prepared

    def _publish_full(
        self,
        call_id: str,
        prepared: Mapping[str, Any],
        agents: list[str],
        stage: str,
        waited: float,
        pipe: Pipe = None,
    ) -> list[dict[str, Any]]:
        """Publish the pop at ``stage`` to each agent: queued on ``pipe``, or sent now (and
        the webhooks with it)."""
        if pipe is None:
            with self.db.batch() as p:
                pops = self._publish_full(call_id, prepared, agents, stage, waited, pipe=p)
            self._webhooks(pops)
            return pops
        qcfg = self.cfg.queues.get(prepared.get("queue", ""))
        fields = qcfg.screen_pop_fields if qcfg is not None else ()
        base = shape(prepared, fields, qcfg)
        base["stage"] = stage
        base["ts"] = round(self.clock(), 3)
        if "waited" in fields:
            base["waited"] = round(max(0.0, float(waited)), 1)
        pops = []
        for agent in agents:
            pop = {**base, "agent": agent}
            self._publish(pipe, pop)
            pops.append(pop)
        return pops

    def _notice(self, call_id: str, prepared: Mapping[str, Any], agent: str, stage: str) -> dict:
        return {
            "type": "pop",
            "stage": stage,
            "ts": round(self.clock(), 3),
            "call": call_id,
            "queue": prepared.get("queue", ""),
            "agent": agent,
        }

    def _publish(self, pipe: Pipe, pop: Mapping[str, Any]) -> None:
        self.db.send_pop(pop["agent"], pop["stage"], pop["call"], _dumps(pop), pipe=pipe)

    def _webhooks(self, pops: list[dict[str, Any]]) -> None:
        for pop in pops:
            self.webhooks.send(self.cfg.queues.get(pop.get("queue", "")), pop)
