"""``fsacd serve`` as a process: it starts and stops cleanly, and what it started stops with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[server]
listen = "127.0.0.1:0"
controller_id = "serve-test"
[redis]
data_dir = "{data}"
[freeswitch]
inbound = "127.0.0.1:9"
password_env = "FSACD_TEST_NO_PASSWORD"
[queues.support]
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_stops_the_embedded_redis_it_started(tmp_path):
    data = tmp_path / "var"
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text(CONFIG.format(data=data))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fsacd", "--config", str(cfg), "serve"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        pidfile = data / "redis.pid"
        deadline = time.time() + 20
        while "listening on" not in log.read_text() or not pidfile.exists():
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.1)
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
