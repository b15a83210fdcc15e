"""Redis round trips on the hot path: from a call's arrival at the controller (its outbound
socket accepted) to the ``bridge`` sent, with a free agent, counted per call greenlet.

The controller runs in this process (so its Redis connections can be counted: one round trip
= one ``send_packed_command``, a pipeline or a script call included; commands = commands
packed); the stand-in runs in its own process, Redis in a third. Only what the call's own
greenlet sends is counted (the matching it does for itself included, and, without a CRM,
the screen pop's lookup, which rides with the arrival); the pub/sub listener, the lease and
background work of other greenlets are not.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gevent
from redis import connection as redis_connection

from fsacd.acd.controller import Controller
from fsacd.config import load_text
from fsacd.esl.client import FreeSwitchClient
from fsacd.esl.session import OutboundSession
from fsacd.tools.benchprocs import PASSWORD_ENV, StandinProc
from fsacd.tools.benchutil import summary
from fsacd.tools.redisproc import RedisProcess

CONFIG = """
[server]
listen = "127.0.0.1:0"
controller_id = "hot"
[redis]
url = "{url}"
[freeswitch]
inbound = "{inbound}"
password_env = "{env}"
[queues.bench]
strategy = "most-idle"
ring_timeout = 10
wrap_up = 0
"""


class Counter:
    """Round trips and commands per tracked greenlet, and where the bridge was sent."""

    def __init__(self) -> None:
        self.live: dict[Any, list[int]] = {}
        self.done: list[tuple[int, int]] = []

    def install(self) -> Any:
        conn = redis_connection.AbstractConnection
        orig = (conn.send_packed_command, conn.pack_command, conn.pack_commands)
        orig_handle, orig_execute = Controller.handle_call, OutboundSession.execute
        orig_many = OutboundSession.execute_many
        counter = self

        def send_packed_command(self, *a: Any, **kw: Any) -> Any:
            c = counter.live.get(gevent.getcurrent())
            if c is not None:
                c[0] += 1
            return orig[0](self, *a, **kw)

        def pack_command(self, *a: Any) -> Any:
            c = counter.live.get(gevent.getcurrent())
            if c is not None:
                c[1] += 1
            return orig[1](self, *a)

        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            c = counter.live.get(gevent.getcurrent())
            if c is not None:
                c[1] += len(commands)
            return orig[2](self, commands)

        def handle_call(self, *a: Any, **kw: Any) -> Any:
            g = gevent.getcurrent()
            counter.live[g] = [0, 0]
            try:
                return orig_handle(self, *a, **kw)
            finally:
                counter.live.pop(g, None)

        def execute(self, app: str, *a: Any, **kw: Any) -> Any:
            c = counter.live.get(gevent.getcurrent())
            if app == "bridge" and c is not None:
                counter.done.append((c[0], c[1]))
                counter.live.pop(gevent.getcurrent(), None)
            return orig_execute(self, app, *a, **kw)

        def execute_many(self, apps: Any, *a: Any, **kw: Any) -> Any:
            c = counter.live.get(gevent.getcurrent())
            if c is not None and any(app == "bridge" for app, _, _ in apps):
                counter.done.append((c[0], c[1]))
                counter.live.pop(gevent.getcurrent(), None)
            return orig_many(self, apps, *a, **kw)

        conn.send_packed_command = send_packed_command
        conn.pack_command = pack_command
        conn.pack_commands = pack_commands
        Controller.handle_call = handle_call
        OutboundSession.execute = execute
        OutboundSession.execute_many = execute_many  # type: ignore[method-assign]

        def uninstall() -> None:
            conn.send_packed_command, conn.pack_command, conn.pack_commands = orig
            Controller.handle_call, OutboundSession.execute = orig_handle, orig_execute
            OutboundSession.execute_many = orig_many  # type: ignore[method-assign]

        return uninstall


def hot_path_trips(calls: int = 30) -> dict[str, Any]:
    """One call at a time to a free agent; round trips and commands per call (p50/max)."""
    redis = RedisProcess().start()
    standin = StandinProc()
    counter = Counter()
    uninstall = counter.install()
    ctl = None
    try:
        os.environ[PASSWORD_ENV] = "ClueCon"
        host, port = standin.inbound
        cfg = load_text(CONFIG.format(url=redis.url, inbound=f"{host}:{port}", env=PASSWORD_ENV),
                        env={})  # fmt: skip
        ctl = Controller(cfg, fs=FreeSwitchClient(standin.inbound, "ClueCon"))
        ctl.start()
        ctl.store.add_agent("h1", "user/h1@bench.invalid", {"bench": 1})
        ctl.store.login("h1")
        time.sleep(0.2)
        for _ in range(calls):
            standin.send(cmd="calls", n=1, rate=1, targets=[list(ctl.address)], talk=0.0, wait=10)
            deadline = time.time() + 10
            while (ctl.store.get_agent("h1") or {}).get("state") != "idle":
                if time.time() > deadline:
                    break
                time.sleep(0.01)
    finally:
        uninstall()
        if ctl is not None:
            ctl.stop(timeout=2)
        standin.stop()
        redis.stop()
    trips = [float(t) for t, _ in counter.done]
    cmds = [float(c) for _, c in counter.done]
    return {"calls": len(counter.done), "round_trips": summary(trips, 1),
            "commands": summary(cmds, 1)}  # fmt: skip
