"""FreeSWITCH's inbound event socket, kept connected: reconnects with backoff.

fsacd asks FreeSWITCH directly whenever Redis alone cannot tell the truth: after a
controller died, is its caller's or agent's channel still there (``uuid_exists``)? Calls that
act on another channel (``uuid_kill``, ``uuid_record``) go through here too.
"""

from __future__ import annotations

import logging
import time

import gevent
from gevent.lock import Semaphore

from fsacd.esl.session import ESLError, InboundClient, report_connect_error

log = logging.getLogger(__name__)


class FreeSwitchClient:
    """A reconnecting :class:`InboundClient`. ``api`` returns None while not connected."""

    def __init__(
        self,
        address: tuple[str, int],
        password: str | None,
        *,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.address = address
        self.password = password or ""
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._client: InboundClient | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._backoff = 0.5
        self._next_try = 0.0
        self._core_uuid: str | None = None
        # one connect at a time: the keeper and an api() call must not both connect (the
        # second connection would replace the first without closing it)
        self._connecting = Semaphore()

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._keep_connected)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _connect_once(self) -> bool:
        """Connect unless connected (closing what is left of a dead connection)."""
        with self._connecting:
            if self.connected:
                return True
            if self._client is not None:
                self._client.close()
                self._client = None
            return self._connect_locked()

    def _connect_locked(self) -> bool:
        client = InboundClient(
            *self.address, self.password, timeout=self.timeout, command_timeout=self.timeout
        )
        try:
            client.connect()
        except ESLError as exc:
            report_connect_error(log, "", self.address, exc)
            client.close()
            return False
        self._client = client
        self._backoff = 0.5
        log.info("connected to FreeSWITCH inbound %s:%d", *self.address)
        return True

    def _keep_connected(self) -> None:
        while True:
            if not self.connected:
                if not self._connect_once():
                    gevent.sleep(self._backoff)
                    self._backoff = min(self.max_backoff, self._backoff * 2)
                    continue
            gevent.sleep(1.0)

    def api(self, cmd: str) -> str | None:
        """Run ``api <cmd>``; None when FreeSWITCH cannot be reached right now."""
        if not self.connected:
            if time.time() < self._next_try:
                return None
            self._next_try = time.time() + self._backoff
            if not self._connect_once():
                return None
        assert self._client is not None
        try:
            return self._client.api(cmd)
        except ESLError as exc:
            log.warning("FreeSWITCH api %s failed: %s", cmd.split()[0], exc)
            return None

    def core_uuid(self) -> str | None:
        """This FreeSWITCH's Core-UUID (``global_getvar core_uuid``), once known."""
        if self._core_uuid is None:
            reply = self.api("global_getvar core_uuid")
            if reply and reply.strip() and not reply.startswith("-ERR"):
                self._core_uuid = reply.strip()
        return self._core_uuid

    def channel_exists(self, uuid: str) -> bool | None:
        """True/False from ``uuid_exists``; None when FreeSWITCH did not answer."""
        if not uuid or not all(c.isalnum() or c == "-" for c in uuid):
            return False
        reply = self.api(f"uuid_exists {uuid}")
        if reply is None:
            return None
        reply = reply.strip()
        if reply == "true":
            return True
        if reply == "false":
            return False
        return None
