"""External CRM lookup over HTTP, with a strict time limit and a Redis cache.

``GET`` the ``[crm] url`` with ``{e164}`` / ``{digits}`` filled in; the JSON answer fills the
same fields as the contact store (:func:`fsacd.pop.contacts.from_mapping`). Accepted answers:
``{"contacts": [...]}``, a list of objects, one object, or ``null``/``[]``/``{}`` / HTTP 404 /
204 for "no such number". Answers and misses are cached in Redis (``crm:{e164}``); errors and
timeouts are not.

The whole request (DNS, connect, send, answer) is bounded by the timeout: under gevent
(``fsacd serve`` monkey-patches sockets, so httpx is cooperative) a :class:`gevent.Timeout`
cuts it; httpx's timeouts bound each step otherwise. No proxy from the environment is used
and redirects are not followed (a redirect could carry the bearer token to another host):
fsacd/webclient.py.

Logs never contain the URL (it holds the number), the number or any answer data.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

from fsacd.config import CrmConfig
from fsacd.pop.contacts import MAX_MATCHES, from_mapping
from fsacd.secret import read_secret
from fsacd.state.connection import RedisError
from fsacd.state.crm import CrmCache
from fsacd.state.keys import Keys
from fsacd.webclient import HttpFailure, http_request

log = logging.getLogger(__name__)


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
        r: Any,
        keys: Keys,
        cfg: CrmConfig,
        *,
        region: str = "DE",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cache = CrmCache(r, keys)
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
        try:
            cached = self.cache.get(e164)
        except RedisError as exc:
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
                self.cache.put(e164, json.dumps(found, separators=(",", ":")), ttl)
            except RedisError as exc:
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
