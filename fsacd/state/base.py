"""What every store in ``fsacd/state`` shares: the connection, the key names, batches.

A store is the Redis side of one feature (``Store`` for the ACD itself, ``ContactStore`` for
the contacts, ...). Features never talk to Redis: they call their store's methods. Writes
take ``pipe=None``: given a pipe from :meth:`StateBase.batch` (of any store on the same
connection) they are queued on it and sent with the others, in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, Self

from redis.exceptions import NoScriptError

from fsacd.state.cluster import is_cluster, ping_node
from fsacd.state.connection import check_prefix
from fsacd.state.keys import Keys

#: A batch of queued commands (a redis-py pipeline); features only pass it on as ``pipe=``.
Pipe = Any


class Reads(Protocol):
    """Reads that ride along with another store's step (``also=``): queued on its pipeline
    after the step's own command, their replies handed back, one round trip for both."""

    def queue(self, pipe: Pipe) -> None: ...

    def take(self, replies: Sequence[Any]) -> None: ...


def script_with_reads(
    r: Any, script: Any, keys: Sequence[str], args: Sequence[Any], also: Reads | None
) -> Any:
    """Run a registered Lua script and ``also``'s reads in one round trip; the script's reply.

    The script goes in as a plain EVALSHA (a redis-py pipeline holding a ``Script`` first
    asks SCRIPT EXISTS, a round trip of its own); after a Redis restart that forgot it
    (NOSCRIPT) it is run again the usual way, once. A failed read reaches ``also.take`` as
    its exception; a failed script raises.
    """
    if also is None:
        return script(keys=keys, args=args)
    pipe = r.pipeline(transaction=False)
    try:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        also.queue(pipe)
        replies = pipe.execute(raise_on_error=False)
    finally:
        pipe.reset()
    first = replies[0]
    if isinstance(first, NoScriptError):  # first use, or a Redis that restarted
        first = script(keys=keys, args=args)
    elif isinstance(first, Exception):
        raise first
    also.take(replies[1:])
    return first


class StateBase:
    """A Redis connection ``r`` (decoding responses) and the key names ``keys``."""

    def __init__(self, r: Any, keys: Keys | None = None) -> None:
        self.r = r
        self.keys = keys or Keys()
        check_prefix(r, self.keys.prefix)  # on a Redis Cluster: one slot, or one clear line

    @classmethod
    def of(cls, other: StateBase) -> Self:
        """This store on the connection and key prefix of another one."""
        return cls(other.r, other.keys)

    def where(self) -> str:
        """Which Redis this store uses, for logs (password masked)."""
        from fsacd.state.connection import describe

        return describe(self.r)

    def ping(self) -> bool:
        """Redis answers (raises the connection's error when it does not); on a cluster,
        the master holding fsacd's keys."""
        if is_cluster(self.r):
            return ping_node(self.r, self.keys.events())
        return bool(self.r.ping())

    @contextmanager
    def batch(self, transaction: bool = False) -> Iterator[Pipe]:
        """Queue writes (``pipe=`` of any store's methods) and send them together when the
        block ends; ``transaction`` wraps them in MULTI/EXEC. Nothing is sent if the block
        raises."""
        pipe = self.r.pipeline(transaction=transaction)
        try:
            yield pipe
            pipe.execute()
        finally:
            pipe.reset()
