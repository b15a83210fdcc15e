"""A stand-in load process for the benchmarks: ``python -m fsacd.tools.standin_load``.

Runs the FreeSWITCH stand-in in its own process (never in the controller's) with agent
phones ``user/*@bench.invalid`` answering after ``--answer-after`` seconds, and obeys JSON
commands on stdin, one per line, answering each with one JSON line on stdout:

- ``{"cmd": "calls", "n": 100, "rate": 50, "targets": [["127.0.0.1", 8084]], "talk": 0.2,
  "wait": 30}``: places ``n`` callers at ``rate`` per second (round robin over the
  controllers), each hanging up ``talk`` s after its bridge (or after ``wait`` s unbridged);
  answers with per-call latencies (placed -> CHANNEL_BRIDGE, seconds), failures, agent
  double offers (two legs to one agent at once), the agent legs' spans (``agent_spans``,
  to find double offers across several stand-ins) and the elapsed time;
- ``{"cmd": "hold", "n": 5000, "rate": 500, "targets": [...]}``: places callers who wait;
  answers once all of them hear hold music (or after ``wait``) with how many do;
- ``{"cmd": "hangup"}``: hangs up every caller; answers when all are down;
- ``{"cmd": "quit"}``.

The first line it prints is ``{"inbound": [host, port]}`` (its inbound event socket).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.fileobject import FileObject  # noqa: E402

from fsacd.acd.memory import freeze_startup  # noqa: E402
from fsacd.standin import FakeFreeSwitch, PhoneBehaviour  # noqa: E402

AGENT_PATTERN = "user/*@bench.invalid"


class Bridges:
    """Listener on the stand-in's bus: the time each caller was bridged."""

    def __init__(self) -> None:
        self.waits: dict[str, gevent.event.Event] = {}
        self.at: dict[str, float] = {}

    def takes(self, name: str) -> bool:
        return name == "CHANNEL_BRIDGE"

    def offer(self, event: Any) -> None:
        if event.name == "CHANNEL_BRIDGE":
            uid = event.get("Unique-ID") or ""
            ev = self.waits.pop(uid, None)
            if ev is not None:
                self.at[uid] = time.time()
                ev.set()


def agent_spans(fs: FakeFreeSwitch, since: float = 0.0) -> list[list[Any]]:
    """``[endpoint, created, ended]`` of each agent leg created at or after ``since``
    (ended: now while up), epoch seconds."""
    now = time.time()
    out: list[list[Any]] = []
    for leg in fs.legs:
        if leg.channel is None or leg.created < since:
            continue
        hungup = leg.channel.profile.times.hungup
        out.append([leg.endpoint.lower(), leg.created, hungup / 1e6 if hungup else now])
    return out


def double_offers(spans: list[list[Any]]) -> int:
    """Legs to one agent endpoint that overlap in time (an agent offered two calls), over
    :func:`agent_spans` of one or several stand-ins."""
    by_agent: dict[str, list[tuple[float, float]]] = {}
    for endpoint, start, end in spans:
        by_agent.setdefault(endpoint, []).append((start, end))
    doubles = 0
    for spans_of in by_agent.values():
        spans_of.sort()
        for (_, end), (start, _) in zip(spans_of, spans_of[1:], strict=False):
            if start < end - 1e-6:
                doubles += 1
    return doubles


def run_calls(fs: FakeFreeSwitch, bridges: Bridges, cmd: dict[str, Any]) -> dict[str, Any]:
    n, rate = int(cmd["n"]), float(cmd["rate"])
    targets = [tuple(t) for t in cmd["targets"]]
    talk, wait = float(cmd.get("talk", 0.1)), float(cmd.get("wait", 30))
    route = cmd.get("route", "queue:bench")
    lat: list[float] = []
    failed = 0

    def caller(i: int) -> None:
        nonlocal failed
        ev = gevent.event.Event()
        t0 = time.time()
        call = fs.place_call(destination="5000", caller_number=f"+4930{i:07d}",
                             variables={"fsacd_route": route},
                             socket_target=targets[i % len(targets)])  # fmt: skip
        bridges.waits[call.uuid] = ev
        if ev.wait(wait):
            lat.append(bridges.at.pop(call.uuid) - t0)
            gevent.sleep(talk)
        else:
            bridges.waits.pop(call.uuid, None)
            failed += 1
        call.hangup()
        call.channel.hungup.wait(10)  # one per caller greenlet, all in parallel

    t_start = time.time()
    jobs = []
    for i in range(n):
        due = t_start + i / rate
        gevent.sleep(max(0.0, due - time.time()))
        jobs.append(gevent.spawn(caller, i))
    placed = time.time() - t_start
    gevent.joinall(jobs, timeout=wait + talk + 30)
    spans = agent_spans(fs, t_start)
    return {
        "placed": n,
        "place_seconds": round(placed, 3),
        "latencies": lat,
        "failed": failed,
        "elapsed": round(time.time() - t_start, 3),
        "double_offers": double_offers(spans),
        "agent_spans": spans,
    }


def run_hold(fs: FakeFreeSwitch, cmd: dict[str, Any], held: list[Any]) -> dict[str, Any]:
    n, rate = int(cmd["n"]), float(cmd["rate"])
    targets = [tuple(t) for t in cmd["targets"]]
    t_start = time.time()
    base = len(held)
    for i in range(n):
        gevent.sleep(max(0.0, t_start + i / rate - time.time()))
        held.append(fs.place_call(destination="5000", caller_number=f"+4931{base + i:07d}",
                                  variables={"fsacd_route": cmd.get("route", "queue:bench")},
                                  socket_target=targets[i % len(targets)]))  # fmt: skip
    deadline = time.time() + float(cmd.get("wait", 120))
    while True:
        hearing = sum(1 for c in held if c.is_up and any(k == "moh" for k, _ in c.heard))
        if hearing >= len(held) or time.time() > deadline:
            break
        gevent.sleep(0.25)
    return {"placed": n, "hearing_moh": hearing, "up": sum(1 for c in held if c.is_up),
            "elapsed": round(time.time() - t_start, 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answer-after", type=float, default=0.0)
    args = ap.parse_args(argv)
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None)
    fs.phones.register(AGENT_PATTERN, PhoneBehaviour.answers(after=args.answer_after, talk=None))
    fs.start()
    freeze_startup()  # as fsacd serve does: no full collections of what start-up built
    bridges = Bridges()
    fs.bus.add(bridges)
    held: list[Any] = []

    def handle(cmd: dict[str, Any]) -> dict[str, Any] | None:
        what = cmd.get("cmd")
        if what == "calls":
            return run_calls(fs, bridges, cmd)
        if what == "hold":
            return run_hold(fs, cmd, held)
        if what == "hangup":
            for c in held:
                c.hangup()
            deadline = time.time() + 30
            for c in held:
                c.channel.hungup.wait(max(0.0, deadline - time.time()))
            reply = {"hung_up": sum(1 for c in held if not c.is_up)}
            held.clear()
            return reply
        return None

    return serve_commands(fs, handle)


def serve_commands(
    fs: FakeFreeSwitch, handle: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> int:
    """The stand-in process's protocol: print ``{"inbound": [host, port]}``, then answer each
    JSON command line on stdin with ``handle``'s reply (None: an unknown command) until
    ``quit`` or the end of stdin; the stand-in stops either way."""
    out = sys.stdout
    stdin = FileObject(sys.stdin, "r")
    out.write(json.dumps({"inbound": list(fs.inbound_address)}) + "\n")
    out.flush()
    try:
        for line in stdin:
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            reply = handle(cmd)
            if reply is None:
                reply = {"error": f"unknown command {cmd.get('cmd')!r}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        fs.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
