"""The wallboard in headless Chromium while calls flow through the stand-in: the numbers on
the page change (pushed, no reload) as calls arrive, are answered and abandoned; screenshots
are saved (``FSACD_WALLBOARD_PNG=path`` copies the busy one there, e.g. docs/wallboard.png)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from fsacd.standin import PhoneBehaviour as P
from fsacd.state.stats import StatsStore
from fsacd.web.server import make_server
from tests.acd_harness import Acd, wait_for
from tests.cdp import Browser, find_chromium
from tests.test_figures import QUEUES

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium: install Debian's chromium (scripts/test does so with apt when it can)",
)

READ = """(() => { const q = document.getElementById('q-support'); if (!q) return null;
  const out = {}; for (const v of q.querySelectorAll('[data-key]')) out[v.dataset.key] =
  v.textContent; out.agents = [...document.querySelectorAll('[data-agent]')].map(a =>
  a.dataset.agent + ':' + a.dataset.state).join(' ');
  out.status = document.getElementById('status').textContent; return out; })()"""


def test_wallboard_numbers_follow_the_calls(redis_url, tmp_path):
    acd = Acd(redis_url, queues=QUEUES)
    server = make_server(acd.cfg, StatsStore.of(acd.store), ("127.0.0.1", 0))
    server.start()
    host, port = server.address[:2]
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        for i in range(2):
            acd.agent(f"100{i}", P.answers(after=0.3, talk=4.0), {"support": 1})
        acd.store.add_agent("1009", "user/1009@pbx.example", {"support": 1})
        acd.store.set_break("1009", "lunch")
        browser.open(f"http://{host}:{port}/")

        def page() -> dict:
            return browser.eval(READ) or {}

        wait_for(lambda: page().get("status") == "live", timeout=60, what="page live")
        first = page()
        assert first["waiting"] == "0" and first["answered"] == "0"
        assert first["abandoned"] == "0" and first["service_level"] == "-"
        assert "1009:on-break" in first["agents"] and "1000:idle" in first["agents"]
        calls = [acd.fs.place_call(destination="5000") for _ in range(3)]
        wait_for(lambda: page().get("talking") == "2" and page().get("waiting") == "1",
                 timeout=20, what="two talking and one waiting on the page")
        busy = page()
        assert busy["answered"] == "2"
        assert "1000:in-call" in busy["agents"] and "1001:in-call" in busy["agents"]
        time.sleep(1.2)  # the waiting caller's wait shows in seconds
        wait_for(lambda: page().get("longest_wait") not in ("0s", None), timeout=10,
                 what="longest wait counting")
        shot = browser.screenshot(tmp_path / "wallboard-busy.png")
        assert shot.stat().st_size > 10_000
        if os.environ.get("FSACD_WALLBOARD_PNG"):
            shutil.copy(shot, os.environ["FSACD_WALLBOARD_PNG"])
        waiting = [c for c in calls if c.uuid in
                   {x["id"] for x in acd.store.list_calls() if x["state"] == "waiting"}]
        assert len(waiting) == 1
        waiting[0].hangup()
        wait_for(lambda: page().get("abandoned") == "1" and page().get("waiting") == "0",
                 timeout=20, what="the abandon on the page")
        assert page()["service_level"] == "67%"  # 2 answered in time of 3 answered or abandoned
        for c in calls:
            c.wait_hangup(20)
        wait_for(lambda: page().get("talking") == "0", timeout=20, what="talks over")
        end = page()
        assert (end["answered"], end["abandoned"]) == ("2", "1")
        browser.screenshot(tmp_path / "wallboard-end.png")
    finally:
        browser.close()
        server.stop()
        acd.stop()
