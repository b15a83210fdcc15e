"""The soak's load process: ``python -m fsacd.tools.soak_standin --agents N``.

Runs the FreeSWITCH stand-in (its inbound event socket for the controller) and the callers
in a process of their own, never in the controller's (fsacd/tools/soak.py drives it). The
agents' phones ``user/2000@soak``, ``user/2001@soak``, ... behave in a mix (answer quickly
or slowly, never, busy, reject, answer and hang up at once). JSON commands on stdin, one
per line, each answered with one JSON line on stdout:

- ``{"cmd": "start", "calls": 1000, "duration": 600, "target": [host, port],
  "forget_after": 10}``: keeps ``calls`` callers up for ``duration`` s (in the background;
  answers at once). A caller gives up after 2-60 s (while waiting or ringing) or talks until
  the agent hangs up; all still up at the end hang up then. ``forget_after`` s after its
  end a caller is forgotten (the stand-in keeps every call for tests to inspect: here that
  would be the memory growth);
- ``{"cmd": "status"}``: callers up, placed, and the stand-in's channels;
- ``{"cmd": "finish"}``: answers once every caller ended (and was forgotten)
  with the placed calls' uuids and those that never reached the controller: the caller
  hung up before the controller sent ``connect`` on its socket (so fsacd never saw it);
- ``{"cmd": "quit"}``.

The first line it prints is ``{"inbound": [host, port]}``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from fsacd.standin import FakeFreeSwitch  # noqa: E402
from fsacd.standin import PhoneBehaviour as P  # noqa: E402
from fsacd.tools.standin_load import serve_commands  # noqa: E402

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

#: seconds a caller's call, legs and sockets are kept after its end (then forgotten: the
#: stand-in keeps every call for tests to inspect, here that would be the memory growth)
FORGET_AFTER = 10.0


def contact(i: int) -> str:
    return f"user/{2000 + i}@soak"


class Load:
    def __init__(self, fs: FakeFreeSwitch, seed: int) -> None:
        self.fs = fs
        self.rng = random.Random(seed)
        self.up = 0  # callers spawned and not yet ended (a caller counts from its spawn)
        self.placed: list[str] = []
        self.never_reached: list[str] = []
        self.failed = 0  # place_call raised
        self.jobs: list[gevent.Greenlet] = []
        self.placer: gevent.Greenlet | None = None
        self.forget_after = FORGET_AFTER

    def caller(self, target: tuple[str, int], end: float) -> None:
        fs, rng = self.fs, self.rng
        patience = min(rng.choice([2.0, 5.0, 30.0, 60.0, 60.0]), max(0.5, end - time.time()))
        try:
            call = fs.place_call(destination="5000", socket_target=target,
                                 caller_number=f"+49221{rng.randrange(10**7, 10**8)}")  # fmt: skip
        except Exception:  # noqa: BLE001 - counted, the load goes on
            self.up -= 1
            self.failed += 1
            return
        self.placed.append(call.uuid)
        try:
            call.wait_hangup(patience)
        except Exception:  # noqa: BLE001 - still up: the caller hangs up now
            call.hangup()
        finally:
            self.up -= 1
        gevent.sleep(self.forget_after)  # the agent legs end too; a late connect has come
        ch = call.channel
        if not any(li.connected.is_set() for li in ch.listeners):
            self.never_reached.append(call.uuid)
        try:
            fs.calls.remove(call)
        except ValueError:
            pass
        fs.legs[:] = [leg for leg in fs.legs if leg.call is not call]
        fs.listeners[:] = [li for li in fs.listeners if li.running]
        ch.listeners.clear()

    def place(self, calls: int, duration: float, target: tuple[str, int]) -> None:
        t0 = time.time()
        end = t0 + duration
        while time.time() < end:
            while self.up < calls and time.time() < end:
                self.up += 1
                self.jobs.append(gevent.spawn(self.caller, target, end))
                gevent.sleep(0.002)
            self.jobs = [j for j in self.jobs if not j.dead]
            gevent.sleep(0.05)

    def finish(self) -> dict[str, Any]:
        if self.placer is not None:
            self.placer.join()
        gevent.joinall(self.jobs, timeout=120 + self.forget_after)
        return {
            "placed": self.placed,
            "never_reached": self.never_reached,
            "failed": self.failed,
            "still_up": self.up,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=150)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), heartbeat_interval=None)
    rng = random.Random(args.seed)
    for i in range(args.agents):
        fs.phones.register(contact(i), BEHAVIOURS[i % len(BEHAVIOURS)](rng))
    fs.start()
    load = Load(fs, args.seed + 1)

    def handle(cmd: dict[str, Any]) -> dict[str, Any] | None:
        what = cmd.get("cmd")
        if what == "start":
            target = (cmd["target"][0], int(cmd["target"][1]))
            load.forget_after = float(cmd.get("forget_after", FORGET_AFTER))
            load.placer = gevent.spawn(
                load.place, int(cmd["calls"]), float(cmd["duration"]), target
            )
            return {"ok": True}
        if what == "status":
            return {"up": load.up, "placed": len(load.placed),
                    "channels": len(fs.all_channels)}  # fmt: skip
        if what == "finish":
            return load.finish()
        return None

    return serve_commands(fs, handle)


if __name__ == "__main__":
    raise SystemExit(main())
