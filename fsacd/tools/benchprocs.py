"""Processes the benchmarks run: ``fsacd serve`` (a real controller process with its own
config) and the stand-in load process (:mod:`fsacd.tools.standin_load`), and what they cost
(CPU seconds and RSS from /proc)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PASSWORD_ENV = "FSACD_BENCH_ESL_PASSWORD"

SERVE_CONFIG = """
[server]
listen = "127.0.0.1:{port}"
controller_id = "{cid}"
max_calls = {max_calls}

[redis]
url = "{redis_url}"

[freeswitch]
inbound = "{inbound}"
other_switches = [{others}]
password_env = "{password_env}"

[queues.bench]
strategy = "{strategy}"
ring_timeout = 10
wrap_up = 0
announce_every = 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and RSS in KiB of a process, from /proc."""
    out = {"cpu": 0.0, "rss_kib": 0.0}
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu"] = (int(fields[11]) + int(fields[12])) / tick
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = float(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return out


class ServeProc:
    """``python -m fsacd --config FILE serve`` on a free port. ``template``: the config
    (``SERVE_CONFIG``'s fields; ``extra``: more fields it uses); ``others``: the inbound
    sockets of more stand-ins (``other_switches``)."""

    def __init__(self, redis_url: str, inbound: tuple[str, int], cid: str = "bench", *,
                 strategy: str = "most-idle", max_calls: int = 20000,
                 template: str = SERVE_CONFIG, log_level: str = "warning",
                 others: list[tuple[str, int]] | None = None,
                 **extra: Any) -> None:  # fmt: skip
        self.dir = Path(tempfile.mkdtemp(prefix=f"fsacd-bench-{cid}-"))
        self.port = free_port()
        self.cid = cid
        self.path = self.dir / "fsacd.toml"
        self.log = self.dir / "serve.log"
        self.path.write_text(template.format(
            port=self.port, cid=cid, redis_url=redis_url, inbound=f"{inbound[0]}:{inbound[1]}",
            password_env=PASSWORD_ENV, strategy=strategy, max_calls=max_calls,
            others=", ".join(f'"{h}:{p}"' for h, p in others or ()), **extra))  # fmt: skip
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self, timeout: float = 30.0) -> ServeProc:
        env = dict(os.environ, **{PASSWORD_ENV: "ClueCon"})
        env.pop("REDIS_URL", None)
        env.pop("FSACD_CONFIG", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fsacd", "--config", str(self.path), "serve",
                 "--log-level", self.log_level],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fsacd serve exited: {self.log.read_text()[-1500:]}")
            try:
                socket.create_connection(self.address, timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fsacd serve did not listen in time")

    def stats(self) -> dict[str, float]:
        return proc_stats(self.proc.pid) if self.proc else {}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


class StandinProc:
    """The stand-in load process; :meth:`send` a command, get its JSON reply."""

    def __init__(self, answer_after: float = 0.0, *, argv: list[str] | None = None) -> None:
        """``argv``: another load process (``python -m MODULE ...``) with the same protocol."""
        argv = argv or ["fsacd.tools.standin_load", "--answer-after", str(answer_after)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        first = self._read()
        self.inbound: tuple[str, int] = (first["inbound"][0], int(first["inbound"][1]))

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stand-in load process ended")
        return json.loads(line)

    def send(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self) -> dict[str, float]:
        return proc_stats(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:  # no reply comes to a quit
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
