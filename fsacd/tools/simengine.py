"""The engine of ``fsacd simulate``: fsacd's real controller against the stand-in, with Poisson
callers, on the accelerated clock (:mod:`fsacd.tools.simclock`, installed before this module
is imported).

One controller (the user's queues: strategies, wrap-up, ``max_wait``, overflow, hold music,
announcements as configured) and one stand-in run in this process over loopback sockets.
Each simulated queue gets its own Poisson stream of callers (``fsacd_route=queue:NAME``) and
its own agents (``sim-NAME-i``, phones answering after ``ring_time``). A caller waits until
the stand-in bridges it (CHANNEL_BRIDGE), gives up after its patience, or is ended by fsacd
(``max_wait`` without overflow); an answered caller talks for its handle time and hangs up.
Agent occupancy is sampled from fsacd's own agent states in Redis.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event

from fsacd.acd import callflow
from fsacd.acd.controller import Controller
from fsacd.config import Config
from fsacd.core import erlang
from fsacd.core.replay import Caller, replay
from fsacd.esl.client import FreeSwitchClient
from fsacd.esl.session import InboundClient, OutboundSession
from fsacd.standin import FakeFreeSwitch, PhoneBehaviour
from fsacd.state import connection
from fsacd.state.connection import close, connect
from fsacd.tools import simclock

log = logging.getLogger(__name__)
PASSWORD_ENV = "FSACD_SIM_ESL_PASSWORD"
#: agent states in which an agent is on a call (wrap-up counts while ready_at is ahead)
BUSY_STATES = ("reserved", "ringing", "in-call")


@dataclass(frozen=True)
class Params:
    """One simulation's inputs (seconds of simulated time)."""

    calls_per_hour: float
    handle: float
    agents: int
    duration: float
    threshold: float = 20.0
    patience: float | None = None
    handle_dist: str = "exp"
    ring_time: float = 0.0
    warmup: float = 0.0
    seed: int = 1
    sample_every: float = 5.0
    drain: float | None = None  # how long to wait for callers still waiting at the end


@dataclass
class CallRec:
    queue: str
    arrived: float
    patience: float | None
    handle: float
    uuid: str = ""
    answered_at: float | None = None
    gave_up_at: float | None = None
    ended_at: float | None = None  # fsacd ended it before an answer (max_wait, error)
    cause: str = ""

    @property
    def wait(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.arrived


@dataclass
class QueueResult:
    name: str
    strategy: str
    wrap_up: float
    prediction: dict[str, Any]
    erlang_a: dict[str, Any] | None
    ideal: dict[str, Any]
    measured: dict[str, Any]
    waiting_series: list[tuple[float, int]] = field(default_factory=list)


class BridgeWatch:
    """An in-process listener on the stand-in's event bus: wakes the caller bridged."""

    def __init__(self) -> None:
        self.waits: dict[str, tuple[CallRec, gevent.event.Event]] = {}

    def takes(self, name: str) -> bool:
        return name == "CHANNEL_BRIDGE"

    def offer(self, event: Any) -> None:
        if event.name != "CHANNEL_BRIDGE":
            return
        hit = self.waits.pop(event.get("Unique-ID") or "", None)
        if hit is not None:
            hit[0].answered_at = time.time()
            hit[1].set()


#: seconds the inbound client waits for FreeSWITCH (FreeSwitchClient's default), wall clock
INBOUND_TIMEOUT = 5.0
_stretched: list[float] = []


def stretch_guards(speed: float) -> None:
    """Keep the guards against a dead peer on the wall clock: multiply them by ``speed``.

    They are not call-center behaviour (they never fire in a healthy run) but protection
    against a switch or a Redis that stopped answering: event-socket reply timeouts, the
    application start timeout, the inbound connect/auth timeout, Redis socket and pool
    waits, the stand-in's connect timeout (set in :meth:`Simulation._start`). Scaled, a CPU
    stall of 1/speed of them (83 ms at speed 120 on a shared machine) would end calls as if
    the switch had died. ``server.command_timeout`` is stretched in :func:`sim_config`.
    """
    if _stretched:
        return
    _stretched.append(speed)
    callflow.APP_TIMEOUT *= speed
    callflow.APP_START_TIMEOUT *= speed
    callflow.BRIDGE_MARGIN *= speed  # a bridge whose result never comes
    for cls in (InboundClient, OutboundSession):
        kw = cls.__init__.__kwdefaults__ or {}
        for name in ("timeout", "command_timeout"):
            if name in kw:
                kw[name] = kw[name] * speed
    for k in ("socket_timeout", "socket_connect_timeout"):
        connection.CLIENT_OPTIONS[k] = connection.CLIENT_OPTIONS[k] * speed
    connection.POOL_WAIT = connection.POOL_WAIT * speed


def sim_config(cfg: Config, url: str | None, prefix: str, inbound: tuple[str, int]) -> Config:
    """The user's config with this run's controller, Redis and stand-in, and nothing that
    reaches outside (CRM, webhooks)."""
    server = dataclasses.replace(
        cfg.server,
        listen="127.0.0.1:0",
        controller_id="sim",
        command_timeout=cfg.server.command_timeout * simclock.speed(),
    )
    redis = dataclasses.replace(cfg.redis, url=url, prefix=prefix)
    fs = dataclasses.replace(
        cfg.freeswitch,
        inbound=f"{inbound[0]}:{inbound[1]}",
        password_env=PASSWORD_ENV,
        password_file=None,
    )
    queues = {n: dataclasses.replace(q, webhook_url=None) for n, q in cfg.queues.items()}
    return dataclasses.replace(cfg, server=server, redis=redis, freeswitch=fs, queues=queues,
                               crm=None)  # fmt: skip


class Simulation:
    """One run: ``Simulation(cfg, queues, params, url, prefix).run(progress)``."""

    def __init__(
        self, cfg: Config, queues: list[str], params: Params, url: str | None, prefix: str
    ) -> None:
        self.cfg = cfg
        self.queues = queues
        self.p = params
        self.url = url
        self.prefix = prefix
        self.clean = True
        self.rng = random.Random(params.seed)
        self.calls: list[CallRec] = []
        self.waiting: dict[str, int] = dict.fromkeys(queues, 0)
        self.series: dict[str, list[tuple[float, int]]] = {q: [] for q in queues}
        self.busy: dict[str, list[float]] = {q: [] for q in queues}
        #: per sample with callers waiting: agents free in fsacd's state (should be ~0)
        self.idle_waiting: dict[str, list[int]] = {q: [] for q in queues}
        self.watch = BridgeWatch()
        self.overhead: list[float] = []
        self.t0 = 0.0
        self.lag = 0.0  # how late (simulated s) the latest caller arrived: the process lagging
        self.cpu = 0.0  # the fraction of one core this process used during the run

    # --- set-up -------------------------------------------------------------------------------

    def _start(self) -> None:
        os.environ[PASSWORD_ENV] = "ClueCon"
        # a stand-in "media tick" is scaled with the clock: 20 ms of simulated time
        stretch_guards(simclock.speed())
        self.fs = FakeFreeSwitch(
            inbound=("127.0.0.1", 0),
            heartbeat_interval=None,
            connect_timeout=5.0 * simclock.speed(),
        ).start()
        self.fs.bus.add(self.watch)
        cfg = sim_config(self.cfg, self.url, self.prefix, self.fs.inbound_address)
        self.r = connect(cfg.redis.url, cfg.redis.data_dir)
        client = FreeSwitchClient(
            self.fs.inbound_address, "ClueCon", timeout=INBOUND_TIMEOUT * simclock.speed()
        )
        self.ctl = Controller(cfg, r=self.r, fs=client)
        self.ctl.matcher.rng = random.Random(self.p.seed + 1)
        self.store = self.ctl.store
        self.ctl.start()
        self.fs.socket_target = self.ctl.address
        self.agents: dict[str, list[str]] = {}
        behaviour = PhoneBehaviour.answers(after=self.p.ring_time, talk=None)
        for q in self.queues:
            ids = [f"sim-{q}-{i + 1}" for i in range(self.p.agents)]
            self.agents[q] = ids
            for i, agent in enumerate(ids):
                contact = f"user/{agent}@sim.invalid"
                self.fs.phones.register(contact, behaviour)
                self.store.add_agent(agent, contact, {q: i + 1})
                self.store.login(agent)

    def _stop(self) -> None:
        logging.getLogger("fsacd").setLevel(logging.ERROR)  # the shutdown's reconnect notes
        try:
            for call in list(self.fs.calls):
                call.hangup()
            self.ctl.stop(timeout=2)
        except (Exception, gevent.Timeout):  # noqa: BLE001 - the figures are taken already
            log.debug("stopping the controller", exc_info=True)
        finally:
            self.fs.stop()
            if self.clean:  # remove this run's keys
                for key in self.r.scan_iter(match=f"{self.prefix}*", count=1000):
                    self.r.delete(key)
            close(self.r)

    # --- callers ------------------------------------------------------------------------------

    def _caller(self, rec: CallRec, count: bool = True) -> None:
        ev = gevent.event.Event()
        call = self.fs.place_call(
            destination="sim",
            caller_number=f"+4930{len(self.calls) % 10_000_000:07d}",
            caller_name="Sim Caller",
            variables={"fsacd_route": f"queue:{rec.queue}"},
        )
        rec.uuid = call.uuid
        self.watch.waits[call.uuid] = (rec, ev)
        if count:
            self.waiting[rec.queue] += 1
        try:
            gevent.wait([ev, call.channel.hungup], timeout=rec.patience, count=1)
        finally:
            self.watch.waits.pop(call.uuid, None)
            if count:
                self.waiting[rec.queue] -= 1
        if rec.answered_at is not None:
            gevent.sleep(rec.handle)
            call.hangup()
        elif call.channel.hungup.is_set():
            rec.ended_at = time.time()
            rec.cause = call.hangup_cause or ""
        else:
            rec.gave_up_at = time.time()
            call.hangup()

    def _arrivals(self, queue: str, until: float) -> None:
        rate = self.p.calls_per_hour / 3600.0
        rng = random.Random(f"{self.p.seed}:{queue}")
        patience_rng = random.Random(f"{self.p.seed}:{queue}:patience")
        handle_rng = random.Random(f"{self.p.seed}:{queue}:handle")
        at = time.time()
        while True:
            at += rng.expovariate(rate)
            if at >= until:
                return
            gevent.sleep(max(0.0, at - time.time()))
            self.lag = max(self.lag, time.time() - at)
            patience = (
                patience_rng.expovariate(1.0 / self.p.patience) if self.p.patience else None
            )
            if self.p.handle_dist == "fixed":
                handle = self.p.handle
            else:
                handle = handle_rng.expovariate(1.0 / self.p.handle)
            rec = CallRec(queue, time.time(), patience, handle)
            self.calls.append(rec)
            gevent.spawn(self._caller, rec)

    def _sampler(self) -> None:
        ids = {a: q for q, agents in self.agents.items() for a in agents}
        while True:
            now = time.time()
            try:
                agents = self.store.list_agents()
            except Exception:  # noqa: BLE001 - a sample lost to a Redis hiccup is skipped
                agents = []
            busy = dict.fromkeys(self.queues, 0)
            free = dict.fromkeys(self.queues, 0)
            for a in agents:
                q = ids.get(a["id"])
                if q is None:
                    continue
                state = a.get("state")
                if state in BUSY_STATES or (state == "wrap-up" and (a.get("ready_at") or 0) > now):
                    busy[q] += 1
                elif a.get("status") == "available":
                    free[q] += 1
            self._prune()
            for q in self.queues:
                self.series[q].append((now - self.t0, self.waiting[q]))
                if now - self.t0 >= self.p.warmup and agents:
                    self.busy[q].append(busy[q] / max(1, self.p.agents))
                    if self.waiting[q] > 0:
                        self.idle_waiting[q].append(free[q])
            gevent.sleep(self.p.sample_every)

    def _prune(self) -> None:
        """Let go of finished callers and legs: the stand-in keeps them for tests to inspect,
        and a heap that grows all run makes the garbage collector's pauses grow with it."""
        self.fs.calls[:] = [c for c in self.fs.calls if c.is_up]
        self.fs.legs[:] = [g for g in self.fs.legs if g.channel is not None and g.channel.up()]

    def _calibrate(self) -> None:
        """A few calls one at a time to free agents: what arrival → bridge costs in simulated
        seconds at this speed (real latency × speed): the floor of every measured wait."""
        q = self.queues[0]
        for _ in range(8):
            rec = CallRec(q, time.time(), None, 0.0)
            g = gevent.spawn(self._caller, rec, False)
            g.join(timeout=60)
            if rec.wait is not None:
                self.overhead.append(rec.wait)
        log.debug("calibration waits: %s", self.overhead)
        del self.overhead[:3]  # the first calls open connections and load scripts

    # --- the run ------------------------------------------------------------------------------

    def run(self, progress: Callable[[float, int, int], None] | None = None) -> list[QueueResult]:
        self._start()
        try:
            self._calibrate()
            wrap = max(self.cfg.queues[q].wrap_up for q in self.queues)
            gevent.sleep(wrap + 1.0)  # the calibration's agents out of wrap-up
            gc.collect()
            gc.freeze()  # what start-up built is not scanned by every collection
            self.t0 = time.time()
            end = self.t0 + self.p.duration
            jobs = [gevent.spawn(self._arrivals, q, end) for q in self.queues]
            sampler = gevent.spawn(self._sampler)
            cpu0, wall0 = sum(os.times()[:2]), simclock.real_monotonic()
            wall_end = simclock.real_monotonic() + self.p.duration / simclock.speed()
            while time.time() < end:
                gevent.sleep(min(self.p.duration / 100, end - time.time()))
                if progress:
                    progress((time.time() - self.t0) / self.p.duration, len(self.calls),
                             sum(self.waiting.values()))  # fmt: skip
            gevent.joinall(jobs, timeout=max(60.0, self.p.duration / 10))
            sampler.kill()
            wall = simclock.real_monotonic() - wall0
            self.cpu = (sum(os.times()[:2]) - cpu0) / wall if wall > 0 else 0.0
            drain = self.p.drain if self.p.drain is not None else max(600.0, self.p.duration / 10)
            deadline = time.time() + drain
            while time.time() < deadline and any(self._pending(c) for c in self.calls):
                gevent.sleep(1.0)
            log.debug("run overran its wall time by %.1f s", simclock.real_monotonic() - wall_end)
            dump = os.environ.get("FSACD_SIM_DUMP")
            if dump:  # every caller, for looking into a run
                with open(dump, "w") as fh:
                    json.dump([dataclasses.asdict(c) | {"t": c.arrived - self.t0}
                               for c in self.calls], fh)  # fmt: skip
            self.final_agents = {a["id"]: a for a in self.store.list_agents()}
            return self._results()
        finally:
            self._stop()

    def _warnings(self) -> list[str]:
        median = statistics.median(self.overhead) if self.overhead else None
        w = overhead_warning(median, simclock.speed(), self.p.handle, self.p.threshold)
        out = [w] if w else []
        if self.cpu > 0.7 or self.lag > 5.0:
            out.append(
                f"the simulation used {self.cpu * 100:.0f} % of a core and its callers arrived "
                f"up to {self.lag:.1f} s late: the process could not keep up with "
                f"{self.p.calls_per_hour * len(self.queues) * simclock.speed() / 3600:.1f} "
                f"calls per wall second, so waits grow with its own backlog; lower --speed"
            )
        return out

    @staticmethod
    def _pending(c: CallRec) -> bool:
        return c.answered_at is None and c.gave_up_at is None and c.ended_at is None

    # --- results ------------------------------------------------------------------------------

    def _results(self) -> list[QueueResult]:
        out = []
        rate = self.p.calls_per_hour / 3600.0
        for q in self.queues:
            qcfg = self.cfg.queues[q]
            service = self.p.handle + qcfg.wrap_up + self.p.ring_time
            pred_c = erlang.predict_c(self.p.agents, rate, service, self.p.threshold)
            pred_a = (
                erlang.predict_a(self.p.agents, rate, service, self.p.patience, self.p.threshold)
                if self.p.patience
                else None
            )
            mine = [c for c in self.calls if c.queue == q]
            calls = [c for c in mine if c.arrived - self.t0 >= self.p.warmup]
            ideal = replay(
                [Caller(c.arrived - self.t0, c.handle + qcfg.wrap_up + self.p.ring_time,
                        c.patience, c.arrived - self.t0 >= self.p.warmup) for c in mine],
                self.p.agents,
                self.p.threshold,
            )  # fmt: skip
            out.append(
                QueueResult(
                    q,
                    qcfg.strategy,
                    qcfg.wrap_up,
                    _prediction(pred_c),
                    _prediction(pred_a) if pred_a else None,
                    {k: (round(v, 4) if isinstance(v, float) else v) for k, v in ideal.items()},
                    self._measure(calls, self.busy[q]) | {
                        "free_agents_while_callers_wait": round(
                            statistics.fmean(self.idle_waiting[q]), 2
                        ) if self.idle_waiting[q] else 0.0
                    },
                    self.series[q],
                )
            )
        return out

    def _measure(self, calls: list[CallRec], busy: list[float]) -> dict[str, Any]:
        n = len(calls)
        ids = {a for q in {c.queue for c in calls} for a in self.agents.get(q, [])}
        t = self.p.threshold
        answered = [c for c in calls if c.answered_at is not None]
        waits = sorted(c.wait for c in answered if c.wait is not None)
        within = sum(1 for w in waits if w <= t)
        gave_up = sum(1 for c in calls if c.gave_up_at is not None)
        ended = sum(1 for c in calls if c.ended_at is not None)
        pending = sum(1 for c in calls if self._pending(c))
        outcomes: dict[str, int] = {}
        for c in calls:
            if c.ended_at is not None:
                call = self.store.get_call(c.uuid) or {}
                key = call.get("outcome") or c.cause or "unknown"
                outcomes[key] = outcomes.get(key, 0) + 1

        def q(p: float) -> float | None:
            return round(waits[min(len(waits) - 1, int(p * len(waits)))], 3) if waits else None

        return {
            "calls": n,
            "service_level": round(within / n, 4) if n else None,
            "asa": round(statistics.fmean(waits), 3) if waits else None,
            "abandoned": round(gave_up / n, 4) if n else None,
            "occupancy": round(statistics.fmean(busy), 4) if busy else None,
            "answered": len(answered),
            "gave_up": gave_up,
            "ended_by_fsacd": ended,
            "ended_outcomes": outcomes,
            "still_waiting": pending,
            "wait_p50": q(0.5),
            "wait_p90": q(0.9),
            "wait_max": round(waits[-1], 3) if waits else None,
            "setup_overhead": round(statistics.median(self.overhead), 3) if self.overhead else None,
            "warnings": self._warnings(),
            "process_cpu": round(self.cpu, 3),
            "arrival_lag": round(self.lag, 3),
            "agents_on_break_at_end": sorted(
                f"{a['id']}:{a.get('break_reason') or '?'}"
                for a in getattr(self, "final_agents", {}).values()
                if a.get("status") == "on-break" and a["id"] in ids
            ),
            "max_waiting": max((w for _, w in self.series[calls[0].queue]), default=0)
            if calls
            else 0,
        }


def overhead_warning(overhead: float | None, speed: float, handle: float, threshold: float,
                     ) -> str | None:  # fmt: skip
    """A warning when the machine's real latency, times the speed, is not small against the
    handle time (1 %) or the service-level threshold (10 %)."""
    if not overhead:
        return None
    limit = min(0.01 * handle, 0.1 * threshold) if threshold > 0 else 0.01 * handle
    if overhead <= limit:
        return None
    suggest = max(1, int(speed * limit / overhead))
    return (
        f"arrival -> bridge costs {overhead:.1f} s simulated at speed {speed:g} "
        f"({overhead / speed * 1000:.0f} ms of real time): every measured wait and every "
        f"call's agent time grow by about that; for figures closer to the engine's own, "
        f"run at --speed {suggest} or less (or on a quieter machine)"
    )


def _prediction(p: erlang.Prediction) -> dict[str, Any]:
    d = p.as_dict()
    for k in ("asa",):
        if math.isinf(d[k]):
            d[k] = None
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}
