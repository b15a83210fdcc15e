"""One fsacd controller process: the outbound socket server, the matcher and their timers."""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import TYPE_CHECKING

import gevent
import gevent.event
from gevent.queue import Queue

from fsacd.callflow import CallFlow
from fsacd.esl.server import OutboundServer
from fsacd.esl.session import OutboundSession
from fsacd.matcher import Matcher
from fsacd.redisconn import connect
from fsacd.store import Offer, Store

if TYPE_CHECKING:
    import redis

    from fsacd.config import Config

log = logging.getLogger(__name__)

#: Seconds a controller's lease lives without renewal (renewed every third of it).
LEASE_SECONDS = 15


def default_controller_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Controller:
    """Ties config, Redis, the outbound server and the matcher together."""

    def __init__(self, cfg: Config, r: redis.Redis | None = None) -> None:
        self.cfg = cfg
        self.controller_id = cfg.server.controller_id or default_controller_id()
        self.r = r if r is not None else connect(cfg.redis.url, cfg.redis.data_dir)
        self.store = Store(self.r, prefix=cfg.redis.prefix, controller_id=self.controller_id)
        self._calls: dict[str, Queue] = {}
        self.matcher = Matcher(self.store, cfg, self.controller_id, self.deliver_offer)
        self.server = OutboundServer(
            cfg.server.listen_address,
            self.handle_call,
            max_calls=cfg.server.max_calls,
            command_timeout=cfg.server.command_timeout,
        )
        self._lease: gevent.Greenlet | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.store.sync_queues(self.cfg.queues)
        self._renew_lease()
        self._lease = gevent.spawn(self._lease_loop)
        self.matcher.start()
        self.server.start()
        host, port = self.server.address
        log.info("fsacd controller %s listening on %s:%d", self.controller_id, host, port)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout=timeout)
        self.matcher.stop()
        if self._lease is not None:
            self._lease.kill(block=False)
        try:
            self.r.delete(self.store.keys.controller(self.controller_id))
        except Exception:  # noqa: BLE001
            pass

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    # --- calls -------------------------------------------------------------------------------

    def handle_call(self, session: OutboundSession) -> None:
        CallFlow(session, self).run()

    def register_call(self, call_id: str, inbox: Queue) -> None:
        self._calls[call_id] = inbox

    def unregister_call(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def deliver_offer(self, offer: Offer) -> bool:
        inbox = self._calls.get(offer.call_id)
        if inbox is None:
            return False
        inbox.put(("offer", offer))
        return True

    def wake_later(self, delay: float) -> None:
        self.matcher.request_later(delay)

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # --- lease -------------------------------------------------------------------------------

    def _renew_lease(self) -> None:
        self.r.set(self.store.keys.controller(self.controller_id), "alive", ex=LEASE_SECONDS)

    def _lease_loop(self) -> None:
        while True:
            gevent.sleep(LEASE_SECONDS / 3)
            try:
                self._renew_lease()
            except Exception:  # noqa: BLE001
                log.exception("could not renew the controller lease")


def run(cfg: Config) -> None:
    """``fsacd serve``: run until SIGTERM/SIGINT, then stop accepting and let calls end."""
    ctl = Controller(cfg)
    ctl.start()
    stopping = gevent.event.Event()

    def _stop(*_: object) -> None:
        log.info("stopping: no new calls; waiting for %d live call(s)", ctl.active_calls)
        stopping.set()

    gevent.signal_handler(signal.SIGTERM, _stop)
    gevent.signal_handler(signal.SIGINT, _stop)
    stopping.wait()
    ctl.stop(timeout=cfg.server.drain_timeout)
    log.info("stopped")
