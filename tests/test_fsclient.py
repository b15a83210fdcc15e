"""The reconnecting inbound client: one connection at a time, whoever asks."""

from __future__ import annotations

import gevent

from fsacd.esl.client import FreeSwitchClient
from fsacd.standin import FakeFreeSwitch


def inbound_connections(fs: FakeFreeSwitch) -> int:
    return sum(1 for lst in fs.listeners if not lst.outbound and not lst.finished.is_set())


def test_keeper_and_api_never_open_two_connections():
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon", heartbeat_interval=None)
    fs.start()
    client = FreeSwitchClient(fs.inbound_address, "ClueCon", timeout=2)
    try:
        client.start()  # the keeper connects ...
        replies = [gevent.spawn(client.api, "status") for _ in range(5)]  # ... and so may api()
        gevent.joinall(replies, timeout=5)
        gevent.sleep(0.2)
        assert inbound_connections(fs) == 1
        assert any((g.value or "").startswith("UP ") for g in replies)
        # FreeSWITCH drops the connection: the next connect replaces it, still one
        for lst in list(fs.listeners):
            lst.close()
        reply = None
        for _ in range(50):
            reply = client.api("status")
            if reply and reply.startswith("UP "):
                break
            gevent.sleep(0.1)
        assert reply and reply.startswith("UP ")
        gevent.sleep(1.2)  # the keeper looked again meanwhile
        assert inbound_connections(fs) == 1
    finally:
        client.stop()
        fs.stop()

