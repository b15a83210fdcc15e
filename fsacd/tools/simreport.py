"""``fsacd simulate`` output: the table, the JSON, the waiting-callers sketch and PNG."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

BARS = " ▁▂▃▄▅▆▇█"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def _sec(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.4g} h"
    if seconds >= 60:
        return f"{seconds / 60:.4g} min"
    return f"{seconds:.4g} s"


def queue_json(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"erlang_c": r.prediction, "measured": r.measured}
    if r.erlang_a is not None:
        out["erlang_a"] = r.erlang_a
    out["ideal_replay"] = r.ideal
    out["queue"] = {"name": r.name, "strategy": r.strategy, "wrap_up": r.wrap_up}
    return out


def _inputs(args: Any, params: Any, wall: float) -> dict[str, Any]:
    return {
        "calls_per_hour": params.calls_per_hour,
        "handle_time": params.handle,
        "handle_dist": params.handle_dist,
        "agents": params.agents,
        "patience": params.patience,
        "ring_time": params.ring_time,
        "duration": params.duration,
        "warmup": params.warmup,
        "speed": args.speed,
        "service_level_threshold": params.threshold,
        "seed": params.seed,
        "wall_seconds": round(wall, 1),
    }


def run_json(args: Any, params: Any, queues: list[Any], wall: float) -> dict[str, Any]:
    if len(queues) == 1:
        out = queue_json(queues[0])
    else:
        out = {"queues": {r.name: queue_json(r) for r in queues}}
    out["inputs"] = _inputs(args, params, wall)
    return out


def as_json(args: Any, results: list[tuple[Any, list[Any], float]]) -> dict[str, Any]:
    if len(results) == 1:
        return run_json(args, *results[0])
    return {"sweep": [run_json(args, p, qs, w) for p, qs, w in results]}


def sketch(series: list[tuple[float, int]], width: int = 60) -> str:
    """Waiting callers over time as one line of block characters (max per column)."""
    if not series:
        return ""
    cols = [0] * width
    end = series[-1][0] or 1.0
    for t, n in series:
        i = min(width - 1, int(t / end * width))
        cols[i] = max(cols[i], n)
    top = max(cols) or 1
    return "".join(BARS[min(8, round(c / top * 8))] for c in cols) + f"  (max {max(cols)})"


def render(args: Any, results: list[tuple[Any, list[Any], float]]) -> str:
    lines = []
    p0 = results[0][0]
    lines.append(
        f"fsacd simulate: {p0.calls_per_hour:g} calls/h per queue, handle {p0.handle:g} s "
        f"({p0.handle_dist}), patience {'none' if p0.patience is None else f'{p0.patience:g} s'}"
        f", {_span(p0.duration)} simulated (first {_span(p0.warmup)} not measured) "
        f"at x{args.speed:g}, seed {p0.seed}"
    )
    model = "Erlang A" if p0.patience else "Erlang C"
    if len(results) > 1:
        for q in [r.name for r in results[0][1]]:
            lines.append(f"\nqueue {q}: agents -> service level ({p0.threshold:g} s), ASA, "
                         f"abandoned, occupancy ({model} / measured)")  # fmt: skip
            lines.append(f"{'agents':>6}  {'SL':>15}  {'ASA':>17}  {'abandoned':>15}  "
                         f"{'occupancy':>15}")  # fmt: skip
            for params, queues, _ in results:
                r = next(x for x in queues if x.name == q)
                e = r.erlang_a or r.prediction
                m = r.measured
                lines.append(
                    f"{params.agents:>6}"
                    f"  {_pct(e['service_level']):>7}/{_pct(m['service_level']):>7}"
                    f"  {_sec(e['asa']):>8}/{_sec(m['asa']):>8}"
                    f"  {_pct(e['abandoned']):>7}/{_pct(m['abandoned']):>7}"
                    f"  {_pct(e['occupancy']):>7}/{_pct(m['occupancy']):>7}"
                )
        lines.append(f"\nwall time {sum(w for *_, w in results):.0f} s")
        return "\n".join(lines)
    params, queues, wall = results[0]
    for r in queues:
        e, m = r.prediction, r.measured
        a = r.erlang_a
        lines.append(
            f"\nqueue {r.name} ({r.strategy}, wrap-up {r.wrap_up:g} s), {params.agents} agents,"
            f" {e['offered_load']:.2f} erlangs offered; {m['calls']} calls measured"
        )
        ideal = r.ideal
        head = (f"{'':18}{'Erlang C':>10}" + (f"{'Erlang A':>10}" if a else "")
                + f"{'ideal':>10}{'measured':>10}")  # fmt: skip
        lines.append(head)
        rows = [
            (f"service level {params.threshold:g}s", "service_level", _pct),
            ("ASA", "asa", _sec),
            ("abandoned", "abandoned", _pct),
            ("occupancy", "occupancy", _pct),
            ("waiting at all", "prob_wait", _pct),
        ]
        for label, key, f in rows:
            cells = f"{f(e.get(key)):>10}" + (f"{f(a.get(key)):>10}" if a else "")
            cells += f"{f(ideal.get(key)) if key in ideal else '':>10}"
            lines.append(f"{label:18}{cells}{f(m.get(key)) if key in m else '':>10}")
        lines.append(
            f"answered {m['answered']}, gave up {m['gave_up']}, ended by fsacd "
            f"{m['ended_by_fsacd']} {m['ended_outcomes'] or ''}, still waiting at the end "
            f"{m['still_waiting']}; wait p50 {_sec(m['wait_p50'])}, p90 {_sec(m['wait_p90'])}, "
            f"max {_sec(m['wait_max'])}"
        )
        lines.append(
            f"arrival -> bridge with a free agent: {_sec(m['setup_overhead'])} simulated "
            f"(real latency x speed; part of every measured wait)"
        )
        for w in m.get("warnings") or []:
            lines.append(f"warning: {w}")
        lines.append("ideal: the same callers (arrivals, handle times, patience) through a "
                     "perfect FCFS queue with no overhead")  # fmt: skip
        lines.append(f"waiting callers: {sketch(r.waiting_series)}")
    lines.append(f"wall time {wall:.0f} s")
    return "\n".join(lines)


def write_png(path: Path, queues: list[Any], width: int = 640, height: int = 240) -> None:
    """A line plot of waiting callers over time per queue (no plotting library needed)."""
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    img = [[(255, 255, 255)] * width for _ in range(height)]
    pad = 10
    top = max((n for r in queues for _, n in r.waiting_series), default=0) or 1
    end = max((t for r in queues for t, _ in r.waiting_series), default=0) or 1.0
    for x in range(pad, width - pad):  # axes
        img[height - pad][x] = (0, 0, 0)
    for y in range(pad, height - pad + 1):
        img[y][pad] = (0, 0, 0)
    for i, r in enumerate(queues):
        colour = colours[i % len(colours)]
        prev = None
        for t, n in r.waiting_series:
            x = pad + int(t / end * (width - 2 * pad - 1))
            y = height - pad - int(n / top * (height - 2 * pad - 1))
            if prev is not None:
                px, py = prev
                for yy in range(min(py, y), max(py, y) + 1):
                    img[yy][x] = colour
                for xx in range(px, x + 1):
                    img[py][xx] = colour
            prev = (x, y)
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in img)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))  # fmt: skip

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))  # fmt: skip
    path.write_bytes(png)
