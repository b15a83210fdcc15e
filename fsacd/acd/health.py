"""``fsacd serve``'s own HTTP endpoint (``[http] listen``, off by default): ``/metrics`` of
this process, ``/healthz`` (it runs) and ``/readyz`` (Redis answers, the call socket
listens, not draining). Metric names: docs/monitoring.md."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer
from greenlet import greenlet
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fsacd.esl.guard import REASONS

log = logging.getLogger(__name__)

#: How often Redis is pinged for its latency, seconds.
PING_EVERY = 5.0
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ProcessMetrics:
    """Metrics of one controller, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.routing = Histogram(
            "fsacd_routing_seconds",
            "From FreeSWITCH connecting a call to fsacd having its route (connect, the event "
            "subscription, linger, the routing decision).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.esl_latency = Histogram(
            "fsacd_esl_api_seconds", "Inbound event-socket api commands.", buckets=_LATENCY,
            registry=r,
        )  # fmt: skip
        self.esl_errors = Counter(
            "fsacd_esl_api_errors", "Inbound api commands FreeSWITCH did not answer.", registry=r
        )
        self.redis_latency = Histogram(
            "fsacd_redis_ping_seconds", "Redis PING round trips.", buckets=_LATENCY, registry=r
        )
        self.redis_errors = Counter(
            "fsacd_redis_errors", "Redis PINGs that failed.", registry=r
        )
        self._arrivals: dict[int, float] = {}

    def timed_api(self, api: Callable[[str], str | None]) -> Callable[[str], str | None]:
        """``api`` of the inbound client, timed and its failures (None) counted."""

        def run(cmd: str) -> str | None:
            t0 = time.perf_counter()
            out = api(cmd)
            self.esl_latency.observe(time.perf_counter() - t0)
            if out is None:
                self.esl_errors.inc()
            return out

        return run

    def arrived(self) -> None:
        """A call's greenlet starts (FreeSWITCH connected)."""
        self._arrivals[id(gevent.getcurrent())] = time.perf_counter()

    def queued(self) -> None:
        """The call of the current greenlet has its route now."""
        t0 = self._arrivals.pop(id(gevent.getcurrent()), None)
        if t0 is not None:
            self.routing.observe(time.perf_counter() - t0)

    def left(self) -> None:
        self._arrivals.pop(id(gevent.getcurrent()), None)


class _Live:
    """Gauges read at scrape time from the controller."""

    def __init__(
        self,
        sessions: Callable[[], int],
        refused: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.refused = refused

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily("fsacd_live_sessions", "Calls this controller is handling now.")
        g.add_metric([], self.sessions())
        yield g
        n = sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead)
        g = GaugeMetricFamily("fsacd_greenlets", "Greenlets alive in this process.")
        g.add_metric([], n)
        yield g
        if self.refused is not None:
            c = CounterMetricFamily(
                "fsacd_outbound_refused",
                "Connections to the outbound socket closed at once, by reason (not-allowed,"
                " source-limit, source-rate, max-calls).",
                labels=["reason"],
            )
            counts = self.refused()
            for reason in sorted({*REASONS, *counts}):  # every reason, 0 until one happens
                c.add_metric([reason], counts.get(reason, 0))
            yield c


class HealthServer:
    """The endpoint. ``ready`` returns None when ready, else the reason it is not."""

    def __init__(
        self,
        address: tuple[str, int],
        metrics: ProcessMetrics,
        ping: Callable[[], Any],
        ready: Callable[[], str | None],
        sessions: Callable[[], int],
        refused: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.ping = ping
        self.ready = ready
        metrics.registry.register(_Live(sessions, refused))  # type: ignore[arg-type]
        self.redis_ok = False
        self.server = WSGIServer(address, self.app, log=None, error_log=log)
        self._pinger: gevent.Greenlet | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address[:2]

    def start(self) -> None:
        self.server.start()
        self._pinger = gevent.spawn(self._ping_loop)
        log.info("health and metrics on http://%s:%d/", *self.address)

    def stop(self) -> None:
        if self._pinger is not None:
            self._pinger.kill(block=False)
        self.server.stop(timeout=1)

    def check_redis(self) -> bool:
        t0 = time.perf_counter()
        try:
            with gevent.Timeout(2.0):
                self.ping()
        except BaseException as exc:  # noqa: BLE001 - Redis errors and the timeout alike
            if isinstance(exc, gevent.GreenletExit | KeyboardInterrupt | SystemExit):
                raise
            self.metrics.redis_errors.inc()
            self.redis_ok = False
            return False
        self.metrics.redis_latency.observe(time.perf_counter() - t0)
        self.redis_ok = True
        return True

    def _ping_loop(self) -> None:
        while True:
            self.check_redis()
            gevent.sleep(PING_EVERY)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            return _reply(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            why = None if self.check_redis() else "Redis does not answer"
            why = why or self.ready()
            if why:
                return _reply(start_response, "503 Service Unavailable", f"{why}\n".encode())
            return _reply(start_response, "200 OK", b"ready\n")
        if path == "/metrics":
            return _reply(
                start_response, "200 OK", generate_latest(self.metrics.registry),
                CONTENT_TYPE_LATEST,
            )  # fmt: skip
        return _reply(start_response, "404 Not Found", b"not found\n")


def _reply(
    start_response: Callable[..., Any], status: str, body: bytes, ctype: str = "text/plain"
) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
