"""``scripts/bench agents``: how picking an agent scales with the agents in a queue.

For each size (default 10, 100, 1000, 10000 agents, all free, all members of one queue per
strategy) and each strategy: a call is enqueued, then ``Matcher.match_now`` (the public
matching path fsacd's call flow uses: head call, free agents, strategy order, atomic
reservation, delivery of the offer) is timed until the offer is delivered; then the call
is answered and finished with no wrap-up, untimed, so every agent is free again. Redis: a
private redis-server on a unix socket (another process). Target (issue 14): p50 at 10,000
agents within 1.5x of 10 agents.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from fsacd.acd.matcher import Matcher  # noqa: E402
from fsacd.config import load_text  # noqa: E402
from fsacd.core import strategies  # noqa: E402
from fsacd.state.connection import close, connect  # noqa: E402
from fsacd.state.store import Offer, Store  # noqa: E402
from fsacd.tools.benchutil import emit, summary, table  # noqa: E402
from fsacd.tools.redisproc import RedisProcess  # noqa: E402

SIZES = (10, 100, 1000, 10000)


def _config(names: list[str]) -> Any:
    text = ['[server]\ncontroller_id = "bench"\n']
    for s in names:
        text.append(f'[queues."{s}"]\nstrategy = "{s}"\nwrap_up = 0\n')
    return load_text("\n".join(text), env={})


def _add_agents(store: Store, n: int, queues: list[str]) -> None:
    batch = 500
    for start in range(0, n, batch):
        with store.batch() as pipe:
            for i in range(start, min(n, start + batch)):
                store.add_agent(f"a{i}", f"user/a{i}@bench.invalid",
                                {q: i + 1 for q in queues}, pipe=pipe)  # fmt: skip
        for i in range(start, min(n, start + batch)):
            store.login(f"a{i}")


def bench_size(url: str, n: int, names: list[str], picks: int) -> dict[str, dict[str, Any]]:
    r = connect(url)
    r.flushdb()
    store = Store(r, controller_id="bench")
    cfg = _config(names)
    store.sync_queues(cfg.queues)
    _add_agents(store, n, names)
    inbox: list[Offer] = []
    matcher = Matcher(store, cfg, "bench", lambda offer: inbox.append(offer) or True)
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            lat: list[float] = []
            missed = 0
            for i in range(picks):
                call_id = f"c-{name}-{n}-{i}"
                store.enqueue({"id": call_id, "owner": "bench"}, name, 0)
                inbox.clear()
                t = time.perf_counter()
                matcher.match_now(name)
                dt = time.perf_counter() - t
                if not inbox:
                    missed += 1
                    store.finish_call(call_id, "abandoned", 0)
                    continue
                lat.append(dt)
                offer = inbox[0]
                store.answered(offer, offer.agents[0])
                store.finish_call(call_id, "answered", 0)
            out[name] = {**summary(lat), "missed": missed}
    finally:
        close(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="agent counts")
    ap.add_argument("--strategies", default=",".join(strategies.STRATEGIES))
    ap.add_argument("--picks", type=int, default=100, help="timed picks per size and strategy")
    ap.add_argument("--json", metavar="FILE", help="also write JSON (- for stdout)")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    names = [s for s in args.strategies.split(",") if s]
    for s in names:
        if s not in strategies.STRATEGIES:
            ap.error(f"unknown strategy {s!r}")
    redis = RedisProcess().start()
    try:
        results = {n: bench_size(redis.url, n, names, args.picks) for n in sizes}
    finally:
        redis.stop()
    rows = []
    for name in names:
        base = results[sizes[0]][name]["p50"]
        for n in sizes:
            s = results[n][name]
            ratio = round(s["p50"] / base, 2) if s["p50"] and base else None
            rows.append([name, n, s["p50"], s["p99"], s["max"], ratio, s["missed"]])
    text = table(["strategy", "agents", "p50 ms", "p99 ms", "max ms", f"p50/{sizes[0]}",
                  "missed"], rows)  # fmt: skip
    emit("agents", {"picks": args.picks, "results": {str(n): v for n, v in results.items()}},
         text, args.json)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
