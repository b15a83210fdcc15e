"""After a busy spell, give back what it took: the Redis connections it opened (idle for a
while) and the heap memory its calls freed (glibc's ``malloc_trim``), so a controller's RSS
comes back near its baseline instead of staying at its peak (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: How often the housekeeper looks (seconds).
CHECK_EVERY = 5.0
#: A Redis connection idle this long (seconds) beyond the few kept is closed.
IDLE_FOR = 10.0
#: Calls gone since the busiest moment that make giving memory back worth it.
TRIM_AFTER_CALLS = 50
#: Live calls at most for the process to count as quiet (collect and trim only then).
QUIET_CALLS = 50

def _load_libc() -> Any:
    """glibc's ``malloc_trim``, or None (another C library, or none reachable). Looked up
    once, at import: not in the middle of a busy spell (``ctypes.util.find_library`` would
    run a subprocess and import modules then)."""
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's, if glibc
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_MALLOC_TRIM = _load_libc()


def freeze_startup() -> int:
    """Collect once, then exclude what start-up built (modules, phone metadata, config) from
    every later collection (``gc.freeze``): a full collection of those ~50,000 objects
    stopped every call for ~40 ms whenever the collector ran one under load. Returns how many
    objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def malloc_trim() -> bool:
    """``malloc_trim(0)``: glibc returns the free pages of its heaps to the system. False
    where there is no glibc (the call is then a no-op)."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class Housekeeper:
    """Looks every :data:`CHECK_EVERY` seconds: closes idle Redis connections and, once
    :data:`TRIM_AFTER_CALLS` calls have ended since the busiest moment (or connections
    were closed), trims the heap."""

    def __init__(self, close_idle: Callable[[float], int], calls: Callable[[], int]) -> None:
        self._close_idle = close_idle
        self._calls = calls
        self.peak = 0
        self.trims = 0
        self._settle = False

    def seen(self, calls: int) -> None:
        """Live calls now (the controller tells each new one)."""
        if calls > self.peak:
            self.peak = calls

    @staticmethod
    def _quiet(now: int) -> bool:
        """Few calls up (at most :data:`QUIET_CALLS`): a collection is short and stops few."""
        return now <= QUIET_CALLS

    def tick(self) -> None:
        closed = self._close_idle(IDLE_FOR)
        now = self._calls()
        self.seen(now)
        if not self._quiet(now):
            # a full collection and a trim stop every call for their duration (hundreds of
            # milliseconds on a big heap): never while many calls are up
            return
        due = bool(closed) or self.peak - now >= TRIM_AFTER_CALLS
        if not due and not self._settle:
            return
        # a spell's trim is followed by one more a tick later: the teardown of its calls
        # (their records, their connections) was still allocating at the first
        self._settle = due
        # what the calls and connections leave are cycles of objects (a call and its
        # session, a connection's parser): freed by a collection only, then given back
        gc.collect()
        if malloc_trim():
            self.trims += 1
        log.debug("memory: %d idle Redis connection(s) closed, heap trimmed", closed)
        self.peak = now
