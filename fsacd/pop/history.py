"""fsacd's own call history per caller number, for the screen pop's "previous calls".

One capped Redis list per number, newest first: ``history:{e164}`` for ordinary calls,
``history:h:{hex}`` for hidden ones, where ``hex`` is HMAC-SHA256(salt, e164). The salt is a
secret from the environment or a file (``[history] salt_env`` / ``salt_file``) and never
written to Redis, so nobody reading Redis can tell the number of a hidden call (not even by
hashing every possible number). Without a salt, hidden calls get no history at all. A number
withheld by the caller has no E.164, so it has no history either.

Hidden and ordinary history of the same number are separate lists: a call to an anonymous
queue never shows up in the pop of an ordinary queue, nor the other way round. Entries of
hidden calls carry no call id (the call hash could tell more than the pop may).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from fsacd.config import HistoryConfig
from fsacd.core.numbers import Number
from fsacd.secret import MIN_SALT, read_secret
from fsacd.state.base import Pipe
from fsacd.state.history import HistoryStore
from fsacd.state.keys import Keys

log = logging.getLogger(__name__)


def hashed_ref(salt: str, e164: str) -> str:
    """History reference of a hidden number: ``h:`` + hex HMAC-SHA256(salt, e164)."""
    return "h:" + hmac.new(salt.encode(), e164.encode(), hashlib.sha256).hexdigest()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class History:
    """Record and read previous calls. ``env`` (default ``os.environ``) supplies the salt."""

    def __init__(
        self,
        r: Any,
        keys: Keys,
        cfg: HistoryConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        salt: str | None = None,
    ) -> None:
        self.db = HistoryStore(r, keys)
        self.keys = keys
        self.cfg = cfg or HistoryConfig()
        self.env = env
        self._salt = salt
        self._salt_read = salt is not None
        self._warned = False

    def salt(self) -> str | None:
        """The salt (read once); None if not configured or too short."""
        if not self._salt_read:
            self._salt_read = True
            value = read_secret(self.cfg.salt_env, self.cfg.salt_file, self.env)
            if value is not None and len(value) < MIN_SALT:
                log.warning(
                    "history salt shorter than %d characters: ignored; hidden calls get no history",
                    MIN_SALT,
                )
                value = None
            self._salt = value
        return self._salt

    def ref(self, number: Number, hidden: bool) -> str | None:
        """The list a number's calls go to: its E.164, or the salted hash if ``hidden``;
        None when it has none (no valid number, hidden without a salt, history off)."""
        if self.cfg.max_entries <= 0 or number.status != "valid" or not number.e164:
            return None
        if not hidden:
            return number.e164
        salt = self.salt()
        if salt is None:
            if not self._warned:
                self._warned = True
                log.warning("no history salt configured: hidden calls get no history")
            return None
        return hashed_ref(salt, number.e164)

    def record(
        self,
        call_id: str,
        number: Number,
        hidden: bool,
        queue: str,
        agent: str | None,
        outcome: str,
        ts: float | None = None,
    ) -> bool:
        """Append one call to the number's history. False if the number has no history."""
        ref = self.ref(number, hidden)
        if ref is None:
            return False
        self.record_ref(ref, call_id, queue, agent, outcome, ts, hidden=hidden)
        return True

    def record_ref(
        self,
        ref: str,
        call_id: str,
        queue: str,
        agent: str | None,
        outcome: str,
        ts: float | None = None,
        *,
        hidden: bool | None = None,
        pipe: Pipe = None,
    ) -> None:
        """Append to the list ``ref`` (from :meth:`ref`); hidden refs get no call id."""
        if self.cfg.max_entries <= 0:
            return
        hidden = ref.startswith("h:") if hidden is None else hidden
        entry = {
            "ts": round(time.time() if ts is None else ts, 3),
            "queue": queue,
            "agent": agent or "",
            "outcome": outcome,
        }
        if not hidden:
            entry["call"] = call_id
        text = json.dumps(entry, separators=(",", ":"))
        self.db.push(ref, text, self.cfg.max_entries, self.cfg.ttl, pipe=pipe)

    def previous(self, number: Number, hidden: bool, limit: int = 5) -> list[dict[str, Any]]:
        """The number's last ``limit`` calls, newest first: ``{ts, date, queue, agent,
        outcome}`` (and ``call`` unless hidden)."""
        ref = self.ref(number, hidden)
        return [] if ref is None else self.previous_ref(ref, limit)

    def previous_ref(self, ref: str, limit: int = 5) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        return self.decode(self.db.recent(ref, limit))

    @staticmethod
    def decode(raws: list[str]) -> list[dict[str, Any]]:
        """Stored history entries (JSON text, newest first) as :meth:`previous` gives them."""
        out = []
        for raw in raws:
            try:
                entry = json.loads(raw)
                entry["date"] = _iso(float(entry["ts"]))
            except (ValueError, KeyError, TypeError):
                continue
            out.append(entry)
        return out
