"""Redis Cluster: the ``redis+cluster://`` URL, its client, the prefix's hash tag.

fsacd's Lua scripts build agent, call and queue keys from the prefix while they run, and some
commands and transactions touch several keys. Redis Cluster allows that only when every key of
a command or script lives in one hash slot, so on a cluster the prefix must carry a hash tag
(``{fsacd}:``): every key (``{fsacd}:agent:1001``, ...) then hashes to the slot of ``fsacd``.
All of fsacd's state is on the one master serving that slot (and its replicas); the cluster
gives failover and room for other applications, not sharding of fsacd's own data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.exceptions import (
    ConnectionError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
)

from fsacd.core.keyslot import prefix_problem
from fsacd.core.netaddr import host_ports

#: ``redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]`` (``rediss+cluster://`` for
#: TLS): a few of the cluster's nodes; the client learns the others from them.
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
CLUSTER_PORT = 6379


def parse_cluster_url(url: str) -> dict:
    """The parts of a cluster URL: nodes, username, password, ssl. ValueError, saying what
    is wrong, for a bad one."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    user, _, password = auth.partition(":")
    try:
        nodes = host_ports(hosts, CLUSTER_PORT)
    except ValueError as exc:
        raise ValueError(f"bad cluster node address {str(exc)!r} in the Redis URL") from None
    if parts.path not in ("", "/", "/0") or parts.query:
        raise ValueError(
            "a Redis Cluster URL is redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]"
            " (database 0 only, no options)"
        )
    return {
        "nodes": nodes,
        "username": unquote(user) or None,
        "password": unquote(password) or None,
        "ssl": parts.scheme.startswith("rediss"),
    }


@contextmanager
def unreachable_as_connection_error() -> Iterator[None]:
    """redis-py says "no node reachable" and "slot not served" with exceptions outside
    RedisError: turn them into the ConnectionError every caller already rides out."""
    try:
        yield
    except SlotNotCoveredError as exc:
        raise ConnectionError(f"Redis Cluster: {exc}") from exc
    except RedisClusterException as exc:
        if type(exc) is not RedisClusterException:  # cross-slot and other usage errors
            raise
        raise ConnectionError(f"Redis Cluster: {exc}") from exc


class ClusterScript(Script):
    """A registered script that, queued on a cluster pipeline, has the pipeline load it
    first (a pipeline cannot answer NOSCRIPT by loading the script, as a call can)."""

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if isinstance(client, FsacdClusterPipeline):
            client.fsacd_scripts[self.sha] = self.script
        return super().__call__(keys, args, client)


class FsacdClusterPipeline(ClusterPipeline):
    """redis-py's cluster pipeline with PUBLISH and EVALSHA allowed (redis-py blocks them in
    cluster pipelines as it cannot always tell their node; fsacd's channels and script keys all
    carry the prefix's hash tag, so they route like every other key of the batch)."""

    fsacd_scripts: dict[str, Any]

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        return self.execute_command("PUBLISH", channel, message, **kwargs)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        scripts, self.fsacd_scripts = self.fsacd_scripts, {}
        with unreachable_as_connection_error():
            for text in scripts.values():
                self.fsacd_client.script_load(text)  # every master has it (SCRIPT LOAD is cheap)
            return super().execute(raise_on_error)


class FsacdCluster(RedisCluster):
    """redis-py's cluster client as fsacd's stores need it: ``pipeline()`` is MULTI/EXEC
    unless told otherwise, as on a single server (redis-py's cluster pipeline defaults to no
    transaction, which would quietly make the stores' transactions non-atomic and refuse
    their WATCH); pipelines take PUBLISH and scripts (:class:`FsacdClusterPipeline`)."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with unreachable_as_connection_error():
            return super().execute_command(*args, **kwargs)

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> int:
        """PUBLISH, answering how many subscribers got it in the whole cluster. The message
        is broadcast over the cluster bus, but PUBLISH counts only the subscribers of the
        node it was sent to: fsacd's pub/sub connections go to the master of the channel's
        slot, as PUBLISH does, so that count is all of them, except when some are still on a
        node the slot moved away from; for a 0 the cluster's count is asked."""
        n = int(super().publish(channel, message, **kwargs))
        if n:
            return n
        try:
            return cluster_numsub(self, channel)
        except RedisError:
            return 0

    def pipeline(self, transaction: bool | None = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        pipe.__class__ = FsacdClusterPipeline  # adds methods only, no state of its own
        pipe.fsacd_scripts = {}
        pipe.fsacd_client = self
        return pipe

    def register_script(self, script: Any) -> ClusterScript:
        return ClusterScript(self, script)


def cluster_client(url: str, pool_size: int, pool_wait: float, **options: Any) -> RedisCluster:
    """A RedisCluster client (``decode_responses=True``, ``options`` for every node's
    connections: timeouts, keepalive) with a blocking pool of ``pool_size`` connections per
    node (a command waits up to ``pool_wait`` s for one). ValueError for a bad URL."""
    p = parse_cluster_url(url)
    auth = ""
    if p["password"] is not None or p["username"] is not None:
        auth = f"{quote(p['username'] or '', safe='')}:{quote(p['password'] or '', safe='')}@"
    scheme = "rediss" if p["ssl"] else "redis"
    first, *others = p["nodes"]
    host = f"[{first[0]}]" if ":" in first[0] else first[0]
    with unreachable_as_connection_error():  # it asks the nodes for the slots at once
        client = FsacdCluster(
            url=f"{scheme}://{auth}{host}:{first[1]}",  # the URL way: pools of our class
            startup_nodes=[ClusterNode(h, port) for h, port in others],
            connection_pool_class=redis.BlockingConnectionPool,
            max_connections=pool_size,
            timeout=pool_wait,
            decode_responses=True,
            **options,
        )
    client.fsacd_url = url  # for url_of: other processes use the same URL
    return client


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def subscribers(client: Any, channel: str, counted: int) -> int:
    """How many subscribers a message PUBLISHed on ``channel`` reached, ``counted`` being
    PUBLISH's answer: on a cluster the sum over every node (PUBSUB NUMSUB: one round trip
    per node, for the rare messages whose count is shown, like ``fsacd reload``'s)."""
    if not is_cluster(client):
        return counted
    try:
        return cluster_numsub(client, channel)
    except RedisError:
        return counted


def cluster_numsub(client: Any, channel: str) -> int:
    """PUBSUB NUMSUB summed over every node (redis-py sends it to the channel's node only)."""
    rows = client.execute_command("PUBSUB NUMSUB", channel, target_nodes=RedisCluster.ALL_NODES)
    return sum(int(count) for _, count in rows)


def ping_node(client: Any, key: str) -> bool:
    """PING the master serving ``key`` (a cluster client's own PING asks every node: one
    master of another application away would make fsacd look unready)."""
    return bool(client.ping(target_nodes=client.get_node_from_key(key)))


def prefix_error(client: Any, prefix: str) -> str | None:
    """Why keys under ``prefix`` cannot be used on ``client`` (a cluster client, and the
    keys would not share one slot), or None."""
    return prefix_problem(prefix) if is_cluster(client) else None
