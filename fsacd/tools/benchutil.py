"""What the benchmarks share: the machine they ran on, percentiles, the table and the JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """CPU model and count, Python, the load average when the benchmark started."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average": load,
    }


def pct(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (nearest rank); None for no values."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def summary(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50/p99/max (milliseconds by default) and the count."""
    def r(x: float | None) -> float | None:
        return None if x is None else round(x * scale, 3)

    return {"n": len(values), "p50": r(pct(values, 50)), "p99": r(pct(values, 99)),
            "max": r(max(values) if values else None)}  # fmt: skip


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def emit(name: str, result: dict[str, Any], text: str, json_path: str | None) -> None:
    """Print the table (with the machine); write the JSON to ``json_path`` (``-``: stdout)."""
    result = {"benchmark": name, "machine": machine(), **result}
    m = result["machine"]
    print(f"{name} on {m['cpus']} CPU(s) {m['cpu_model']}, Python {m['python']}, "
          f"load average {m['load_average']}")  # fmt: skip
    print(text)
    if json_path == "-":
        json.dump(result, sys.stdout, indent=2)
        print()
    elif json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
