"""``scripts/bench throughput|concurrency|redis|horizontal``: one (or two) real ``fsacd serve``
processes, the stand-in in its own process (``--standins N``: N of them, each a switch the
controllers take calls from), a private redis-server (a third process).

- ``throughput``: routed calls per second (arrive, ring, answer, talk ``--talk`` s, hang up)
  at rising offered rates; placed -> bridged latency p50/p99/max as the stand-in sees it,
  failures, fsacd's CPU seconds per call;
- ``concurrency``: callers held waiting (hold music, no agents): RSS of ``fsacd serve``
  before, while they wait (KiB per waiting call) and after they leave;
- ``redis``: Redis commands per routed call (``INFO commandstats`` before/after, the
  controller's idle background traffic over the same time subtracted), and the round trips
  the call's own greenlet makes from its arrival to the ``bridge`` sent (an in-process
  controller with counting connections; the stand-in still in its own process);
- ``horizontal``: the same load on one controller and on two on one Redis (callers split
  between them): throughput ratio and double offers (two legs to one agent at once).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from fsacd.state.connection import close, connect  # noqa: E402
from fsacd.state.keys import Keys  # noqa: E402
from fsacd.state.store import Store  # noqa: E402
from fsacd.tools.benchprocs import ServeProc, StandinProc, proc_stats  # noqa: E402
from fsacd.tools.benchutil import emit, summary, table  # noqa: E402
from fsacd.tools.redisproc import RedisProcess  # noqa: E402
from fsacd.tools.standin_load import AGENT_PATTERN, double_offers  # noqa: E402


def add_agents(url: str, n: int, login: bool = True) -> None:
    r = connect(url)
    try:
        store = Store(r, controller_id="bench-setup")
        store.sync_queues(["bench"])
        with store.batch() as pipe:
            for i in range(n):
                contact = AGENT_PATTERN.replace("*", f"b{i}")
                store.add_agent(f"b{i}", contact, {"bench": i + 1}, pipe=pipe)
        if login:
            for i in range(n):
                store.login(f"b{i}")
    finally:
        close(r)


def wait_agents_idle(url: str, timeout: float = 30.0) -> bool:
    r = connect(url)
    try:
        store = Store(r)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(a["state"] in ("idle", "wrap-up") for a in store.list_agents()):
                return True
            time.sleep(0.1)
        return False
    finally:
        close(r)


class Rig:
    """Redis, ``standins`` stand-in processes (each a switch: fsacd's ``inbound`` and
    ``other_switches``), ``controllers`` serve processes, ``agents`` agents."""

    def __init__(self, controllers: int = 1, agents: int = 0, login: bool = True,
                 standins: int = 1) -> None:  # fmt: skip
        self.redis = RedisProcess().start()
        self.standins: list[StandinProc] = []
        self.serves: list[ServeProc] = []
        try:
            self.standins = [StandinProc() for _ in range(max(1, standins))]
            inbound = [s.inbound for s in self.standins]
            add_agents(self.redis.url, agents, login)
            for i in range(controllers):
                self.serves.append(ServeProc(self.redis.url, inbound[0], cid=f"bench{i + 1}",
                                             others=inbound[1:]).start())  # fmt: skip
        except Exception:
            self.stop()
            raise

    @property
    def standin(self) -> StandinProc:
        return self.standins[0]

    def standin_cpu(self) -> float:
        return sum(s.stats()["cpu"] for s in self.standins)

    @property
    def targets(self) -> list[list[Any]]:
        return [list(s.address) for s in self.serves]

    def cpu(self) -> float:
        return sum(s.stats().get("cpu", 0.0) for s in self.serves)

    def stop(self) -> None:
        for s in self.serves:
            s.stop()
        for st in self.standins:
            st.stop()
        self.redis.stop()


def _load_run(rig: Rig, rate: float, seconds: float, talk: float) -> dict[str, Any]:
    n = max(1, int(rate * seconds))
    cpu0 = rig.cpu()
    sin0 = rig.standin_cpu()
    red0 = proc_stats(rig.redis.pid or 0)["cpu"]
    k = len(rig.standins)
    # each stand-in places its share of the callers at its share of the rate, all at once
    jobs = [gevent.spawn(st.send, cmd="calls", n=n // k + (i < n % k), rate=rate / k,
                         targets=rig.targets, talk=talk, wait=30)
            for i, st in enumerate(rig.standins)]  # fmt: skip
    gevent.joinall(jobs, raise_error=True)
    replies = [j.value for j in jobs]
    reply = {
        "latencies": [x for r in replies for x in r["latencies"]],
        "failed": sum(r["failed"] for r in replies),
        "place_seconds": max(r["place_seconds"] for r in replies),
        "double_offers": double_offers([s for r in replies for s in r["agent_spans"]]),
    }
    cpu = rig.cpu() - cpu0
    standin_cpu = rig.standin_cpu() - sin0
    redis_cpu = proc_stats(rig.redis.pid or 0)["cpu"] - red0
    lat = reply["latencies"]
    served = len(lat)
    # routed per second: bridged calls over the time the offered load lasted (+ the last
    # bridge's latency), i.e. what kept up with the offer
    window = reply["place_seconds"] + (max(lat) if lat else 0.0)
    return {
        "offered_rate": rate,
        "calls": n,
        "bridged": served,
        "failed": reply["failed"],
        "routed_per_s": round(served / window, 1) if window > 0 else None,
        "latency_ms": summary(lat),
        "cpu_ms_per_call": round(cpu * 1000 / served, 2) if served else None,
        "standin_cpu_ms_per_call": round(standin_cpu * 1000 / served, 2) if served else None,
        "redis_cpu_ms_per_call": round(redis_cpu * 1000 / served, 2) if served else None,
        "double_offers": reply["double_offers"],
    }


def throughput(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    rates = [float(x) for x in args.rates.split(",")]
    rig = Rig(1, args.agents, standins=args.standins)
    runs = []
    try:
        for rate in rates:
            runs.append(_load_run(rig, rate, args.seconds, args.talk))
            wait_agents_idle(rig.redis.url)
    finally:
        rig.stop()
    rows = [[r["offered_rate"], r["calls"], r["bridged"], r["failed"], r["routed_per_s"],
             r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["latency_ms"]["max"],
             r["cpu_ms_per_call"], r["standin_cpu_ms_per_call"], r["redis_cpu_ms_per_call"]]
            for r in runs]  # fmt: skip
    text = table(["offered/s", "calls", "bridged", "failed", "routed/s", "p50 ms", "p99 ms",
                  "max ms", "CPU ms/call: fsacd", "stand-in", "redis"], rows)  # fmt: skip
    text += f"\n{args.standins} stand-in process(es), one fsacd serve"
    return {"agents": args.agents, "talk": args.talk, "standins": args.standins,
            "runs": runs}, text  # fmt: skip


def wait_calls_gone(url: str, timeout: float = 60.0) -> float | None:
    """Seconds until the controller recorded every call's end (its live-call set is
    empty), or None after ``timeout``."""
    r = connect(url)
    try:
        key, t0 = Keys().calls(), time.time()
        while time.time() - t0 < timeout:
            if not r.scard(key):
                return round(time.time() - t0, 2)
            time.sleep(0.1)
        return None
    finally:
        close(r)


def redis_clients(url: str) -> int:
    r = connect(url)
    try:
        return int(r.info("clients")["connected_clients"])
    finally:
        close(r)


def concurrency(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    rig = Rig(1, 0)
    rounds = []
    try:
        serve = rig.serves[0]
        # warm up: a few callers come and go, so imports and pools are in the baseline
        rig.standin.send(cmd="hold", n=20, rate=100, targets=rig.targets, wait=30)
        rig.standin.send(cmd="hangup")
        wait_calls_gone(rig.redis.url)
        time.sleep(2)
        base = serve.stats()
        base_clients = redis_clients(rig.redis.url)
        for _ in range(args.rounds):
            cpu0 = serve.stats()["cpu"]
            held = rig.standin.send(cmd="hold", n=args.callers, rate=args.rate,
                                    targets=rig.targets,
                                    wait=max(60, args.callers / args.rate * 3))  # fmt: skip
            time.sleep(1)
            during = serve.stats()
            during_clients = redis_clients(rig.redis.url)
            rig.standin.send(cmd="hangup")
            gone = wait_calls_gone(rig.redis.url, timeout=max(60.0, args.callers / 20))
            # the controller closes the Redis connections the spell opened and trims its
            # heap after about 15 s (fsacd/acd/memory.py)
            time.sleep(args.settle)
            after = serve.stats()
            n = held["hearing_moh"]
            rounds.append({
                "hearing_moh": n,
                "rss_kib": {"waiting": during["rss_kib"], "after": after["rss_kib"]},
                "kib_per_waiting_call": round((during["rss_kib"] - base["rss_kib"]) / n, 1)
                if n else None,
                "cpu_s_to_take_them": round(during["cpu"] - cpu0, 2),
                "seconds_until_all_ended": gone,
                "redis_clients": {"waiting": during_clients,
                                  "after": redis_clients(rig.redis.url)},
            })  # fmt: skip
    finally:
        rig.stop()
    first = rounds[0]
    result = {
        "callers": args.callers,
        "settle": args.settle,
        "hearing_moh": first["hearing_moh"],
        "rss_kib": {"baseline": base["rss_kib"], **first["rss_kib"]},
        "kib_per_waiting_call": first["kib_per_waiting_call"],
        "cpu_s_to_take_them": first["cpu_s_to_take_them"],
        "redis_clients_baseline": base_clients,
        "rounds": rounds,
    }
    mib = lambda kib: round(kib / 1024, 1)  # noqa: E731
    text = table(["round", "callers", "hearing moh", "RSS base MiB", "RSS waiting MiB",
                  "RSS after MiB", "KiB/waiting call", "all ended s", "Redis clients"],
                 [[i + 1, args.callers, r["hearing_moh"], mib(base["rss_kib"]),
                   mib(r["rss_kib"]["waiting"]), mib(r["rss_kib"]["after"]),
                   r["kib_per_waiting_call"], r["seconds_until_all_ended"],
                   f"{base_clients} -> {r['redis_clients']['waiting']} -> "
                   f"{r['redis_clients']['after']}"]
                  for i, r in enumerate(rounds)])  # fmt: skip
    return result, text


def _commandstats(url: str) -> dict[str, int]:
    r = connect(url)
    try:
        stats = r.info("commandstats")
    finally:
        close(r)
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


def redis_cost(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from fsacd.tools.bench_hotpath import hot_path_trips

    rig = Rig(1, 2)
    try:
        time.sleep(1)
        # the controller's background traffic (lease, sweep, recovery) over an idle window
        s0 = _commandstats(rig.redis.url)
        t0 = time.time()
        time.sleep(args.idle)
        s1 = _commandstats(rig.redis.url)
        idle_s = time.time() - t0
        t1 = time.time()
        reply = rig.standin.send(cmd="calls", n=args.calls, rate=args.rate, targets=rig.targets,
                                 talk=0.05, wait=30)  # fmt: skip
        time.sleep(1.0)  # the last hang-ups processed (no polling here: it would be counted)
        s2 = _commandstats(rig.redis.url)
        busy_s = time.time() - t1
    finally:
        rig.stop()
    idle = _delta(s0, s1)
    busy = _delta(s1, s2)
    for d in (idle, busy):  # the benchmark's own INFO
        d.pop("info", None)
    scale = busy_s / idle_s if idle_s else 0.0
    per_call = {k: round((v - idle.get(k, 0) * scale) / args.calls, 2)
                for k, v in sorted(busy.items())}  # fmt: skip
    total = round(sum(per_call.values()), 1)
    hot = hot_path_trips(args.hot_calls)
    result = {
        "calls": args.calls,
        "bridged": len(reply["latencies"]),
        "commands_per_call": total,
        "by_command": {k: v for k, v in per_call.items() if abs(v) >= 0.05},
        "idle_commands_per_s": round(sum(idle.values()) / idle_s, 1) if idle_s else None,
        "hot_path": hot,
    }
    rows = [[k, v] for k, v in sorted(result["by_command"].items(), key=lambda kv: -kv[1])]
    text = (f"Redis commands per routed call (whole call, INFO commandstats, idle traffic "
            f"subtracted): {total}\n" + table(["command", "per call"], rows)
            + f"\nhot path (arrival -> bridge sent, the call's own greenlet, {hot['calls']} "
            f"calls): round trips p50 {hot['round_trips']['p50']}, max "
            f"{hot['round_trips']['max']}; commands p50 {hot['commands']['p50']}")  # fmt: skip
    return result, text


def horizontal(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    runs = {}
    for controllers in (1, 2):
        rig = Rig(controllers, args.agents, standins=args.standins)
        try:
            runs[controllers] = _load_run(rig, args.rate, args.seconds, args.talk)
        finally:
            rig.stop()
    one, two = runs[1], runs[2]
    ratio = (round(two["routed_per_s"] / one["routed_per_s"], 2)
             if one["routed_per_s"] and two["routed_per_s"] else None)  # fmt: skip
    rows = [[c, r["calls"], r["bridged"], r["failed"], r["routed_per_s"], r["latency_ms"]["p50"],
             r["latency_ms"]["p99"], r["double_offers"], r["cpu_ms_per_call"],
             r["standin_cpu_ms_per_call"]] for c, r in runs.items()]  # fmt: skip
    text = table(["controllers", "calls", "bridged", "failed", "routed/s", "p50 ms", "p99 ms",
                  "double offers", "fsacd CPU ms/call", "stand-in"], rows)
    text += f"\nratio two/one: {ratio}"
    text += f"; {args.standins} stand-in process(es)"
    return {"offered_rate": args.rate, "agents": args.agents, "standins": args.standins,
            "one": one, "two": two, "ratio": ratio}, text  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=("throughput", "concurrency", "redis", "horizontal"))
    ap.add_argument("--rates", default="25,50,100,200", help="throughput: offered calls/s")
    ap.add_argument("--rate", type=float, default=50.0, help="horizontal/redis: calls/s")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of load per rate")
    ap.add_argument("--talk", type=float, default=0.2, help="talk time of each call, s")
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--callers", type=int, default=5000, help="concurrency: callers held")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="concurrency: s after the last call ended")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=1,
                    help="concurrency: hold and release the callers this often")  # fmt: skip
    ap.add_argument("--calls", type=int, default=100, help="redis: routed calls measured")
    ap.add_argument("--idle", type=float, default=3.0, help="redis: idle window, s")
    ap.add_argument("--hot-calls", type=int, default=30, help="redis: hot-path calls")
    ap.add_argument("--standins", type=int, default=1, metavar="N",
                    help="throughput/horizontal: N stand-in processes, each a switch fsacd "
                    "takes calls from ([freeswitch] other_switches), sharing the load")  # fmt: skip
    ap.add_argument("--json", metavar="FILE", help="also write JSON (- for stdout)")
    args = ap.parse_args(argv)
    if not 1 <= args.standins <= 16:
        ap.error("--standins must be 1 to 16")
    if args.which == "concurrency":
        args.rate = min(args.rate, 500.0) if args.rate != 50.0 else 250.0
    fn = {"throughput": throughput, "concurrency": concurrency, "redis": redis_cost,
          "horizontal": horizontal}[args.which]  # fmt: skip
    result, text = fn(args)
    emit(args.which, result, text, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
