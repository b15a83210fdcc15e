"""``fsacd web`` (/metrics, token, pages, SSE, /agent/ID), ``fsacd serve``'s /healthz /readyz
/metrics, and the CLI's ``fsacd stats`` / ``fsacd watch`` / ``agent show``, while calls flow
through the stand-in."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from fsacd.cli.main import main
from fsacd.config import load_text
from fsacd.standin import PhoneBehaviour as P
from fsacd.state.stats import StatsStore
from fsacd.web.server import WebError, access_token, make_server
from tests.acd_harness import Acd, wait_for
from tests.test_figures import QUEUES, small_shift

TOKEN = "s3cret-token-0123456789"

#: the harness appends the queue tables to its config: serve's endpoint rides along
WITH_HTTP = QUEUES + '\n[http]\nlisten = "127.0.0.1:0"\n'


def start_web(acd: Acd):
    server = make_server(acd.cfg, StatsStore.of(acd.store), ("127.0.0.1", 0))
    server.start()
    host, port = server.address[:2]
    return server, f"http://{host}:{port}"


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_what_the_calls_did(redis_url):
    acd = Acd(redis_url, queues=QUEUES)
    server, base = start_web(acd)
    try:
        small_shift(acd)
        wait_for(acd.all_agents_free, timeout=10, what="agents free")
        res = httpx.get(f"{base}/metrics", timeout=5)
        assert res.status_code == 200
        m = samples(res.text)
        q = (("queue", "support"),)
        assert m[("fsacd_calls_total", (("outcome", "answered"), *q))] == 4
        assert m[("fsacd_calls_total", (("outcome", "abandoned"), *q))] == 1
        assert m[("fsacd_calls_offered_total", q)] == 5
        assert m[("fsacd_calls_answered_in_service_level_total", q)] == 4
        assert m[("fsacd_queue_waiting_calls", q)] == 0
        assert m[("fsacd_queue_longest_wait_seconds", q)] == 0
        assert m[("fsacd_queue_service_level_ratio", q)] == pytest.approx(0.8)
        assert m[("fsacd_agents", (("state", "idle"),))] == 4
        assert m[("fsacd_queue_wait_seconds_count", q)] == 5
        assert m[("fsacd_queue_wait_seconds_bucket", (("le", "+Inf"), *q))] == 5
        assert m[("fsacd_offer_ring_seconds_count", q)] == 4
        assert m[("fsacd_talk_seconds_total", q)] > 4.0
        # the snapshot the wallboard shows says the same
        snap = httpx.get(f"{base}/api/snapshot", timeout=5).json()
        sup = next(x for x in snap["queues"] if x["name"] == "support")
        assert (sup["offered"], sup["answered"], sup["abandoned"]) == (5, 4, 1)
        assert sup["service_level"] == pytest.approx(0.8)
        assert snap["agents_by_state"]["idle"] == 4
    finally:
        server.stop()
        acd.stop()


def test_wallboard_pushes_snapshots_and_agent_page_shows_the_pop(redis_url):
    acd = Acd(redis_url, queues=QUEUES)
    server, base = start_web(acd)
    try:
        page = httpx.get(f"{base}/", timeout=5)
        assert page.status_code == 200 and "EventSource" in page.text
        assert "text/html" in page.headers["content-type"]
        acd.agent("1001", P.answers(after=0.2, talk=30), {"support": 1})
        call = acd.fs.place_call(destination="5000")
        call.wait_bridged(10)
        with httpx.stream("GET", f"{base}/events/snapshot", timeout=10) as res:
            assert res.headers["content-type"].startswith("text/event-stream")
            for line in res.iter_lines():
                if line.startswith("data: "):
                    snap = json.loads(line[6:])
                    break
        sup = next(x for x in snap["queues"] if x["name"] == "support")
        assert sup["talking"] == 1 and sup["answered"] == 1
        assert snap["agents"][0]["activity"] == "in-call"
        view = httpx.get(f"{base}/api/agent/1001", timeout=5).json()
        assert view["agent"]["call"] == call.uuid and view["agent"]["activity"] == "in-call"
        assert view["pop"]["call"] == call.uuid
        assert view["pop"]["number"] == "+4922129191999"
        assert "data-agent='1001'" in httpx.get(f"{base}/agent/1001", timeout=5).text
        assert httpx.get(f"{base}/agent/", timeout=5).status_code == 404
        call.hangup()
    finally:
        server.stop()
        acd.stop()


def test_token_is_needed_beyond_loopback_and_checked(redis_url, monkeypatch):
    cfg = load_text(f'[redis]\nurl = "{redis_url}"\n[queues.support]\n', env={})
    monkeypatch.delenv("FSACD_WEB_TOKEN", raising=False)
    with pytest.raises(WebError, match=r"\(beyond loopback\) needs an access token"):
        access_token(cfg, "0.0.0.0")
    assert access_token(cfg, "127.0.0.1") is None
    monkeypatch.setenv("FSACD_WEB_TOKEN", "short")
    with pytest.raises(WebError, match="shorter than 16"):
        access_token(cfg, "0.0.0.0")
    monkeypatch.setenv("FSACD_WEB_TOKEN", TOKEN)
    acd = Acd(redis_url, queues=QUEUES)
    server, base = start_web(acd)
    try:
        for path in ("/", "/metrics", "/api/snapshot", "/events/snapshot", "/agent/1001"):
            res = httpx.get(base + path, timeout=5)
            assert res.status_code == 401, path
            assert "token" in res.text
        assert httpx.get(base + "/metrics?token=wrong", timeout=5).status_code == 401
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(base + "/metrics", headers=auth, timeout=5).status_code == 200
        res = httpx.get(f"{base}/?token={TOKEN}", timeout=5)
        assert res.status_code == 200 and "fsacd_token=" in res.headers["set-cookie"]
        cookies = {"fsacd_token": TOKEN}
        assert httpx.get(base + "/api/snapshot", cookies=cookies, timeout=5).status_code == 200
    finally:
        server.stop()
        acd.stop()


def test_serve_health_ready_and_process_metrics(redis_url):
    acd = Acd(redis_url, queues=WITH_HTTP)
    try:
        assert acd.ctl.health is not None
        host, port = acd.ctl.health.address
        base = f"http://{host}:{port}"
        assert httpx.get(base + "/healthz", timeout=5).text == "ok\n"
        assert httpx.get(base + "/readyz", timeout=5).status_code == 200
        acd.agent("1001", P.answers(after=0.2, talk=0.3), {"support": 1})
        call = acd.fs.place_call(destination="5000")
        call.wait_bridged(10)
        m = samples(httpx.get(base + "/metrics", timeout=5).text)
        assert m[("fsacd_live_sessions", ())] == 1
        assert m[("fsacd_greenlets", ())] > 1
        assert m[("fsacd_routing_seconds_count", ())] == 1
        assert m[("fsacd_redis_ping_seconds_count", ())] >= 1
        assert ("fsacd_esl_api_seconds_count", ()) in m
        call.wait_hangup(10)
        acd.ctl.stopping = True  # what a drain sets first
        res = httpx.get(base + "/readyz", timeout=5)
        assert res.status_code == 503 and "draining" in res.text
    finally:
        acd.stop()


@pytest.fixture
def cli(redis_url, tmp_path):
    p = tmp_path / "fsacd.toml"
    p.write_text(QUEUES + '\n[routes]\n"5000" = "queue:support"\n')
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, ["--config", str(p), *args], env={"REDIS_URL": redis_url})

    return invoke


def test_stats_watch_and_agent_show_after_a_small_shift(redis_url, cli):
    acd = Acd(redis_url, queues=QUEUES)
    try:
        small_shift(acd)
        wait_for(acd.all_agents_free, timeout=10, what="agents free")
    finally:
        acd.stop()
    res = cli("stats", "--queue", "support", "--json")
    assert res.exit_code == 0, res.output
    one = json.loads(res.output)
    assert {"offered", "answered", "abandoned", "service_level", "asa", "aht",
            "longest_wait"} <= set(one)
    assert (one["offered"], one["answered"], one["abandoned"]) == (5, 4, 1)
    assert one["service_level"] == 0.8 and one["asa"] >= 0 and one["aht"] > 1
    assert one["longest_wait"] >= 0.5
    res = cli("stats", "--json", "--since", "1h")
    data = json.loads(res.output)
    assert data["queues"]["support"]["answered"] == 4
    assert sum(a["answered"] for a in data["agents"].values()) == 4
    res = cli("stats")
    assert res.exit_code == 0 and "support" in res.output and "80%" in res.output
    for bad in (("--queue", "nosuch"), ("--since", "yesterday"), ("--agent", "nobody")):
        res = cli("stats", *bad)
        assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output
    res = cli("watch", "--once")
    assert res.exit_code == 0, res.output
    assert "support" in res.output and "80%" in res.output and "1000" in res.output
    res = cli("agent", "show", "1000", "--json")
    today = json.loads(res.output)["today"]
    assert today["answered"] == 1 and today["time_in_state"]["in-call"] > 1
    res = cli("agent", "show", "1000")
    assert "today.time_in_state" in res.output and "in-call" in res.output


def test_watch_shows_a_waiting_caller(redis_url, cli):
    acd = Acd(redis_url, queues=QUEUES)
    try:
        call = acd.fs.place_call(destination="5000")
        wait_for(lambda: acd.store.waiting_count("support") == 1, what="caller waiting")
        time.sleep(1.1)
        res = cli("watch", "--once")
        assert res.exit_code == 0, res.output
        row = next(line for line in res.output.splitlines() if line.strip().startswith("support"))
        assert row.split()[1] == "1"  # waiting
        assert row.split()[2] in ("1s", "2s", "3s", "4s", "5s")  # longest wait
        call.hangup()
    finally:
        acd.stop()


def test_web_refuses_to_listen_beyond_loopback_without_a_token(cli, monkeypatch):
    monkeypatch.delenv("FSACD_WEB_TOKEN", raising=False)
    res = cli("web", "--listen", "0.0.0.0:0")
    assert res.exit_code == 1
    assert "needs an access token" in res.output and "Traceback" not in res.output
    res = cli("web", "--listen", "nohost")
    assert res.exit_code == 1 and "HOST:PORT" in res.output


def test_json_log_lines_carry_the_call_id():
    import logging

    from fsacd.acd.logs import JsonFormatter

    rec = logging.LogRecord("fsacd.acd.callflow", logging.INFO, __file__, 1,
                            "call %s: bridged to %s", ("3f2a9c1e-0000-4000-8000-1234567890ab",
                                                      "1001"), None)
    line = json.loads(JsonFormatter().format(rec))
    assert line["call"] == "3f2a9c1e-0000-4000-8000-1234567890ab"
    assert line["level"] == "info" and line["msg"].startswith("call 3f2a9c1e")
    rec = logging.LogRecord("x", logging.WARNING, __file__, 1, "no call here", (), None)
    assert "call" not in json.loads(JsonFormatter().format(rec))


def test_monitoring_config_keys_and_their_docs():
    import dataclasses
    from pathlib import Path

    from fsacd.config.model import HttpConfig, Thresholds, WebConfig

    text = """
[web]
listen = "0.0.0.0:9000"
token_file = "/run/fsacd/web-token"
refresh = 2
title = "Floor 3"
[web.thresholds]
wait_warn = 10
sl_alert = 0.5
[http]
listen = "127.0.0.1:9184"
[stats]
timezone = "Europe/Berlin"
[events]
max_length = 5000
max_age = 86400
[log]
format = "json"
[queues.support]
service_level_seconds = 30
"""
    cfg = load_text(text, env={})
    assert cfg.web.listen == "0.0.0.0:9000" and cfg.web.token_file == "/run/fsacd/web-token"
    assert cfg.web.token_env is None and cfg.web.refresh == 2 and cfg.web.title == "Floor 3"
    assert cfg.web.thresholds.wait_warn == 10 and cfg.web.thresholds.sl_alert == 0.5
    assert cfg.http.listen == "127.0.0.1:9184"
    m = cfg.monitoring
    assert (m.timezone, m.events_max_length, m.events_max_age, m.log_format) == (
        "Europe/Berlin", 5000, 86400, "json")
    assert cfg.queues["support"].service_level_seconds == 30
    from fsacd.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_text('[web]\nlisten = "x"\nrefresh = 0\n[web.thresholds]\nsl_warn = 2\n'
                  '[stats]\ntimezone = "Mars/Olympus"\n[log]\nformat = "xml"\n'
                  '[queues.q]\nservice_level_seconds = 0\n', env={})
    errors = "\n".join(exc.value.errors)
    for key in ("web.listen", "web.refresh", "web.thresholds.sl_warn", "stats.timezone",
                "log.format", "queues.q.service_level_seconds"):
        assert key in errors
    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    for cls in (WebConfig, Thresholds, HttpConfig):
        for f in dataclasses.fields(cls):
            if f.name != "thresholds":
                assert f"`{f.name}`" in doc, f.name
    for key in ("stats.timezone", "events.max_length", "events.max_age", "log.format"):
        assert f"`{key}`" in doc, key


def test_watch_runs_live_and_exits_cleanly_on_ctrl_c(redis_url, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    p = tmp_path / "fsacd.toml"
    p.write_text(QUEUES + '\n[routes]\n"5000" = "queue:support"\n')
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsacd", "--config", str(p), "watch", "--interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        import gevent

        frames = 0
        with gevent.Timeout(30, AssertionError("no frames from fsacd watch")):
            while frames < 3:  # a few refreshes (not a terminal: one frame after the other)
                line = proc.stdout.readline()
                assert line, proc.stderr.read()
                frames += "QUEUE" in line
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
