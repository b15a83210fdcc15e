"""Event-driven matching of waiting calls to free agents, and the hand-off of matches.

Matching runs the moment something can change its answer: a call enters a queue, an agent
becomes available (from any process: the wake channel), a wrap-up or delay ends (timers), plus
a slow safety sweep. The match itself is atomic in Redis (:meth:`Store.reserve`); this module
only decides when to try and where the resulting offer goes: to the call's greenlet when this
controller owns the call, else to the owning controller over its pub/sub channel. An offer
nobody takes is released at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
from gevent.event import Event as GEvent
from gevent.lock import Semaphore

from fsacd.acd.outage import note_failure
from fsacd.core import strategies
from fsacd.state.store import MatchSpec

if TYPE_CHECKING:
    from fsacd.config import Config
    from fsacd.state.store import Arrival, Offer, Store

log = logging.getLogger(__name__)
A = TypeVar("A", bound="Arrival")

#: Calls one reservation serves at most (one round trip for a burst of arrivals).
MATCH_BATCH = 64
#: How long a caller's own match waits for one already running for its queue (seconds).
MATCH_NOW_WAIT = 0.5
#: Backoff between pub/sub reconnection attempts while Redis is away (seconds).
PUBSUB_RETRY_MIN = 0.2
PUBSUB_RETRY_MAX = 2.0


class Matcher:
    """One per controller. ``deliver_local(offer) -> bool`` hands an offer to a local call."""

    def __init__(
        self,
        store: Store,
        cfg: Config,
        controller_id: str,
        deliver_local: Callable[[Offer], bool],
        *,
        sweep_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.controller_id = controller_id
        self.deliver_local = deliver_local
        self.sweep_interval = sweep_interval
        self._pending: set[str] = set()
        #: one match at a time per queue in this process: a caller's own match (match_now)
        #: waits for the loop's, so an offer made for it is in its inbox when it returns
        self._queue_locks: dict[str, Semaphore] = {}
        #: passes begun per queue (match_now skips its own when a later one has run)
        self._passes: dict[str, int] = {}
        self._signal = GEvent()
        self._greenlets: list[gevent.Greenlet] = []
        self._pubsub = None
        self.matches = 0
        self.on_reload: Callable[[], object] | None = None
        self.on_revoke: Callable[[str], object] | None = None
        self.on_moved: Callable[[str], object] | None = None
        self.on_dial: Callable[[str], object] | None = None
        #: takes over a call whose socket is gone but which lives on in Redis (a callback,
        #: fsacd/acd/callback.py): ``claim_orphan(call_id) -> bool``; True keeps the call queued
        self.claim_orphan: Callable[[str], bool] | None = None
        #: agents FreeSWITCH knows are busy elsewhere (fsacd/acd/presence.py), if watched
        self.busy_agents: Callable[[], set[str]] | None = None
        #: True when those are presence's Redis sets (ext_busy, unregistered, dnd): the match
        #: script reads them itself, no round trip of its own
        self.busy_in_redis = False
        #: the ``random`` strategy's generator (None: the random module's; tests seed one)
        self.rng: random.Random | None = None

    # --- control ---------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._pubsub = self.store.subscribe(self._channels())
        except Exception as exc:  # noqa: BLE001 - Redis away at start: the loop retries
            log.warning("pub/sub not subscribed yet (%s); retrying", type(exc).__name__)
            self._pubsub = None
        self._greenlets = [
            gevent.spawn(self._match_loop),
            gevent.spawn(self._listen_loop),
            gevent.spawn(self._sweep_loop),
        ]
        self.request(self.cfg.queues)

    def _channels(self) -> list[str]:
        k = self.store.keys
        return [k.wake_channel(), k.ctl_channel(self.controller_id), k.control_channel()]

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=True, timeout=2)
        self._greenlets = []
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # noqa: BLE001
                pass
            self._pubsub = None

    def request(self, queues: Iterable[str]) -> None:
        """Ask for matching in these queues as soon as possible."""
        added = False
        for q in queues:
            if q in self.cfg.queues:
                self._pending.add(q)
                added = True
        if added:
            self._signal.set()

    def match_now(self, queue: str) -> None:
        """Match ``queue`` in the calling greenlet (a call that just arrived: its offer is in
        its inbox when this returns, if an agent is free). Errors are logged; the match
        loop and the sweep try again."""
        if queue not in self.cfg.queues:
            return
        since = self._passes.get(queue, 0)
        try:
            self._match_queue(queue, wait=MATCH_NOW_WAIT, since=since)
        except Exception:  # noqa: BLE001 - Redis trouble: the loop and the sweep retry
            note_failure(f"matching {queue}", log)  # the match loop retries
            self.request([queue])

    def arrive(self, queue: str, run: Callable[[MatchSpec | None], A]) -> A:
        """A caller enters ``queue`` and the queue is matched in the same round trip:
        ``run(spec)`` sends the call's arrival (``Store.arrive``) with the matching pass
        ``spec`` and returns the Arrival; its offers are delivered (the caller's own is in
        its inbox when this returns). While this process matches the queue already (or a
        ``holding`` block runs) the arrival goes alone (``run(None)``) and the caller's
        match waits for the running one, as :meth:`match_now`."""
        if queue not in self.cfg.queues:
            return run(None)
        lock = self._queue_locks.setdefault(queue, Semaphore(1))
        if not lock.acquire(blocking=False):
            arrival = run(None)
            self.match_now(queue)
            return arrival
        try:
            self._passes[queue] = self._passes.get(queue, 0) + 1
            arrival = run(self._spec(queue))
            try:
                if self._serve(queue, arrival.offers):
                    self.request([queue])  # more to serve: the match loop goes on, not the caller
            except Exception:  # noqa: BLE001 - Redis trouble: the loop and the sweep retry
                log.exception("delivering the offers of %s failed; the match loop retries", queue)
                self.request([queue])
        finally:
            lock.release()
        return arrival

    @contextmanager
    def holding(self, queue: str, timeout: float = MATCH_NOW_WAIT) -> Iterator[None]:
        """No matching of ``queue`` in this process inside the block (a call being set up
        in two steps, such as a supervisor's dial request, must not be offered between
        them); then the queue is matched."""
        lock = self._queue_locks.setdefault(queue, Semaphore(1))
        got = lock.acquire(timeout=timeout)
        try:
            yield
        finally:
            if got:
                lock.release()
            self.request([queue])

    def request_later(self, delay: float, queues: Iterable[str] | None = None) -> None:
        qs = list(queues) if queues is not None else list(self.cfg.queues)
        gevent.spawn_later(max(0.0, delay) + 0.01, self._free_and_request, qs)

    # --- loops -----------------------------------------------------------------------------

    def _free_and_request(self, queues: list[str]) -> None:
        try:
            woken = self.store.free_due_agents()
        except Exception:  # noqa: BLE001
            note_failure("freeing agents after wrap-up", log)
            woken = []
        self.request([*queues, *woken])

    def _match_loop(self) -> None:
        while True:
            self._signal.wait(timeout=self.sweep_interval)
            self._signal.clear()
            pending, self._pending = self._pending, set()
            if not pending:
                continue
            try:
                for queue in self._by_head(pending):
                    self._match_queue(queue)
            except Exception:  # noqa: BLE001 - Redis trouble: retry on the next signal/sweep
                note_failure("matching", log)  # retried on the next signal
                self._pending |= pending
                gevent.sleep(0.5)

    def _by_head(self, queues: set[str]) -> list[str]:
        """Queues ordered by their head call (priority, then arrival): fair across queues."""
        scored = self.store.head_scores(queues)  # one round trip for all of them
        return sorted(scored, key=lambda q: (scored[q], q))

    def _match_queue(self, queue: str, wait: float = 5.0, since: int | None = None) -> None:
        """One pass over ``queue`` under its lock. ``since``: the caller's count of passes
        begun; if another pass began after it and has ended (we hold the lock), that pass
        already saw what the caller added, so none is run again."""
        lock = self._queue_locks.setdefault(queue, Semaphore(1))
        if not lock.acquire(timeout=wait):
            # another greenlet has been matching this queue for long (Redis slow): again later
            self.request_later(0.5, [queue])
            return
        try:
            if since is not None and self._passes.get(queue, 0) > since:
                return
            self._passes[queue] = self._passes.get(queue, 0) + 1
            self._match_queue_locked(queue)
        finally:
            lock.release()

    def _match_queue_locked(self, queue: str) -> None:
        """Serve as many waiting calls as there are free agents: each round is one atomic
        script (``Store.match``: the queue's head calls, each given the next free agent of
        the strategy's order from the queue's free index), up to ``MATCH_BATCH`` calls."""
        while True:
            spec = self._spec(queue)
            offers = self.store.match(
                queue, spec.strategy, spec.calls, busy=spec.busy,
                skip_busy_sets=spec.skip_busy_sets, rng=spec.rng,
            )  # fmt: skip
            if not self._serve(queue, offers):
                return

    def _spec(self, queue: str) -> MatchSpec:
        """How a pass of ``queue`` runs now (strategy, batch, agents busy elsewhere)."""
        qcfg = self.cfg.queues[queue]
        busy: frozenset[str] = frozenset()
        in_redis = False
        if qcfg.skip_busy_agents and self.busy_in_redis:
            in_redis = True  # presence's sets, read by the script itself
        elif qcfg.skip_busy_agents and self.busy_agents is not None:
            busy = frozenset(self.busy_agents())
        return MatchSpec(qcfg.strategy, MATCH_BATCH, busy, in_redis, self.rng)

    def _serve(self, queue: str, offers: list[Any]) -> bool:
        """Deliver a pass's offers; True when another pass may find more to serve."""
        if not offers:
            return False
        self.matches += len(offers)
        undelivered = [o for o in offers if not self._deliver(o)]
        if undelivered:
            self.request_later(0.5, [queue])  # no hot loop on a call nobody takes
            return False
        ring_all = strategies.wants_all(self.cfg.queues[queue].strategy)
        return ring_all or len(offers) >= MATCH_BATCH  # else out of calls or of free agents

    def _deliver(self, offer: Offer) -> bool:
        """Hand the offer to the call's owner. False (offer released) if nobody took it."""
        owner = offer.owner
        if owner == self.controller_id or not owner:
            if self.deliver_local(offer):
                return True
            log.info("offer %s: call %s has no socket here", offer.offer_id, offer.call_id)
            self._orphan(offer)
            return False
        if self.store.hand_off(offer):
            return True
        if owner in self.store.alive([owner]):
            log.warning("controller %s did not take offer %s: released", owner, offer.offer_id)
            self.store.cancel_offer(offer)
        else:
            log.warning("controller %s is dead: call %s leaves the queue", owner, offer.call_id)
            self._orphan(offer)
        return False

    def _orphan(self, offer: Offer) -> None:
        """The call's socket is nowhere: free the agents, take the call out of its queue (if
        the caller comes back to a controller it re-enters with its old place)."""
        self.store.cancel_offer(offer)
        if self.claim_orphan is not None and self.claim_orphan(offer.call_id):
            return
        self.store.finish_call(offer.call_id, "controller-lost", 0.0)

    def _listen_loop(self) -> None:
        """Wake-ups, hand-offs and control messages. Survives Redis outages of any length:
        one warning when the connection is lost, retries with backoff, one line when it is
        back (then every queue is matched again: wake-ups may have been missed)."""
        wake = self.store.keys.wake_channel()
        lost_at: float | None = None
        backoff = PUBSUB_RETRY_MIN
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = self.store.subscribe(self._channels())
                    if lost_at is not None:
                        log.warning(
                            "pub/sub back after %.1f s; matching every queue", time.time() - lost_at
                        )
                        lost_at = None
                    backoff = PUBSUB_RETRY_MIN
                    self.request(self.cfg.queues)
                msg = self._pubsub.get_message(timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - Redis away: resubscribe with backoff
                if lost_at is None:
                    lost_at = time.time()
                    log.warning("pub/sub connection lost (%s); resubscribing", type(exc).__name__)
                self._drop_pubsub()
                gevent.sleep(backoff)
                backoff = min(PUBSUB_RETRY_MAX, backoff * 2)
                continue
            if not msg or msg.get("type") != "message":
                continue
            channel, data = msg["channel"], msg["data"]
            if channel == wake:
                self.request([data] if data else self.cfg.queues)
            elif channel == self.store.keys.control_channel():
                if data == "reload" and self.on_reload is not None:
                    self.on_reload()
                elif data.startswith("revoke:") and self.on_revoke is not None:
                    self.on_revoke(data[len("revoke:") :])
                elif data.startswith("dial:") and self.on_dial is not None:
                    self.on_dial(data[len("dial:") :])
                elif data.startswith("moved:") and self.on_moved is not None:
                    self.on_moved(data[len("moved:") :])
            else:
                self._on_handoff(data)

    def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._pubsub = None

    def _on_handoff(self, data: str) -> None:
        from fsacd.state.store import Offer

        try:
            offer = Offer.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed offer hand-off")
            return
        if not self.deliver_local(offer):
            self.store.cancel_offer(offer)

    def _sweep_loop(self) -> None:
        """Safety net and timer: frees agents whose wrap-up or delay is over (at the moment the
        earliest one is due, or every ``sweep_interval``) and retries every queue."""
        while True:
            delay = self.sweep_interval
            try:
                due = self.store.next_due()
                if due is not None:
                    delay = min(delay, max(0.01, due - time.time() + 0.005))
            except Exception:  # noqa: BLE001
                note_failure("reading the next due time", log)
            gevent.sleep(delay)
            try:
                woken = self.store.free_due_agents()
                self.request([*woken, *self.cfg.queues])
            except Exception:  # noqa: BLE001
                note_failure("the sweep", log)
