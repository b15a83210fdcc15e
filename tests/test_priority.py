"""``[server] realtime_priority``: ``fsacd serve`` (and the embedded Redis it starts) under
SCHED_RR, or one warning and normal priority when the system does not allow it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fsacd.acd import priority
from fsacd.config import ConfigError, load_text
from tests.procs import EMBEDDED_CONFIG, serve_embedded

ROOT = Path(__file__).resolve().parents[1]

#: the serve test's config with the priority
CONFIG = EMBEDDED_CONFIG.replace("[server]\n", "[server]\nrealtime_priority = {prio}\n", 1)

needs_linux = pytest.mark.skipif(
    not hasattr(os, "sched_setscheduler"), reason="no sched_setscheduler on this system"
)


def test_a_bad_priority_is_one_clear_error():
    with pytest.raises(ConfigError) as info:
        load_text("[server]\nrealtime_priority = 100\n[queues.support]\n")
    assert any("realtime_priority" in e for e in info.value.errors), info.value.errors
    assert load_text("[queues.support]\n").server.realtime_priority == 0


def _in_child(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@needs_linux
def test_without_the_right_the_reason_is_told_and_nothing_changes():
    # an unprivileged process without RLIMIT_RTPRIO (as root: a child that became nobody)
    code = (
        "import os, resource\n"
        "from fsacd.acd import priority\n"
        "resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))\n"
        "if os.getuid() == 0:\n"
        "    os.setgid(65534); os.setuid(65534)\n"
        "print(priority.take_realtime(10)); print(priority.current())\n"
    )
    why, now = _in_child(code).splitlines()
    assert why.startswith("not permitted") and "LimitRTPRIO=10" in why, why
    assert now == "normal"


@needs_linux
def test_serve_takes_the_priority_and_its_embedded_redis_inherits_it(tmp_path):
    allowed = _in_child("from fsacd.acd import priority\nprint(priority.take_realtime(5) is None)")
    data = tmp_path / "var"
    proc, log = serve_embedded(tmp_path, CONFIG.replace("{prio}", "5"))
    try:
        pidfile = data / "redis.pid"
        text = log.read_text()
        redis_pid = int(pidfile.read_text())
        if allowed == "True":
            assert "running at real-time priority rr:5" in text, text
            assert priority.current(proc.pid) == "rr:5"
            assert priority.current(redis_pid) == "rr:5"
        else:  # the CI's user may not have the right: one warning, and it still serves
            lines = [x for x in text.splitlines() if "realtime_priority 5" in x]
            assert len(lines) == 1 and "normal priority" in lines[0], text
            assert priority.current(proc.pid) == "normal"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
