"""``scripts/soak``: many concurrent simulated calls for a long time, agents of mixed behaviour.

Three processes besides this one, as in the benchmarks: the controller as a real
``fsacd serve`` (its own config, ``[http] listen`` on for its ``/metrics``), the FreeSWITCH
stand-in with the callers and the agents' phones (fsacd/tools/soak_standin.py), and a
private redis-server (or ``--redis-url``). The stand-in process keeps ``--calls`` callers
up; each waits, is served or gives up (some hang up while waiting, some while ringing, most
talk until the agent hangs up); this process moves the floor meanwhile (agents take breaks,
come back, log out and in again, through the Store) and every ``--sample`` seconds records
the controller's RSS and CPU (from /proc), its live greenlets and calls (its ``/metrics``),
the stand-in's RSS and CPU, and the callers up. At the end it waits for every call to end
and counts stuck agents (not idle and not in wrap-up) and calls without an outcome (placed,
seen by the controller, but no ``call-ended``, ``call-abandoned`` or ``call-rejected`` in
the event stream and no ended call record with an outcome). A caller who hung up before the
controller took its socket (sent ``connect``) never was a call for fsacd: counted apart, as
"never reached fsacd". Exit status 1 if stuck agents or calls without an outcome are not 0,
or the controller's RSS grew by more than ``--max-growth`` MB from the second to the last
quarter of the run (the first is warm-up).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from fsacd.state.connection import close, connect  # noqa: E402
from fsacd.state.store import Store  # noqa: E402
from fsacd.tools.benchprocs import ServeProc, StandinProc, free_port  # noqa: E402
from fsacd.tools.redisproc import RedisProcess  # noqa: E402
from fsacd.tools.soak_standin import contact  # noqa: E402

#: Seconds between two changes of the floor (a break, a return, a logout, a login).
FLOOR_EVERY = 1.0
PREFIX = "soak:"

CONFIG = """
[server]
listen = "127.0.0.1:{port}"
controller_id = "{cid}"
max_calls = {max_calls}

[redis]
url = "{redis_url}"
prefix = "soak:"

[freeswitch]
inbound = "{inbound}"
password_env = "{password_env}"

[http]
listen = "127.0.0.1:{http_port}"

[routes]
"5000" = "queue:support"

[queues.support]
strategy = "{strategy}"
ring_timeout = 3
wrap_up = 0.2
max_no_answer = 0
no_answer_delay = 0.5
busy_delay = 0.5
reject_delay = 0.5
"""


@dataclass
class Sample:
    t: float
    rss_mb: float  # the controller's (fsacd serve)
    greenlets: int | None  # the controller's live greenlets (its /metrics)
    calls_up: int  # callers up in the stand-in
    live_calls: int | None = None  # calls the controller handles (its /metrics)
    standin_rss_mb: float = 0.0
    cpu_pct: float = 0.0  # the controller's CPU since the sample before, % of one core
    standin_cpu_pct: float = 0.0


@dataclass
class Report:
    baseline: Sample | None = None
    calls_placed: int = 0
    duration: float = 0.0
    samples: list[Sample] = field(default_factory=list)  # during the run
    after: list[Sample] = field(default_factory=list)  # drained; and after ``settle`` s
    stuck_agents: list[str] = field(default_factory=list)
    calls_without_outcome: int = 0
    without_outcome: list[dict[str, Any]] = field(default_factory=list)  # the first 20
    never_reached: int = 0  # the caller hung up before fsacd took its socket
    failed_to_place: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    rss_growth_mb: float = 0.0
    agent_moves: int = 0  # breaks, returns, logouts and logins during the run
    serve_log: str = ""


def _metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("fsacd_greenlets", "fsacd_live_sessions"):
            out[name] = float(value)
    return out


class _Sampler:
    def __init__(self, serve: ServeProc, standin: StandinProc, http_port: int) -> None:
        self.serve, self.standin, self.http_port = serve, standin, http_port
        self.last = (time.time(), serve.stats().get("cpu", 0.0), standin.stats().get("cpu", 0.0))

    def take(self, t: float) -> Sample:
        now = time.time()
        ctl, sin = self.serve.stats(), self.standin.stats()
        m = _metrics(self.http_port)
        up = self.standin.send(cmd="status")["up"]
        t_last, c_last, s_last = self.last
        span = max(1e-6, now - t_last)
        self.last = (now, ctl.get("cpu", 0.0), sin.get("cpu", 0.0))
        g, live = m.get("fsacd_greenlets"), m.get("fsacd_live_sessions")
        return Sample(
            t=round(t, 1),
            rss_mb=round(ctl.get("rss_kib", 0.0) / 1024, 1),
            greenlets=None if g is None else int(g),
            calls_up=int(up),
            live_calls=None if live is None else int(live),
            standin_rss_mb=round(sin.get("rss_kib", 0.0) / 1024, 1),
            cpu_pct=round((ctl.get("cpu", 0.0) - c_last) * 100 / span),
            standin_cpu_pct=round((sin.get("cpu", 0.0) - s_last) * 100 / span),
        )


def _floor(store: Store, ids: list[str], rng: random.Random, end: float, moves: list[int]) -> None:
    """Agents of the floor come and go while calls run: one takes a break, one is back,
    one logs out, one logs in again (a change every ``FLOOR_EVERY`` seconds)."""
    away: list[str] = []
    while time.time() < end:
        gevent.sleep(FLOOR_EVERY)
        pick = rng.random()
        try:
            if away and pick < 0.5:
                agent = away.pop(rng.randrange(len(away)))
                store.login(agent)  # back from a break or a logout: available again
                store.set_available(agent)
            elif len(away) < len(ids) // 3:
                agent = rng.choice([a for a in ids if a not in away])
                if pick < 0.8:
                    store.set_break(agent, rng.choice(["lunch", "training", "coffee"]))
                else:
                    store.logout(agent)
                away.append(agent)
            else:
                continue
            moves[0] += 1
        except Exception:  # noqa: BLE001 - a refused change (e.g. a removed agent) is no error
            continue
    for agent in away:  # everyone back for the final count
        store.login(agent)
        store.set_available(agent)


def _count(report: Report, store: Store, placed: list[str], never: set[str]) -> None:
    """Outcomes from the event stream and the call records; calls without one."""
    done: dict[str, str] = {}
    for ev in store.all_events():
        kind = ev.get("type")
        if kind in ("call-ended", "call-abandoned"):
            done[ev["call"]] = ev.get("outcome") or kind
            if ev.get("stage") == "before-queue":  # gone before it entered the queue
                done[ev["call"]] += " (before the queue)"
        elif kind == "call-rejected":
            done[ev["call"]] = "rejected:" + (ev.get("reason") or "")
    # the stream keeps the last ``[events] max_length`` entries (100,000): a long run's
    # first calls are only in their records (``call:{id}``, kept a day after the end)
    missing = [c for c in placed if c not in done]
    for i in range(0, len(missing), 500):  # a long run: thousands, read in batches
        chunk = missing[i : i + 500]
        pipe = store.r.pipeline(transaction=False)
        for c in chunk:
            pipe.hmget(store.keys.call(c), "state", "outcome")
        for c, (state, outcome) in zip(chunk, pipe.execute(), strict=True):
            if state == "ended" and outcome:
                done[c] = outcome
    for c in placed:
        if c in done:
            continue
        if c in never:  # fsacd never had it: not a call without an outcome
            report.never_reached += 1
            continue
        report.calls_without_outcome += 1
        if len(report.without_outcome) < 20:
            rec = store.get_call(c) or {}
            report.without_outcome.append(
                {"call": c, "state": rec.get("state"), "outcome": rec.get("outcome")}
            )
    for c in placed:
        if c in done:
            report.outcomes[done[c]] = report.outcomes.get(done[c], 0) + 1


def run(
    calls: int,
    duration: float,
    agents: int,
    sample: float,
    url: str | None,
    *,
    forget_after: float = 10.0,
    settle: float = 0.0,
    log_level: str = "warning",
) -> Report:
    """``forget_after``: seconds the stand-in keeps an ended call (a late ``connect`` from
    the controller still counts it as reached); ``settle``: seconds after the drain for one
    more sample (the controller gives memory back once a busy spell is over)."""
    rng = random.Random(11)
    redis_proc = RedisProcess().start() if url is None else None
    url = url or redis_proc.url  # type: ignore[union-attr]
    r = connect(url)
    standin: StandinProc | None = None
    serve: ServeProc | None = None
    report = Report()
    try:
        store = Store(r, prefix=PREFIX, controller_id="soak-floor")
        store.sync_queues(["support"])
        standin = StandinProc(argv=["fsacd.tools.soak_standin", "--agents", str(agents)])
        ids = [str(2000 + i) for i in range(agents)]
        with store.batch() as pipe:
            for i, agent in enumerate(ids):
                store.add_agent(agent, contact(i), {"support": i + 1}, pipe=pipe)
        for agent in ids:
            store.login(agent)
        http_port = free_port()
        serve = ServeProc(url, standin.inbound, cid="soak", template=CONFIG, max_calls=5000,
                          http_port=http_port, log_level=log_level).start()  # fmt: skip
        report.serve_log = str(serve.log)
        deadline = time.time() + 10
        while not _metrics(http_port) and time.time() < deadline:
            gevent.sleep(0.1)
        gevent.sleep(0.5)
        sampler = _Sampler(serve, standin, http_port)
        report.baseline = sampler.take(0.0)
        t0 = time.time()
        end = t0 + duration
        standin.send(cmd="start", calls=calls, duration=duration, target=list(serve.address),
                     forget_after=forget_after)  # fmt: skip
        moves = [0]
        floor = gevent.spawn(_floor, store, ids, rng, end, moves)
        next_sample = t0
        while True:
            report.samples.append(sampler.take(time.time() - t0))
            if time.time() >= end:
                break
            next_sample += sample
            gevent.sleep(max(0.0, min(next_sample, end) - time.time()))
        floor.join(timeout=30)
        report.agent_moves = moves[0]
        result = standin.send(cmd="finish")  # every caller ended (and forgotten)
        deadline = time.time() + 60
        while time.time() < deadline and any(
            a["state"] not in ("idle", "wrap-up") for a in store.list_agents()
        ):
            gevent.sleep(0.2)
        gevent.sleep(1.0)
        report.after.append(sampler.take(time.time() - t0))
        report.duration = round(time.time() - t0, 1)
        placed = result["placed"]
        report.calls_placed = len(placed)
        report.failed_to_place = result["failed"]
        report.stuck_agents = [
            a["id"] for a in store.list_agents() if a["state"] not in ("idle", "wrap-up")
        ]
        _count(report, store, placed, set(result["never_reached"]))
        if settle > 0:
            gevent.sleep(settle)
            report.after.append(sampler.take(time.time() - t0))
        # flat means: the last quarter of the run no higher than the second (the first is
        # warm-up: pools, caches and the event stream filling)
        running = report.samples
        n = len(running)
        if n >= 4:
            second = [s.rss_mb for s in running[n // 4 : n // 2]]
            last = [s.rss_mb for s in running[-(n // 4) :]]
            report.rss_growth_mb = round(max(last) - max(second), 1)
    finally:
        if serve is not None:
            serve.stop()
        if standin is not None:
            standin.stop()
        close(r)
        if redis_proc is not None:
            redis_proc.stop()
    return report


def _n(v: int | None) -> str:
    return "-" if v is None else str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000, help="concurrent calls (1000)")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds (600)")
    ap.add_argument("--agents", type=int, default=150, help="agents (150)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds after the drain for a last sample (20)")  # fmt: skip
    ap.add_argument("--log-level", default="warning", help="fsacd serve's (warning)")
    ap.add_argument("--max-growth", type=float, default=50.0, help="allowed RSS growth, MB")
    ap.add_argument("--redis-url", default=None, help="default: a private redis-server")
    ap.add_argument("--json", action="store_true", help="the report as JSON")
    args = ap.parse_args(argv)
    if (
        args.calls < 1
        or args.agents < 1
        or args.duration <= 0
        or args.sample <= 0
        or args.settle < 0
    ):
        ap.error(
            "--calls, --agents, --duration and --sample must be positive, --settle not negative"
        )
    report = run(args.calls, args.duration, args.agents, args.sample, args.redis_url,
                 settle=args.settle, log_level=args.log_level)  # fmt: skip
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(f"soak: {report.calls_placed} calls in {report.duration:.0f} s, "
              f"{args.calls} concurrent, {args.agents} agents")  # fmt: skip
        print("          fsacd serve                          stand-in")
        print("   t(s)  RSS(MB)  CPU%  greenlets  live calls  RSS(MB)  CPU%  calls up")
        rows = [("before", report.baseline)] if report.baseline else []
        rows += [(f"{s.t:.1f}", s) for s in report.samples]
        rows += [(f"{s.t:.1f}*", s) for s in report.after]
        for label, s in rows:
            print(f"{label:>7} {s.rss_mb:8.1f} {s.cpu_pct:5d} {_n(s.greenlets):>10} "
                  f"{_n(s.live_calls):>11} {s.standin_rss_mb:8.1f} {s.standin_cpu_pct:5d} "
                  f"{s.calls_up:9d}")  # fmt: skip
        print("(*: after the drain, and --settle s later)")
        print(f"outcomes: {json.dumps(report.outcomes, sort_keys=True)}")
        print(f"agent breaks/returns/logouts/logins during the run: {report.agent_moves}")
        print(f"RSS growth of fsacd serve (last quarter of the run vs the second): "
              f"{report.rss_growth_mb} MB")  # fmt: skip
        print(f"stuck agents: {len(report.stuck_agents)} {report.stuck_agents}")
        print(f"never reached fsacd (caller gone before fsacd took its socket): "
              f"{report.never_reached}; failed to place: {report.failed_to_place}")  # fmt: skip
        print(f"calls without an outcome: {report.calls_without_outcome}")
        for w in report.without_outcome:
            print(f"  {w}")
        print(f"fsacd serve's log: {report.serve_log}")
    bad = (
        report.stuck_agents
        or report.calls_without_outcome
        or report.rss_growth_mb > args.max_growth
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
