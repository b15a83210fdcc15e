"""``/metrics`` of ``fsacd web``: the figures in Redis as Prometheus metrics (prometheus-client).

Counters are the running totals the Lua scripts keep (``stats:queue:{q}:total``), so they
only go up and are the same whichever ``fsacd web`` is asked. Names: docs/monitoring.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from fsacd.core import figures as fig
from fsacd.state.stats import StatsStore

#: Bounds of the wait- and ring-time histograms (``WAIT_BUCKETS``/``RING_BUCKETS`` in _lib.lua).
WAIT_BUCKETS = (5, 10, 20, 30, 60, 120, 300, 600)
RING_BUCKETS = (2, 5, 10, 15, 20, 30, 60)


def _histogram(
    name: str, doc: str, rows: dict[str, dict[str, float]], key: str, bounds: tuple[int, ...]
) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, doc, labels=["queue"])
    for q, t in rows.items():
        buckets, below = [], 0.0
        for b in bounds:  # Redis keeps each bucket's own count: add them up
            below += t.get(f"{key}_bucket:{b}", 0.0)
            buckets.append((str(float(b)), below))
        buckets.append(("+Inf", t.get(f"{key}_count", 0.0)))
        h.add_metric([q], buckets, sum_value=t.get(f"{key}_sum", 0.0))
    return h


class FiguresCollector:
    """Reads Redis on each scrape (a handful of pipelined commands per queue)."""

    def __init__(
        self, stats: StatsStore, today: Callable[[float], float], queues: list[str]
    ) -> None:
        self.stats = stats
        self.today = today
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        st = self.stats
        queues = sorted(set(st.queue_names()) | set(self.queues))
        totals = st.totals("queue", queues)
        live = st.live(queues)
        today = st.queue_figures(queues, self.today(time.time()))
        calls = CounterMetricFamily(
            "fsacd_calls",
            "Calls that left a queue, by outcome (answered, abandoned, timeout, overflow, ...).",
            labels=["queue", "outcome"],
        )
        offered = CounterMetricFamily(
            "fsacd_calls_offered", "Calls that entered the queue.", labels=["queue"]
        )
        in_sl = CounterMetricFamily(
            "fsacd_calls_answered_in_service_level",
            "Calls answered within the queue's service_level_seconds.",
            labels=["queue"],
        )
        talk = CounterMetricFamily(
            "fsacd_talk_seconds", "Seconds agents talked on the queue's calls.", labels=["queue"]
        )
        for q in queues:
            t = totals[q]
            outcomes = fig.queue_figures(t).outcomes
            if t.get("overflowed"):
                outcomes["overflow"] = outcomes.get("overflow", 0) + int(t["overflowed"])
            for outcome, n in sorted(outcomes.items()):
                calls.add_metric([q, outcome], n)
            offered.add_metric([q], t.get("offered", 0.0))
            in_sl.add_metric([q], t.get("answered_in_sl", 0.0))
            talk.add_metric([q], t.get("talk_time", 0.0))
        yield from (calls, offered, in_sl, talk)
        yield self._gauge("fsacd_queue_waiting_calls", "Callers waiting (or ringing an agent).",
                          {q: live[q]["waiting"] for q in queues})
        yield self._gauge("fsacd_queue_longest_wait_seconds",
                          "How long the longest waiting caller has waited so far.",
                          {q: live[q]["longest_wait"] for q in queues})
        yield self._gauge("fsacd_queue_talking_calls", "Calls bridged to an agent now.",
                          {q: live[q]["talking"] for q in queues})
        sl = {q: f.service_level for q, f in today.items() if f.service_level is not None}
        yield self._gauge("fsacd_queue_service_level_ratio",
                          "Today's service level (answered in time / answered or abandoned).", sl)
        agents = GaugeMetricFamily("fsacd_agents", "Agents by what they are doing.",
                                   labels=["state"])
        counts = {a: 0 for a in fig.ACTIVITIES}
        for a in st.agent_states():
            counts[a] = counts.get(a, 0) + 1
        for state, n in counts.items():
            agents.add_metric([state], n)
        yield agents
        yield _histogram("fsacd_queue_wait_seconds",
                         "Wait of calls answered or abandoned, from entering the queue.",
                         totals, "wait", WAIT_BUCKETS)
        yield _histogram("fsacd_offer_ring_seconds",
                         "How long the answering agent's phone rang.", totals, "ring",
                         RING_BUCKETS)

    @staticmethod
    def _gauge(name: str, doc: str, values: dict[str, Any]) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=["queue"])
        for q, v in values.items():
            g.add_metric([q], float(v))
        return g


def registry(
    stats: StatsStore, today: Callable[[float], float], queues: Iterable[str] = ()
) -> CollectorRegistry:
    """A registry with the figures of the queues in Redis and ``queues`` (the configured)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FiguresCollector(stats, today, list(queues)))  # type: ignore[arg-type]
    return reg
