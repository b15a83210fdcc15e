"""A light unbounded queue for one reader: a call's inbox, a connection's event queue.

``gevent.queue.Queue`` costs about 3.7 KiB per instance (three deques and their blocks);
a waiting caller has one or two of them, so they were a tenth of the memory a waiting call
took (docs/performance.md). A :class:`Mailbox` is a list and one ``gevent.event.Event``
(about 0.3 KiB). Any greenlet may :meth:`put`; one greenlet at a time may :meth:`get`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from gevent.event import Event
from gevent.queue import Empty

T = TypeVar("T")

__all__ = ["Empty", "Mailbox"]


class Mailbox(Generic[T]):
    """FIFO of items; :meth:`get` waits (with a timeout) and raises ``gevent.queue.Empty``."""

    __slots__ = ("_items", "_ready")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._ready = Event()

    def put(self, item: T) -> None:
        """Add an item (never blocks)."""
        self._items.append(item)
        self._ready.set()

    def get(self, timeout: float | None = None) -> T:
        """The oldest item; waits up to ``timeout`` seconds (None: for ever, 0: not at all)."""
        if not self._items:
            self._ready.clear()
            if timeout is not None and timeout <= 0:
                raise Empty
            self._ready.wait(timeout)
            if not self._items:
                raise Empty
        item = self._items.pop(0)
        if not self._items:
            self._ready.clear()
        return item

    def get_nowait(self) -> T:
        """The oldest item, or ``Empty`` at once."""
        return self.get(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)
