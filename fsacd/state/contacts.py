"""The Redis side of fsacd/pop/contacts.py: contact hashes and the number index.

``contact:{id}`` (hash; ``numbers`` is a JSON list of ``{"label", "number"}``), ``contacts``
(set of ids) and ``contacts:number:{e164}`` (set of the ids having that number). Every change
of one contact and its index entries is one MULTI/EXEC under WATCH, so the index never points
at a number the contact no longer has.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fsacd.state.base import Batch, Reply, StateBase
from fsacd.state.connection import RedisError, WatchError

#: Tries of a WATCHed write before giving up (another writer changed the same contacts).
WATCH_TRIES = 10


def numbers_of(raw: str | None) -> set[str]:
    """The E.164 numbers in a stored ``numbers`` field (JSON list of ``{"number": ...}``)."""
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        return set()
    if not isinstance(items, list):
        return set()
    return {n["number"] for n in items if isinstance(n, Mapping) and n.get("number")}


class ContactStore(StateBase):
    """Contact records as flat string hashes (decoding them is fsacd/pop/contacts.py's job)."""

    def get(self, contact_id: str) -> dict[str, str]:
        """The stored hash of a contact; ``{}`` if there is none."""
        return self.r.hgetall(self.keys.contact(contact_id))

    def get_many(self, contact_ids: Sequence[str]) -> list[dict[str, str]]:
        """The hashes of these contacts, in order (``{}`` for a missing one), one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for cid in contact_ids:
            pipe.hgetall(self.keys.contact(cid))
        return pipe.execute() if contact_ids else []

    def lookup(self, e164: str, batch: Batch) -> Reply[list[dict[str, str]]]:
        """The hashes of the contacts with the number ``e164`` (by id), queued on ``batch``:
        one script (``contact_lookup.lua``), so the lookup travels with other commands."""
        script = getattr(self, "_lookup_script", None)
        if script is None:
            from fsacd.state.scripts import full_source

            script = self._lookup_script = self.r.register_script(full_source("contact_lookup"))
        start = len(batch)
        batch.script(script, [self.keys.events(), self.keys.contact_number(e164)],
                     [self.keys.prefix, "0"])  # fmt: skip

        def decode(raw: list[Any]) -> list[dict[str, str]]:
            flat = raw[0] or []
            out = []
            for i in range(0, len(flat), 2):
                h = flat[i + 1]
                out.append(dict(zip(h[::2], h[1::2], strict=True)))
            return out

        return batch.reply(start, decode)

    def exist(self, contact_ids: Sequence[str]) -> list[bool]:
        """Whether each of these contacts is stored, in order, one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for cid in contact_ids:
            pipe.exists(self.keys.contact(cid))
        return [bool(e) for e in pipe.execute()] if contact_ids else []

    def count(self) -> int:
        return int(self.r.scard(self.keys.contacts()))

    def ids_for(self, e164: str) -> list[str]:
        """Ids of the contacts with the number ``e164``, sorted."""
        return sorted(self.r.smembers(self.keys.contact_number(e164)))

    def replace(self, contacts: Sequence[tuple[str, Mapping[str, str], set[str]]]) -> int:
        """Create or replace contacts, each ``(id, hash, its E.164 numbers)``: the whole hash
        is replaced and the number index follows, in one transaction. Returns how many were
        new. RedisError when other writers kept changing the same contacts."""
        keys = [self.keys.contact(cid) for cid, _, _ in contacts]
        for _attempt in range(WATCH_TRIES):
            with self.r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*keys)
                    reads = self.r.pipeline(transaction=False)
                    for k in keys:
                        reads.hget(k, "numbers")
                    old_numbers = reads.execute()
                    pipe.multi()
                    created = 0
                    for (cid, mapping, new_set), key, old in zip(
                        contacts, keys, old_numbers, strict=True
                    ):
                        if old is None:
                            created += 1
                        for e164 in numbers_of(old) - new_set:
                            pipe.srem(self.keys.contact_number(e164), cid)
                        pipe.delete(key)
                        pipe.hset(key, mapping=dict(mapping))
                        for e164 in new_set:
                            pipe.sadd(self.keys.contact_number(e164), cid)
                        pipe.sadd(self.keys.contacts(), cid)
                    pipe.execute()
                    return created
                except WatchError:
                    continue
        raise RedisError("contacts changed concurrently too often; try again")

    def remove(self, contact_id: str) -> bool:
        """Delete a contact and its index entries. False if there was none."""
        key = self.keys.contact(contact_id)
        for _attempt in range(WATCH_TRIES):
            with self.r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    old = self.r.hget(key, "numbers")
                    exists = self.r.exists(key)
                    if not exists:
                        pipe.unwatch()
                        self.r.srem(self.keys.contacts(), contact_id)
                        return False
                    pipe.multi()
                    for e164 in numbers_of(old):
                        pipe.srem(self.keys.contact_number(e164), contact_id)
                    pipe.delete(key)
                    pipe.srem(self.keys.contacts(), contact_id)
                    pipe.execute()
                    return True
                except WatchError:
                    continue
        raise RedisError("contact changed concurrently too often; try again")
