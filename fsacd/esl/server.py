"""The outbound-socket server: FreeSWITCH connects once per call, one greenlet per call."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable, Mapping

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

from .guard import RefusalLog, SourceGuard, peer_address
from .session import ESLDisconnected, ESLError, OutboundSession, _safe_tb

log = logging.getLogger("fsacd.esl.server")


#: Accept queue of the outbound port (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096


#: SO_LINGER on, 0 s: a refused connection is reset, leaving no TIME_WAIT socket behind.
_RESET = struct.pack("ii", 1, 0)


class _Listener(StreamServer):
    """A StreamServer that asks ``admit(address)`` before a greenlet is spawned."""

    def __init__(self, *args, admit: Callable[[object], str | None], **kw) -> None:
        super().__init__(*args, **kw)
        self._admit = admit

    def do_handle(self, sock, address) -> None:  # type: ignore[override]
        ticket = self._admit(address)
        if ticket is None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            except OSError:
                pass
            sock.close()
            return
        super().do_handle(sock, address, ticket)


class OutboundServer:
    """Accepts FreeSWITCH's outbound connections and runs ``handler(session)`` for each.

    A handler that raises is logged (exception type, and for anything but an ESL error its
    traceback; never the message or call data) and its socket closed; other calls are not
    affected. Connections beyond
    ``max_calls`` are closed at once. With a ``guard`` (listening beyond loopback) each peer
    is checked when accepted, before anything is read (:mod:`fsacd.esl.guard`); refusals are
    logged once per source and interval and counted in :attr:`refused`.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        handler: Callable[[OutboundSession], None],
        *,
        max_calls: int = 1000,
        command_timeout: float = 10.0,
        guard: SourceGuard | None = None,
    ) -> None:
        self.handler = handler
        self.guard = guard
        self.refusals = guard.log if guard is not None else RefusalLog()
        self.max_calls = max_calls
        self.command_timeout = command_timeout
        self._active = 0
        self._closed = False
        # a pool (unbounded: max_calls is enforced in _handle) lets stop() end running calls
        # FreeSWITCH opens a socket per call, hundreds in a burst: a short accept queue
        # overflows, the kernel drops the SYNs and FreeSWITCH's connect only retries after 1,
        # 3, 7 s (TCP's backoff), so callers wait seconds before fsacd even sees them
        self._server = _Listener(
            listen, self._handle, spawn=Pool(), backlog=LISTEN_BACKLOG, admit=self._admit
        )

    def _admit(self, address: object) -> str | None:
        return "" if self.guard is None else self.guard.admit(address)

    @property
    def refused(self) -> Mapping[str, int]:
        """Connections refused since start, per reason (``not-allowed``, ``source-limit``,
        ``source-rate``, ``max-calls``)."""
        return self.refusals.totals

    @property
    def active_calls(self) -> int:
        """Connections whose handler is running."""
        return self._active

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when port 0 was asked for)."""
        sock = getattr(self._server, "socket", None)
        if sock is None:
            return self._server.address
        host, port = sock.getsockname()[:2]
        return host, port

    @property
    def serving(self) -> bool:
        """True between start and stop."""
        return bool(self._server.started)

    def start(self) -> None:
        """Bind and start accepting in the background."""
        self._server.start()
        log.info("outbound server listening on %s:%d", *self.address)

    def serve_forever(self) -> None:
        """Start (if needed) and block until :meth:`stop`."""
        self._server.serve_forever()

    def stop_accepting(self) -> None:
        """Close the listening socket (a new connection is refused, so FreeSWITCH's
        ``socket host1|host2`` tries the next controller); running calls go on."""
        if not self._closed:
            self._closed = True
            self._server.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting; wait up to ``timeout`` for running calls, then kill them."""
        if not self._closed:
            self._closed = True
            self._server.stop(timeout=timeout)
            return
        pool = getattr(self._server, "pool", None)
        if pool is not None:
            pool.join(timeout=timeout)
            pool.kill(block=True, timeout=1)

    def _handle(self, sock, address, ticket: str = "") -> None:
        if self._active >= self.max_calls:
            ip = peer_address(address)
            self.refusals.refused(str(ip) if ip is not None else "?", "max-calls")
            if ticket and self.guard is not None:
                self.guard.release(ticket)
            sock.close()
            return
        self._active += 1
        session = None
        try:
            session = OutboundSession(sock, address, command_timeout=self.command_timeout)
            self.handler(session)
        except gevent.GreenletExit:
            log.info("call %s: stopped", session.uuid if session else None)
            raise
        except ESLDisconnected:
            log.info("call %s: connection lost", session.uuid if session else None)
        except ESLError as exc:
            uid = session.uuid if session else None
            log.warning("call %s: handler stopped by %s", uid, type(exc).__name__)
        except Exception as exc:
            uid = session.uuid if session else None
            log.error("call %s: handler raised %s\n%s", uid, type(exc).__name__, _safe_tb(exc))
        finally:
            self._active -= 1
            if ticket and self.guard is not None:
                self.guard.release(ticket)
            if session is not None:
                session.close()
            else:
                sock.close()
