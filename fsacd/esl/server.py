"""The outbound-socket server: FreeSWITCH connects once per call, one greenlet per call."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

from .session import ESLDisconnected, ESLError, OutboundSession, _safe_tb

log = logging.getLogger("fsacd.esl.server")


#: Accept queue of the outbound port (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096


class OutboundServer:
    """Accepts FreeSWITCH's outbound connections and runs ``handler(session)`` for each.

    A handler that raises is logged (exception type, and for anything but an ESL error its
    traceback; never the message or call data) and its socket closed; other calls are not
    affected. Connections beyond
    ``max_calls`` are closed at once.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        handler: Callable[[OutboundSession], None],
        *,
        max_calls: int = 1000,
        command_timeout: float = 10.0,
    ) -> None:
        self.handler = handler
        self.max_calls = max_calls
        self.command_timeout = command_timeout
        self._active = 0
        self._closed = False
        # a pool (unbounded: max_calls is enforced in _handle) lets stop() end running calls
        # FreeSWITCH opens a socket per call, hundreds in a burst: a short accept queue
        # overflows, the kernel drops the SYNs and FreeSWITCH's connect only retries after 1,
        # 3, 7 s (TCP's backoff), so callers wait seconds before fsacd even sees them
        self._server = StreamServer(listen, self._handle, spawn=Pool(), backlog=LISTEN_BACKLOG)

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

    def _handle(self, sock, address) -> None:
        if self._active >= self.max_calls:
            log.warning("refusing a connection: %d calls active (max_calls)", self._active)
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
            if session is not None:
                session.close()
            else:
                sock.close()
