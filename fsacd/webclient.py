"""The HTTP requests fsacd makes: CRM lookups, screen-pop webhooks, the SMS sender's webhook.

One :mod:`httpx` client for all of them (:func:`client`), so every request keeps the same
rules: redirects are never followed (a redirect could carry a bearer token or a code to
another host: a 3xx is a failure), nothing is taken from the environment (no
``HTTP(S)_PROXY``/``ALL_PROXY``, no ``SSL_CERT_*``, no ``.netrc``: ``trust_env=False``), no
keep-alive (each request has its own connection, closed after it), no compressed answers
(``Accept-Encoding: identity``, so :data:`MAX_BODY` bounds what is held in memory).

The whole request (DNS, connect, send, answer) is bounded by its timeout: under gevent
(``fsacd serve`` monkey-patches sockets, so httpx is cooperative) a :class:`gevent.Timeout`
cuts it; httpx's own timeouts bound each step otherwise. Failures carry a reason safe to log:
no URL, no body; httpx's and httpcore's own logging (which names URLs) is held at WARNING.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import gevent
import httpx

from fsacd import __version__

# httpx logs each request's URL at INFO (a CRM URL holds the caller's number) and httpcore
# traces it at DEBUG: neither reaches fsacd's logs, whatever --log-level says
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

#: Largest answer read (the CRM's; webhooks pass less).
MAX_BODY = 256 * 1024
USER_AGENT = f"fsacd/{__version__}"
#: httpx's per-step timeout when a caller gives none (every fsacd caller gives one).
DEFAULT_TIMEOUT = 10.0

_client: httpx.Client | None = None


class HttpFailure(Exception):
    """A request failed; ``reason`` is safe to log (no URL, no body). ``status`` is the HTTP
    status of a 3xx/5xx answer (or of one too large), else None."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def new_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """An httpx client with fsacd's rules (module doc)."""
    return httpx.Client(
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


def client() -> httpx.Client:
    """The shared client (made at its first use, after gevent patched the sockets)."""
    global _client
    if _client is None:
        _client = new_client()
    return _client


def _cause(exc: BaseException) -> str:
    """The name of the OS error behind an httpx error (``ConnectionRefusedError``, ...)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def http_request(
    url: str,
    *,
    timeout: float,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = MAX_BODY,
) -> tuple[int, bytes]:
    """One HTTP request (POST if ``data``), finished within ``timeout`` seconds.

    Returns ``(status, body)`` for 2xx and 4xx answers; raises :class:`HttpFailure` for
    timeouts, connection errors, 3xx/5xx answers and bodies over ``max_bytes``.
    """
    method = "POST" if data is not None else "GET"
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        try:
            with client().stream(
                method, url, content=data, headers=dict(headers or {}), timeout=timeout
            ) as resp:
                status = resp.status_code
                if 300 <= status < 400 or status >= 500:
                    raise HttpFailure(f"HTTP {status}", status)
                body = bytearray()
                for chunk in resp.iter_raw():
                    body += chunk
                    if len(body) > max_bytes:
                        break
        except httpx.TimeoutException:
            raise HttpFailure(f"timed out after {timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise HttpFailure(f"cannot connect ({_cause(exc)})") from None
        except httpx.TransportError as exc:
            raise HttpFailure(f"connection error ({type(exc).__name__})") from None
        except httpx.InvalidURL:
            raise HttpFailure("invalid URL") from None
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise HttpFailure(f"timed out after {timeout:g} s") from None
    finally:
        timer.close()
    if len(body) > max_bytes:
        raise HttpFailure(f"answer larger than {max_bytes} bytes", status)
    return status, bytes(body)
