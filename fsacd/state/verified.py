"""The Redis side of fsacd/verified/registry.py: the numbers fsacd may present as caller ID.

``number:{e164}`` (hash: status, queues, agent, verification, a pending code's hash),
``numbers`` (set of the registered numbers), ``numbers:blocks`` (hash: block prefix -> JSON of
an operator's verification), ``numbers:version`` (counter bumped by every change, so readers
reload their snapshot only when it moved). Changes are MULTI/EXEC transactions (no Lua: nothing
here takes part in the matching); each one that matters bumps the version and appends a
``number-*`` event in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fsacd.state.base import Pipe, StateBase
from fsacd.state.keys import Keys
from fsacd.state.store import append_event


class NumberStore(StateBase):
    """Number hashes, blocks and the registry's version counter."""

    def __init__(
        self, r: Any, keys: Keys | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(r, keys)
        self.clock = clock

    # --- reads ------------------------------------------------------------------------------

    def get(self, number: str) -> dict[str, str]:
        """The number's hash; ``{}`` if it is not registered."""
        return self.r.hgetall(self.keys.number(number))

    def exists(self, number: str) -> bool:
        return bool(self.r.exists(self.keys.number(number)))

    def all(self) -> list[dict[str, str]]:
        """The hashes of every registered number, by number, one round trip for the hashes."""
        nums = sorted(self.r.smembers(self.keys.numbers()))
        pipe = self.r.pipeline(transaction=False)
        for n in nums:
            pipe.hgetall(self.keys.number(n))
        return pipe.execute() if nums else []

    def blocks(self) -> dict[str, str]:
        """Block prefix -> JSON of its operator verification."""
        return self.r.hgetall(self.keys.number_blocks())

    def block_exists(self, prefix: str) -> bool:
        return bool(self.r.hexists(self.keys.number_blocks(), prefix))

    def version(self) -> int:
        """The registry's change counter (0 before the first change)."""
        return int(self.r.get(self.keys.numbers_version()) or 0)

    # --- changes (each bumps the version; most append an event in the same transaction) -----

    def save(
        self,
        number: str,
        fields: Mapping[str, str],
        /,
        *,
        event: str,
        drop: Iterable[str] = (),
        **event_fields: Any,
    ) -> None:
        """Register or update ``number``: ``fields`` set, the fields ``drop`` removed."""
        key = self.keys.number(number)
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=dict(fields))
        drop = tuple(drop)
        if drop:
            pipe.hdel(key, *drop)
        pipe.sadd(self.keys.numbers(), number)
        self._changed(pipe, event, event_fields)
        pipe.execute()

    def delete(self, number: str, /, *, event: str, **event_fields: Any) -> None:
        """Forget ``number`` (and any pending code)."""
        pipe = self.r.pipeline()
        pipe.delete(self.keys.number(number))
        pipe.srem(self.keys.numbers(), number)
        self._changed(pipe, event, event_fields)
        pipe.execute()

    def save_block(self, prefix: str, data: str, /, *, event: str, **event_fields: Any) -> None:
        """An operator's verification of a whole block (JSON ``data``)."""
        pipe = self.r.pipeline()
        pipe.hset(self.keys.number_blocks(), prefix, data)
        self._changed(pipe, event, event_fields)
        pipe.execute()

    def delete_block(self, prefix: str, /, *, event: str, **event_fields: Any) -> None:
        pipe = self.r.pipeline()
        pipe.hdel(self.keys.number_blocks(), prefix)
        self._changed(pipe, event, event_fields)
        pipe.execute()

    def set_code(self, number: str, fields: Mapping[str, str]) -> None:
        """A new pending code's fields (hash, salt, expiry, ...); no event (codes are never
        evented)."""
        pipe = self.r.pipeline()
        pipe.hset(self.keys.number(number), mapping=dict(fields))
        pipe.incr(self.keys.numbers_version())
        pipe.execute()

    def drop_fields(
        self, number: str, fields: Iterable[str], /, *, event: str, **event_fields: Any
    ) -> None:
        """Remove fields of ``number`` (a voided code)."""
        pipe = self.r.pipeline()
        pipe.hdel(self.keys.number(number), *fields)
        self._changed(pipe, event, event_fields)
        pipe.execute()

    def count_attempt(self, number: str) -> int:
        """One more try at the pending code; returns the tries so far."""
        return int(self.r.hincrby(self.keys.number(number), "code_attempts", 1))

    def verify(
        self,
        number: str,
        code_hash: str,
        fields: Mapping[str, str],
        /,
        *,
        drop: Iterable[str],
        event: str,
        **event_fields: Any,
    ) -> bool:
        """Set ``fields`` and remove ``drop`` if the pending code is still ``code_hash``
        (checked under WATCH). False, nothing changed, if it was replaced or used meanwhile."""
        key = self.keys.number(number)
        with self.r.pipeline() as pipe:
            pipe.watch(key)
            if pipe.hget(key, "code_hash") != code_hash:
                pipe.reset()
                return False
            pipe.multi()
            pipe.hset(key, mapping=dict(fields))
            pipe.hdel(key, *drop)
            self._changed(pipe, event, event_fields)
            pipe.execute()
        return True

    # --- events -----------------------------------------------------------------------------

    def event(self, type: str, /, pipe: Pipe = None, **fields: Any) -> None:
        """Append a ``number-*`` event (no code in it, ever) without changing the registry."""
        append_event(pipe or self.r, self.keys, self.clock(), type, fields)

    def _changed(self, pipe: Pipe, type: str, fields: Mapping[str, Any]) -> None:
        pipe.incr(self.keys.numbers_version())
        append_event(pipe, self.keys, self.clock(), type, fields)
