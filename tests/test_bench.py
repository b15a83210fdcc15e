"""Smoke runs of the benchmarks (scripts/bench): tiny sizes, real processes (fsacd serve, the
stand-in process, a redis-server). They prove each benchmark works and reports sane figures;
no timing assertions (speed targets live in docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(module: str, args: list[str], tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / "out.json"
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    res = subprocess.run(
        [sys.executable, "-m", module, *args, "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["machine"]["cpus"] >= 1 and "python" in data["machine"]
    return data, res.stdout


def test_agents_benchmark(tmp_path: Path) -> None:
    data, text = bench("fsacd.tools.bench_agents",
                       ["--sizes", "10,30", "--picks", "5"], tmp_path)  # fmt: skip
    from fsacd.core.strategies import STRATEGIES

    for size in ("10", "30"):
        for name in STRATEGIES:
            r = data["results"][size][name]
            assert r["n"] == 5 and r["missed"] == 0, (size, name, r)
            assert 0 < r["p50"] <= r["p99"] <= r["max"]
    assert "most-idle" in text and "p50 ms" in text


@pytest.mark.parametrize("standins", [1, 2])
def test_throughput_benchmark(tmp_path: Path, standins: int) -> None:
    data, text = bench("fsacd.tools.bench_serve",
                       ["throughput", "--rates", "10", "--seconds", "1", "--agents", "10",
                        "--standins", str(standins)], tmp_path)  # fmt: skip
    assert data["standins"] == standins
    (run,) = data["runs"]
    assert run["calls"] == 10 and run["bridged"] == 10 and run["failed"] == 0
    assert run["routed_per_s"] > 0 and run["cpu_ms_per_call"] > 0
    assert run["double_offers"] == 0
    assert run["latency_ms"]["n"] == 10 and run["latency_ms"]["p50"] > 0
    assert "routed/s" in text


def test_concurrency_benchmark(tmp_path: Path) -> None:
    data, _ = bench("fsacd.tools.bench_serve",
                    ["concurrency", "--callers", "30", "--settle", "1"], tmp_path)  # fmt: skip
    assert data["hearing_moh"] == 30
    rss = data["rss_kib"]
    assert rss["baseline"] > 0 and rss["waiting"] > 0 and rss["after"] > 0
    assert data["kib_per_waiting_call"] is not None


def test_redis_cost_benchmark(tmp_path: Path) -> None:
    data, text = bench("fsacd.tools.bench_serve",
                       ["redis", "--calls", "5", "--rate", "5", "--idle", "0.5",
                        "--hot-calls", "3"], tmp_path)  # fmt: skip
    assert data["bridged"] == 5
    assert data["commands_per_call"] > 0
    assert data["by_command"]  # which commands, per call
    hot = data["hot_path"]
    assert hot["calls"] == 3 and hot["round_trips"]["p50"] >= 1
    assert hot["commands"]["p50"] >= hot["round_trips"]["p50"]
    assert "round trips" in text


@pytest.mark.parametrize("rate", [10])
def test_horizontal_benchmark(tmp_path: Path, rate: int) -> None:
    data, text = bench("fsacd.tools.bench_serve",
                       ["horizontal", "--rate", str(rate), "--seconds", "1", "--agents", "8"],
                       tmp_path)  # fmt: skip
    for key in ("one", "two"):
        run = data[key]
        assert run["bridged"] == run["calls"] == rate and run["failed"] == 0
        assert run["double_offers"] == 0
    assert data["ratio"] is not None and data["ratio"] > 0
    assert "double offers" in text


def test_double_offers_count_overlapping_legs_across_stand_ins() -> None:
    from fsacd.tools.standin_load import double_offers

    # agent a: two legs overlap (from two stand-ins' spans); b: back to back, not a double
    spans = [["a", 0.0, 2.0], ["b", 0.0, 1.0], ["a", 1.5, 3.0], ["b", 1.0, 2.0]]
    assert double_offers(spans) == 1
    assert double_offers([]) == 0
