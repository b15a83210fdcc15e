"""The WSGI application of ``fsacd web``: pages, JSON, Server-Sent Events, ``/metrics``.

One :class:`Hub` reads a snapshot from Redis every ``[web] refresh`` seconds while anybody
watches, and every open page gets it pushed: Redis load does not grow with the screens.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote

import gevent
import gevent.event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fsacd.config import Config
from fsacd.core import figures as fig
from fsacd.state.connection import RedisError
from fsacd.state.pop import PopStore
from fsacd.state.stats import StatsStore
from fsacd.web import auth, metrics, pages

log = logging.getLogger(__name__)

#: An event stream ends after this long (the browser reconnects at once): no endless request.
STREAM_MAX = 3600.0
#: A comment line is sent when nothing changed for this long (finds closed connections).
HEARTBEAT = 15.0
_AGENT_ID_MAX = 64
#: Seconds the sum of the closed intervals of "today" is reused (StatsStore.cache_closed).
CLOSED_CACHE = 60.0


class Hub:
    """The latest snapshot, refreshed every ``interval`` seconds while someone follows it."""

    def __init__(self, compute: Callable[[], dict[str, Any]], interval: float) -> None:
        self.compute = compute
        self.interval = interval
        self.value: dict[str, Any] | None = None
        self.taken = 0.0
        self.version = 0
        self.changed = gevent.event.Event()
        self.followers = 0
        self._loop: gevent.Greenlet | None = None

    def _refresh(self) -> None:
        try:
            self.value = self.compute()
        except RedisError as exc:
            self.value = {"error": f"Redis: {exc}", "ts": round(time.time(), 3)}
        self.taken = time.monotonic()
        self.version += 1
        changed, self.changed = self.changed, gevent.event.Event()
        changed.set()

    def latest(self) -> dict[str, Any]:
        if self.value is None or time.monotonic() - self.taken >= self.interval:
            self._refresh()
        assert self.value is not None
        return self.value

    def _run(self) -> None:
        while self.followers > 0:
            self._refresh()
            gevent.sleep(self.interval)
        self._loop = None

    def follow(self) -> Iterator[dict[str, Any] | None]:
        """Snapshots as they come (None: nothing new for :data:`HEARTBEAT` seconds)."""
        self.followers += 1
        if self._loop is None:
            self._loop = gevent.spawn(self._run)
        try:
            yield self.latest()
            seen = self.version
            while True:
                self.changed.wait(HEARTBEAT)
                if self.version == seen:
                    yield None
                    continue
                seen = self.version
                yield self.value
        finally:
            self.followers -= 1


class WebApp:
    """Routes: ``/``, ``/agent/ID``, ``/api/snapshot``, ``/api/agent/ID``, ``/events/...``,
    ``/metrics``, ``/healthz``. ``token`` None: no token asked for."""

    def __init__(self, cfg: Config, stats: StatsStore, token: str | None) -> None:
        self.cfg = cfg
        self.stats = stats.caching(CLOSED_CACHE)
        self.pops = PopStore.of(stats)
        self.token = token
        self.tz = fig.zone(cfg.monitoring.timezone)
        self.hub = Hub(self.snapshot, cfg.web.refresh)
        self.registry = metrics.registry(
            self.stats, lambda now: fig.day_start(now, self.tz), sorted(cfg.queues)
        )

    def snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot(fig.day_start(time.time(), self.tz), self.cfg.queues)

    def agent_view(self, snap: dict[str, Any], agent_id: str) -> dict[str, Any]:
        agent = next((a for a in snap.get("agents", []) if a["id"] == agent_id), None)
        pop = None
        if agent and agent.get("call"):
            raw = self.pops.latest_pop(agent_id, agent["call"])
            pop = json.loads(raw) if raw else None
        return {"ts": snap.get("ts"), "agent": agent, "pop": pop, "error": snap.get("error")}

    # --- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return self._text(start_response, "405 Method Not Allowed", "GET only\n")
        if path == "/healthz":
            return self._text(start_response, "200 OK", "ok\n")
        if not auth.allowed(environ, self.token):
            return self._text(
                start_response,
                "401 Unauthorized",
                "an access token is needed: ?token=... or Authorization: Bearer ...\n",
                [("WWW-Authenticate", "Bearer")],
            )
        try:
            return self._route(path, environ, start_response)
        except RedisError as exc:
            return self._text(start_response, "503 Service Unavailable", f"Redis: {exc}\n")

    def _route(self, path: str, environ: dict[str, Any], start_response: Callable) -> Any:
        title = self.cfg.web.title
        if path == "/":
            th = asdict(self.cfg.web.thresholds)
            return self._html(environ, start_response, pages.wallboard(title, th))
        if path == "/metrics":
            body = generate_latest(self.registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if path == "/api/snapshot":
            return self._json(start_response, self.hub.latest())
        if path == "/events/snapshot":
            return self._stream(start_response, lambda s: s)
        for prefix, kind in (("/agent/", "page"), ("/api/agent/", "json"),
                             ("/events/agent/", "events")):
            if path.startswith(prefix):
                agent_id = unquote(path[len(prefix):])
                if not agent_id or len(agent_id) > _AGENT_ID_MAX or "/" in agent_id:
                    break
                if kind == "page":
                    return self._html(environ, start_response, pages.agent_page(title, agent_id))
                if kind == "json":
                    return self._json(start_response, self.agent_view(self.hub.latest(), agent_id))
                return self._stream(start_response, lambda s, a=agent_id: self.agent_view(s, a))
        return self._text(start_response, "404 Not Found", "not found\n")

    def _stream(self, start_response: Callable, view: Callable[[dict], dict]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")])
        return self._events(view)

    def _events(self, view: Callable[[dict], dict]) -> Iterator[bytes]:
        end = time.monotonic() + STREAM_MAX
        yield b"retry: 2000\n\n"
        for snap in self.hub.follow():
            if time.monotonic() > end:
                return
            if snap is None:
                yield b": ping\n\n"
                continue
            yield b"data: " + json.dumps(view(snap), separators=(",", ":")).encode() + b"\n\n"

    def _html(self, environ: dict[str, Any], start_response: Callable, page: str) -> list[bytes]:
        body = page.encode()
        headers = [("Content-Type", "text/html; charset=utf-8"),
                   ("Content-Length", str(len(body))),
                   ("Content-Security-Policy",
                    "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"),
                   ("X-Content-Type-Options", "nosniff")]
        given = auth.presented(environ)
        if self.token is not None and given:
            headers.append(("Set-Cookie", f"{auth.COOKIE}={given}; HttpOnly; SameSite=Strict; "
                                          "Path=/"))
        start_response("200 OK", headers)
        return [body]

    @staticmethod
    def _json(start_response: Callable, data: Any) -> list[bytes]:
        body = json.dumps(data, separators=(",", ":")).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-cache")])
        return [body]

    @staticmethod
    def _text(
        start_response: Callable, status: str, text: str, extra: list | None = None
    ) -> list[bytes]:
        body = text.encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body))), *(extra or [])])
        return [body]
