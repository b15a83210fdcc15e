"""The reconnecting inbound client: one connection at a time, whoever asks."""

from __future__ import annotations

import logging

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



def test_refused_password_is_logged_once_until_a_login_works(caplog):
    fs = FakeFreeSwitch(inbound=("127.0.0.1", 0), password="ClueCon", heartbeat_interval=None)
    fs.start()
    caplog.set_level(logging.DEBUG, logger="fsacd.esl")
    try:
        unset = FreeSwitchClient(fs.inbound_address, None, timeout=2)
        for _ in range(3):  # three tries (the keeper's retries): one warning
            assert unset._connect_once() is False
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "authentication failed (no password given)" in warnings[0].getMessage()
        good = FreeSwitchClient(fs.inbound_address, "ClueCon", timeout=2)
        assert good._connect_once() is True  # a login works: the next refusal is news again
        good.stop()
        caplog.clear()
        wrong = FreeSwitchClient(fs.inbound_address, "nope", timeout=2)
        assert wrong._connect_once() is False
        host, port = fs.inbound_address
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
            f"FreeSWITCH inbound {host}:{port}: authentication failed (wrong password)"
        ]
    finally:
        fs.stop()
