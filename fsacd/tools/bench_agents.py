"""``scripts/bench agents``: how picking an agent scales with the agents in a queue.

For each size (default 10, 100, 1000, 10000 agents, all free, all members of one queue per
strategy) and each strategy: a call is enqueued, then ``Matcher.match_now`` (the public
matching path fsacd's call flow uses: head call, free agents, strategy order, atomic
reservation, delivery of the offer) is timed until the offer is delivered; then the call
is answered and finished with no wrap-up, untimed, so every agent is free again. Redis: a
private redis-server on a unix socket (another process). Target (issue 14): p50 at 10,000
agents within 1.5x of 10 agents.

Every size lives in the same Redis (its own agents and queues, ``STRATEGY_SIZE``) and the
picks alternate between the sizes, so each size is measured with the same data set in
Redis and under the same machine load: what differs is the number of agents in the queue.
(Measured one size at a time in a fresh Redis, the small sizes ran in a Redis of 4 MB and
10,000 agents in one of 70 MB, where every command is slower: docs/performance.md.)
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


def _config(queues: list[str]) -> Any:
    """One queue per name ``STRATEGY_SIZE`` (or ``STRATEGY``), of that strategy."""
    text = ['[server]\ncontroller_id = "bench"\n']
    for q in queues:
        strategy = q.split("_")[0]
        text.append(f'[queues."{q}"]\nstrategy = "{strategy}"\nwrap_up = 0\n')
    return load_text("\n".join(text), env={})


def _add_agents(store: Store, n: int, queues: list[str], prefix: str = "a") -> None:
    batch = 500
    for start in range(0, n, batch):
        with store.batch() as pipe:
            for i in range(start, min(n, start + batch)):
                store.add_agent(f"{prefix}{i}", f"user/{prefix}{i}@bench.invalid",
                                {q: i + 1 for q in queues}, pipe=pipe)  # fmt: skip
        for i in range(start, min(n, start + batch)):
            store.login(f"{prefix}{i}")


def _queue(strategy: str, n: int) -> str:
    return f"{strategy}_{n}"


def bench_sizes(url: str, sizes: list[int], names: list[str], picks: int) -> dict[int, Any]:
    """Per size and strategy: the pick latencies (summary) and offers missed."""
    r = connect(url)
    r.flushdb()
    store = Store(r, controller_id="bench")
    cfg = _config([_queue(s, n) for n in sizes for s in names])
    store.sync_queues(cfg.queues)
    for n in sizes:
        _add_agents(store, n, [_queue(s, n) for s in names], prefix=f"a{n}-")
    inbox: list[Offer] = []
    matcher = Matcher(store, cfg, "bench", lambda offer: inbox.append(offer) or True)
    lat: dict[tuple[int, str], list[float]] = {(n, s): [] for n in sizes for s in names}
    missed = dict.fromkeys(lat, 0)
    try:
        for name in names:
            for i in range(picks):
                for n in sizes:
                    queue = _queue(name, n)
                    call_id = f"c-{queue}-{i}"
                    store.enqueue({"id": call_id, "owner": "bench"}, queue, 0)
                    inbox.clear()
                    t = time.perf_counter()
                    matcher.match_now(queue)
                    dt = time.perf_counter() - t
                    if not inbox:
                        missed[n, name] += 1
                        store.finish_call(call_id, "abandoned", 0)
                        continue
                    lat[n, name].append(dt)
                    offer = inbox[0]
                    store.answered(offer, offer.agents[0])
                    store.finish_call(call_id, "answered", 0)
        memory = r.info("memory").get("used_memory_human")
    finally:
        close(r)
    out: dict[int, Any] = {n: {} for n in sizes}
    for (n, name), values in lat.items():
        out[n][name] = {**summary(values), "missed": missed[n, name]}
    out[-1] = memory
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
        results = bench_sizes(redis.url, sizes, names, args.picks)
    finally:
        redis.stop()
    memory = results.pop(-1)
    rows = []
    for name in names:
        base = results[sizes[0]][name]["p50"]
        for n in sizes:
            s = results[n][name]
            ratio = round(s["p50"] / base, 2) if s["p50"] and base else None
            rows.append([name, n, s["p50"], s["p99"], s["max"], ratio, s["missed"]])
    text = table(["strategy", "agents", "p50 ms", "p99 ms", "max ms", f"p50/{sizes[0]}",
                  "missed"], rows)  # fmt: skip
    text += f"\nall sizes in one Redis ({memory} used), picks alternating between the sizes"
    data = {"picks": args.picks, "redis_memory": memory,
            "results": {str(n): v for n, v in results.items()}}  # fmt: skip
    emit("agents", data, text, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
