"""Test harness: a controller (in this process) + the FreeSWITCH stand-in + a real Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import redis

from fsacd.acd.controller import Controller
from fsacd.config import Config, load_text
from fsacd.esl.client import FreeSwitchClient
from fsacd.standin import FakeFreeSwitch, PhoneBehaviour
from fsacd.state.store import Store

BASE_CONFIG = """
[server]
listen = "127.0.0.1:0"
controller_id = "{controller_id}"
command_timeout = 5

[redis]
url = "{redis_url}"

[freeswitch]
default_region = "DE"
inbound = "{inbound}"
password_env = "FSACD_TEST_ESL_PASSWORD"

[routes]
"5000" = "queue:support"
"5001" = "queue:sales"
"5002" = "queue:nowhere-yet"

{queues}
"""

DEFAULT_QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 1
wrap_up = 0.3
max_no_answer = 3
no_answer_delay = 0.5
busy_delay = 0.5
reject_delay = 0.5

[queues.sales]
strategy = "ring-all"
ring_timeout = 2
wrap_up = 0.3
"""


def make_config(
    redis_url: str,
    queues: str = DEFAULT_QUEUES,
    controller_id: str = "test-ctl",
    extra_routes: str = "",
    inbound: str = "127.0.0.1:8021",
    prefix: str | None = None,
) -> Config:
    text = BASE_CONFIG.format(
        redis_url=redis_url, queues=queues, controller_id=controller_id, inbound=inbound
    )
    if prefix is not None:  # a Redis Cluster's hash-tagged prefix
        text = text.replace("\n[freeswitch]\n", f'prefix = "{prefix}"\n\n[freeswitch]\n', 1)
    text = text.replace('"5002" = "queue:nowhere-yet"\n', extra_routes)
    return load_text(text, env={})


class Acd:
    """A running controller and stand-in; agents added through the Store like the CLI does."""

    def __init__(
        self,
        redis_url: str,
        queues: str = DEFAULT_QUEUES,
        extra_routes: str = "",
        prefix: str | None = None,
    ):
        if redis_url.startswith(("redis+sentinel://", "redis+cluster://")):
            from fsacd.state.connection import connect

            self.r = connect(redis_url)  # the master, as the sentinels say; the cluster
        else:
            self.r = redis.Redis.from_url(redis_url, decode_responses=True)
        self.fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon")
        self.fs.start()
        os.environ["FSACD_TEST_ESL_PASSWORD"] = "ClueCon"
        host, port = self.fs.inbound_address
        self.cfg = make_config(
            redis_url, queues, extra_routes=extra_routes, inbound=f"{host}:{port}", prefix=prefix
        )
        inbound = FreeSwitchClient(self.fs.inbound_address, "ClueCon")
        self.ctl = Controller(self.cfg, self.r, fs=inbound)
        self.ctl.start()
        self.fs.socket_target = self.ctl.address
        self.store: Store = self.ctl.store

    def stop(self) -> None:
        self.fs.stop()
        self.ctl.stop(timeout=2)

    # --- agents --------------------------------------------------------------------------------

    def agent(
        self, agent_id: str, behaviour: PhoneBehaviour, queues: dict[str, int], login: bool = True
    ) -> str:
        contact = f"user/{agent_id}@pbx.example"
        self.fs.phones.register(contact, behaviour)
        self.store.add_agent(agent_id, contact, queues)
        if login:
            self.store.login(agent_id)
        return contact

    def agent_state(self, agent_id: str) -> dict:
        a = self.store.get_agent(agent_id)
        assert a is not None, agent_id
        return a

    # --- waiting ---------------------------------------------------------------------------------

    def events(self, *types: str) -> list[dict]:
        rows = self.r.xrange(self.store.keys.events())
        out = [fields for _, fields in rows]
        return [e for e in out if not types or e.get("type") in types]

    def all_agents_free(self) -> bool:
        for a in self.store.list_agents():
            if a["state"] not in ("idle",):
                return False
        return True


def wait_for(pred: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll ``pred`` (the stand-in and controller run in greenlets of this process)."""
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
