"""``fsacd serve`` as a process: it starts and stops cleanly, and what it started stops with it."""

from __future__ import annotations

import os
import signal
import time

from tests.procs import EMBEDDED_CONFIG, serve_embedded

CONFIG = EMBEDDED_CONFIG


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_stops_the_embedded_redis_it_started(tmp_path):
    data = tmp_path / "var"
    proc, log = serve_embedded(tmp_path, CONFIG)
    try:
        pidfile = data / "redis.pid"
        # no password set: said once, with what to set (not only "authentication failed")
        hints = [x for x in log.read_text().splitlines() if "event-socket password" in x]
        assert len(hints) == 1 and "FSACD_TEST_NO_PASSWORD" in hints[0], log.read_text()
        redis_pid = int(pidfile.read_text())
        assert alive(redis_pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
        deadline = time.time() + 5
        while alive(redis_pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not alive(redis_pid), "the embedded Redis outlived fsacd serve"
    finally:
        if proc.poll() is None:
            proc.kill()
