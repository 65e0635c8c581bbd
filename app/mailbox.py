"""A one-slot mailbox: the only way live threads hand items to each other.

``put`` overwrites an unread item (counting it as dropped), so a slow consumer always gets the
newest item and latency cannot build up; ``get`` waits at most ``timeout_s``.
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0
        self.delivered = 0

    def put(self, item: T) -> bool:
        """Leave ``item`` for the consumer; returns False when it overwrote an unread item."""
        with self._cond:
            overwrote = self._full
            if overwrote:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()
            return not overwrote

    def get(self, timeout_s: float) -> T:
        """The newest unread item; TimeoutError after ``timeout_s``; EOFError once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout=timeout_s):
                raise TimeoutError("no item within the timeout")
            if not self._full:
                raise EOFError("mailbox closed")
            item, self._item, self._full = self._item, None, False
            self.delivered += 1
            self._cond.notify_all()  # wake a producer waiting in wait_empty()
            return item  # type: ignore[return-value]

    def wait_empty(self, timeout_s: float) -> bool:
        """Wait until the consumer has taken the item (or the mailbox is closed); False after
        ``timeout_s``. A producer that must not drop anything waits here before each put."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._full or self._closed, timeout=timeout_s)

    def peek(self) -> T | None:
        """The unread item without taking it (None when empty); never blocks."""
        with self._cond:
            return self._item if self._full else None

    def close(self) -> None:
        """Wake every waiter; later gets raise EOFError once the last item is taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
