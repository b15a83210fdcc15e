"""Run real ``fsacd serve`` processes for the multi-controller tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """
[server]
listen = "127.0.0.1:{port}"
controller_id = "{cid}"
lease = {lease}
recovery_interval = 0.3
drain_timeout = {drain}
command_timeout = 5

[redis]
url = "{redis_url}"

[freeswitch]
inbound = "{inbound}"
password_env = "FSACD_TEST_ESL_PASSWORD"

[routes]
"5000" = "queue:support"

[queues.support]
strategy = "{strategy}"
ring_timeout = {ring_timeout}
wrap_up = 0
no_answer_delay = 0
max_no_answer = 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """One ``python -m fsacd serve`` with its own config file."""

    def __init__(
        self,
        tmp: Path,
        cid: str,
        redis_url: str,
        inbound: tuple[str, int],
        *,
        strategy: str = "first-available",
        ring_timeout: int = 3,
        lease: float = 2,
        drain: float = 10,
        port: int | None = None,
    ) -> None:
        self.cid = cid
        self.port = port or free_port()
        self.path = tmp / f"{cid}.toml"
        self.log = tmp / f"{cid}.log"
        self.params = dict(
            port=self.port,
            cid=cid,
            lease=lease,
            drain=drain,
            redis_url=redis_url,
            inbound=f"{inbound[0]}:{inbound[1]}",
            strategy=strategy,
            ring_timeout=ring_timeout,
        )
        self.write_config()
        self.proc: subprocess.Popen | None = None

    def write_config(self, text: str | None = None) -> None:
        self.path.write_text(text if text is not None else CONFIG.format(**self.params))

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self, timeout: float = 20.0) -> ServeProcess:
        env = dict(os.environ, FSACD_TEST_ESL_PASSWORD="ClueCon")
        env.pop("REDIS_URL", None)
        env.pop("FSACD_CONFIG", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fsacd",
                    "--config",
                    str(self.path),
                    "serve",
                    "--log-level",
                    "info",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.cid} exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(self.address, timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.cid} did not listen in time")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def logtext(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


#: ``fsacd serve`` on an embedded Redis in ``{data}``, its switch nowhere (port 9), no password
EMBEDDED_CONFIG = """
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


def serve_embedded(tmp: Path, config: str, timeout: float = 20.0) -> tuple[subprocess.Popen, Path]:
    """``fsacd serve`` on ``config`` (its ``[redis]`` an embedded one in ``tmp/var``), started
    in ``tmp`` and waited for until it listens and its Redis wrote its pid file. Returns the
    process and its log file."""
    data = tmp / "var"
    cfg = tmp / "fsacd.toml"
    cfg.write_text(config.format(data=data))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("REDIS_URL", None)
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fsacd", "--config", str(cfg), "serve"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp,
        )  # fmt: skip
    pidfile = data / "redis.pid"
    deadline = time.time() + timeout
    while "listening on" not in log.read_text() or not pidfile.exists():
        if proc.poll() is not None or time.time() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            raise AssertionError(f"fsacd serve did not come up:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, log
