"""What every store in ``fsacd/state`` shares: the connection, the key names, batches.

A store is the Redis side of one feature (``Store`` for the ACD itself, ``ContactStore`` for
the contacts, ...). Features never talk to Redis: they call their store's methods. Writes
take ``pipe=None``: given a pipe from :meth:`StateBase.batch` (of any store on the same
connection) they are queued on it and sent with the others, in one round trip. Reads that
must travel with other commands go on a :class:`Batch` (:meth:`StateBase.round_trip`): each
reading method queues its commands and returns a :class:`Reply`, read once the batch is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Protocol, Self, TypeVar

from redis.exceptions import NoScriptError

from fsacd.state.cluster import is_cluster, ping_node
from fsacd.state.connection import check_prefix
from fsacd.state.keys import Keys

#: A batch of queued commands (a redis-py pipeline); features only pass it on as ``pipe=``.
Pipe = Any

T = TypeVar("T")
_UNSENT = object()


class Reply(Generic[T]):
    """The decoded replies of some commands of a :class:`Batch` (:meth:`get` once it is sent).
    ``decode`` gets the raw replies (a list); an error reply among them is raised by
    :meth:`get` unless ``errors`` is true (then ``decode`` sees the exception objects)."""

    def __init__(self, decode: Callable[[list[Any]], T], errors: bool = False) -> None:
        self._decode = decode
        self._errors = errors
        self._raw: Any = _UNSENT

    def fill(self, raw: list[Any]) -> None:
        self._raw = raw

    def get(self) -> T:
        if self._raw is _UNSENT:
            raise RuntimeError("the batch of this reply was not sent")
        if not self._errors:
            for item in self._raw:
                if isinstance(item, Exception):
                    raise item
        return self._decode(self._raw)

    def map(self, fn: Callable[[T], Any]) -> Reply[Any]:
        """A reply whose value is ``fn`` of this one's (read when it is read)."""
        out: Reply[Any] = Reply(lambda _raw: fn(self.get()), errors=True)
        out._raw = []
        return out


class Batch:
    """Commands of one or several stores (same connection) sent in one round trip, without a
    transaction. ``pipe`` takes the writes (``pipe=`` of any store's methods); a reading
    method queues its commands, then claims their replies with :meth:`reply`. An error
    reply that no :class:`Reply` claims is raised by :meth:`send`."""

    def __init__(self, r: Any) -> None:
        self.r = r
        self.pipe = r.pipeline(transaction=False)
        self._claims: list[tuple[int, int, Reply[Any]]] = []
        self._scripts: dict[int, tuple[Any, list[Any], list[Any]]] = {}

    def script(self, script: Any, keys: list[Any], args: list[Any]) -> None:
        """Queue a registered Lua script (``EVALSHA``, without redis-py's ``SCRIPT EXISTS``
        round trip: a script the server does not know, after a restart, is loaded and run
        again on its own when the batch is sent)."""
        self._scripts[len(self.pipe)] = (script, keys, args)
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)

    def __len__(self) -> int:
        return len(self.pipe)

    def reply(self, start: int, decode: Callable[[list[Any]], T], errors: bool = False) -> Reply[T]:
        """The replies of the commands queued since ``start`` (``len(batch)`` before them)."""
        r: Reply[T] = Reply(decode, errors)
        self._claims.append((start, len(self.pipe), r))
        return r

    def send(self) -> None:
        """Send everything queued (nothing happens for an empty batch)."""
        if not len(self.pipe):
            return
        try:
            raw = self.pipe.execute(raise_on_error=False)
        finally:
            self.pipe.reset()
        for i, (script, keys, args) in self._scripts.items():
            if isinstance(raw[i], NoScriptError):
                try:
                    raw[i] = script(keys=keys, args=args)
                except Exception as exc:  # noqa: BLE001 - handed to its reply like the others
                    raw[i] = exc
        claimed = [False] * len(raw)
        for start, end, r in self._claims:
            r.fill(list(raw[start:end]))
            for i in range(start, end):
                claimed[i] = True
        for item, mine in zip(raw, claimed, strict=True):
            if not mine and isinstance(item, Exception):
                raise item


class Reads(Protocol):
    """Reads that ride along with another store's step (``also=``): queued on its pipeline
    after the step's own command, their replies handed back, one round trip for both."""

    def queue(self, pipe: Pipe) -> None: ...

    def take(self, replies: Sequence[Any]) -> None: ...


def script_with_reads(
    r: Any, script: Any, keys: Sequence[str], args: Sequence[Any], also: Reads | None
) -> Any:
    """Run a registered Lua script and ``also``'s reads in one round trip (a :class:`Batch`);
    the script's reply. A failed read reaches ``also.take`` as its exception; a failed
    script raises."""
    if also is None:
        return script(keys=keys, args=args)
    batch = Batch(r)
    batch.script(script, list(keys), list(args))
    mine = batch.reply(0, lambda raw: raw[0])
    start = len(batch)
    also.queue(batch.pipe)
    theirs = batch.reply(start, list, errors=True)
    batch.send()
    result = mine.get()
    also.take(theirs.get())
    return result


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

    def round_trip(self) -> Batch:
        """A new :class:`Batch` on this store's connection (reads and writes of any store,
        sent together by ``batch.send()``)."""
        return Batch(self.r)

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
