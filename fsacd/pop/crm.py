"""External CRM lookup over HTTP, with a strict time limit and a Redis cache.

``GET`` the ``[crm] url`` with ``{e164}`` / ``{digits}`` filled in; the JSON answer fills the
same fields as the contact store (:func:`fsacd.pop.contacts.from_mapping`). Accepted answers:
``{"contacts": [...]}``, a list of objects, one object, or ``null``/``[]``/``{}`` / HTTP 404 /
204 for "no such number". Answers and misses are cached in Redis (``crm:{e164}``); errors and
timeouts are not.

The whole request (DNS, connect, send, answer) is bounded by the timeout: under gevent
(``fsacd serve`` monkey-patches sockets, so urllib is cooperative) a :class:`gevent.Timeout`
cuts it; the socket timeout bounds each step otherwise. No proxy from the environment is used
and redirects are not followed (a redirect could carry the bearer token to another host).

Logs never contain the URL (it holds the number), the number or any answer data.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
import redis

from fsacd import __version__
from fsacd.config import CrmConfig
from fsacd.pop.contacts import MAX_MATCHES, from_mapping
from fsacd.state.keys import Keys

log = logging.getLogger(__name__)

#: Largest answer read from the CRM (or a webhook endpoint).
MAX_BODY = 256 * 1024
USER_AGENT = f"fsacd/{__version__}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None  # 3xx is handed back as an HTTPError


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class HttpFailure(Exception):
    """A request failed; ``reason`` is safe to log (no URL, no body)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


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
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("User-Agent", USER_AGENT)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                body = resp.read(max_bytes + 1)
                status = resp.status
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                body = exc.read(max_bytes + 1) if exc.fp else b""
                status = exc.code
            else:
                raise HttpFailure(f"HTTP {exc.code}", exc.code) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise HttpFailure(f"timed out after {timeout:g} s") from None
            raise HttpFailure(f"cannot connect ({type(exc.reason).__name__})") from None
        except TimeoutError:
            raise HttpFailure(f"timed out after {timeout:g} s") from None
        except OSError as exc:
            raise HttpFailure(f"connection error ({type(exc).__name__})") from None
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise HttpFailure(f"timed out after {timeout:g} s") from None
    finally:
        timer.close()
    if len(body) > max_bytes:
        raise HttpFailure(f"answer larger than {max_bytes} bytes", status)
    return status, body


def read_secret(
    env_name: str | None, path: str | None, env: Mapping[str, str] | None = None
) -> str | None:
    """A secret from a file (trailing newline dropped) or an environment variable; None if
    neither gives a non-empty value. Never logs the value."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            log.warning("cannot read secret file %s: %s", path, exc.strerror)
            return None
        return value or None
    env = os.environ if env is None else env
    if env_name:
        return env.get(env_name) or None
    return None


def parse_answer(data: Any, region: str) -> list[dict[str, Any]]:
    """The contacts in a CRM's JSON answer (see the module doc), each with ``source: crm``."""
    if isinstance(data, Mapping) and "contacts" in data:
        data = data["contacts"]
    if data is None:
        return []
    if isinstance(data, Mapping):
        data = [data] if data else []
    if not isinstance(data, list):
        raise ValueError("the answer must be a JSON object, a list of objects or null")
    out = []
    for item in data[:MAX_MATCHES]:
        if not isinstance(item, Mapping):
            raise ValueError("every contact in the answer must be a JSON object")
        contact, _problems = from_mapping(item, region)
        if len(contact) > 1 or contact.get("numbers"):
            contact["source"] = "crm"
            out.append(contact)
    return out


class Crm:
    """Lookups in the external CRM of ``cfg``; counts what happened in :attr:`stats`."""

    def __init__(
        self,
        r: redis.Redis,
        keys: Keys,
        cfg: CrmConfig,
        *,
        region: str = "DE",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.r = r
        self.keys = keys
        self.cfg = cfg
        self.region = region
        self.timeout = cfg.timeout if timeout is None else timeout
        self.env = env
        self.stats = {"requests": 0, "cached": 0, "found": 0, "missed": 0, "errors": 0}

    def url_for(self, e164: str) -> str:
        return self.cfg.url.replace("{e164}", urllib.parse.quote(e164, safe="")).replace(
            "{digits}", e164.lstrip("+")
        )

    def lookup(self, e164: str) -> list[dict[str, Any]]:
        """Contacts for ``e164`` from the cache or the CRM; ``[]`` on a miss or any failure.
        Never raises for CRM or Redis trouble; never takes (much) longer than the timeout."""
        key = self.keys.crm_cache(e164)
        try:
            cached = self.r.get(key)
        except redis.RedisError as exc:
            log.warning("CRM cache read failed: %s", type(exc).__name__)
            cached = None
        if cached is not None:
            try:
                found = json.loads(cached)
            except ValueError:
                found = None
            if isinstance(found, list):
                self.stats["cached"] += 1
                return found
        found = self.fetch(e164)
        if found is None:
            return []
        ttl = self.cfg.cache_ttl if found else self.cfg.miss_ttl
        if ttl > 0:
            try:
                self.r.set(key, json.dumps(found, separators=(",", ":")), px=int(ttl * 1000))
            except redis.RedisError as exc:
                log.warning("CRM cache write failed: %s", type(exc).__name__)
        return found

    def fetch(self, e164: str) -> list[dict[str, Any]] | None:
        """Ask the CRM (no cache); None when the request failed."""
        self.stats["requests"] += 1
        headers = {"Accept": "application/json"}
        token = read_secret(self.cfg.token_env, self.cfg.token_file, self.env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status, body = http_request(self.url_for(e164), timeout=self.timeout, headers=headers)
        except HttpFailure as exc:
            self.stats["errors"] += 1
            log.warning("CRM lookup failed: %s", exc.reason)
            return None
        if status in (204, 404):
            self.stats["missed"] += 1
            return []
        if status >= 400:
            self.stats["errors"] += 1
            log.warning("CRM lookup failed: HTTP %d", status)
            return None
        try:
            found = parse_answer(json.loads(body) if body.strip() else None, self.region)
        except ValueError as exc:
            self.stats["errors"] += 1
            log.warning("CRM answer unusable: %s", str(exc)[:120])
            return None
        self.stats["found" if found else "missed"] += 1
        return found
