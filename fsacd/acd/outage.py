"""Riding out a Redis outage: a call's state changes are retried with backoff until Redis is
back (bounded by :data:`RETRY_FOR`), and the outage is logged once when it starts and once
when it ends, not as a traceback per greenlet and per retry.

A call that FreeSWITCH bridged while Redis was away is recorded when Redis returns (answered,
its agent in-call, then in wrap-up), so recovery never mistakes it for a lost call.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import gevent

from fsacd.state.connection import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a call's Redis write is retried before the call gives up on it (recovery and the
#: sweep take over once Redis is back).
RETRY_FOR = 60.0
#: Backoff between tries: from FIRST_DELAY, doubling, up to MAX_DELAY.
FIRST_DELAY = 0.05
MAX_DELAY = 1.0


class RedisUnavailable(Exception):
    """Redis stayed away longer than a write may wait."""


class Outage:
    """Process-wide memory of the current outage: one line when it starts, one when it ends."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.failures = 0

    def failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.time()
            log.warning(
                "Redis unreachable (%s during %s): retrying with backoff",
                type(exc).__name__,
                what,
            )

    def ok(self) -> None:
        if self.down_since is not None:
            log.warning(
                "Redis reachable again after %.1f s (%d failed tries)",
                time.time() - self.down_since,
                self.failures,
            )
            self.down_since = None
            self.failures = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None


#: The one per process.
OUTAGE = Outage()


def durable(
    what: str, fn: Callable[..., T], *args: Any, retry_for: float = RETRY_FOR, **kwargs: Any
) -> T:
    """``fn(*args, **kwargs)``, retried through a Redis outage; RedisUnavailable after
    ``retry_for`` seconds. Errors that are not an outage (a script refusing, a bug) pass."""
    deadline = time.time() + retry_for
    delay = FIRST_DELAY
    while True:
        try:
            result = fn(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            OUTAGE.failed(what, exc)
            if time.time() + delay > deadline:
                raise RedisUnavailable(f"Redis away for {retry_for:.0f}s during {what}") from exc
            gevent.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            continue
        OUTAGE.ok()
        return result


class Durable:
    """A proxy whose methods are :func:`durable` calls of the wrapped object's methods (the
    call flow's view of the Store and the screen pop); other attributes pass through."""

    def __init__(self, target: Any, retry_for: float = RETRY_FOR) -> None:
        self._target = target
        self._retry_for = retry_for

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return durable(name, value, *args, retry_for=self._retry_for, **kwargs)

        return call


def note_failure(what: str, logger: logging.Logger | None = None) -> None:
    """Call inside an ``except``: an outage is noted once (no traceback: one line when it
    starts, one when it ends), anything else is logged with its traceback."""
    exc = sys.exc_info()[1]
    if isinstance(exc, TRANSIENT_ERRORS):
        OUTAGE.failed(what, exc)
    else:
        (logger or log).exception("%s failed", what)


def quietly(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """For loops that run again anyway (lease, recovery): an outage is noted once (no
    traceback), anything else is logged with its traceback. True when ``fn`` ran through."""
    try:
        fn(*args, **kwargs)
    except TRANSIENT_ERRORS as exc:
        OUTAGE.failed(what, exc)
        return False
    except Exception:  # noqa: BLE001 - a loop must survive a bug in one pass
        log.exception("%s failed", what)
        return False
    OUTAGE.ok()
    return True


class RepeatFilter(logging.Filter):
    """Lets an identical warning or error (same logger, level and text) through once per
    ``every`` seconds; the next one that passes says how many were held back. ``fsacd serve``
    puts it on its log handlers: a loop failing each second during an outage writes one line
    (with its traceback) per ``every`` seconds, not one per pass. Info lines and lines that
    differ (another call, another agent) always pass."""

    def __init__(self, every: float = 30.0) -> None:
        super().__init__()
        self.every = every
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = time.time()
        last, held = self._seen.get(key, (0.0, 0))
        if now - last < self.every:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} [{held} more like this in {now - last:.0f} s]"
        self._seen[key] = (now, 0)
        if len(self._seen) > 10_000:  # bounded: forget the oldest half
            for k in sorted(self._seen, key=lambda k: self._seen[k][0])[:5_000]:
                del self._seen[k]
        return True
