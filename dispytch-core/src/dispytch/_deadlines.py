"""Deadlines in order: one timer for all of a producer's operations in flight.

A timeout per operation (`asyncio.timeout`, `asyncio.wait_for`) puts a timer per operation on
the event loop's heap: with thousands of publishes waiting for their confirms, pushing and
cancelling those timers costs about a tenth of the publish rate. A producer's operations share
one timeout and begin in order, so their deadlines come in order too: one timer, set for the
oldest deadline still open, does the same work.

What a deadline cancels is its target: the task awaiting the operation (the RabbitMQ producer)
or the future the operation completes (the acknowledgement of a JetStream publish).
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any


class Deadline:
    """The deadline of one operation: its target is cancelled if still open at `at`."""

    __slots__ = ("_deadlines", "at", "cancelling", "expired", "target")

    def __init__(self, deadlines: Deadlines, target: asyncio.Future[Any], at: float) -> None:
        self._deadlines = deadlines
        self.target: asyncio.Future[Any] | None = target
        self.at = at
        self.cancelling = 0
        if sys.version_info >= (3, 11) and isinstance(target, asyncio.Task):
            self.cancelling = target.cancelling()
        self.expired = False

    def timed_out(self) -> bool:
        """Whether the cancellation being handled is this deadline's own, not the caller's.

        Call it once, on `CancelledError`, before `end()`. A task's own cancellation is
        undone (`Task.uncancel`), so that one of the caller's arriving as well still counts.
        """
        if not self.expired:
            return False
        target = self.target
        if sys.version_info < (3, 11) or not isinstance(target, asyncio.Task):
            return True
        return target.uncancel() <= self.cancelling

    def end(self) -> None:
        """Close this deadline: its operation is done, whatever the outcome. A future's
        deadline need not be ended: it closes when the future is done."""
        self.target = None
        self._deadlines._forget_closed()


class Deadlines:
    """Cancels the targets of operations still open `timeout` seconds after they began.

    `begin(target)` as the operation starts, `deadline.end()` once it is done; a task that
    gets `CancelledError` in between asks `deadline.timed_out()` whether it timed out.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._open: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self, target: asyncio.Future[Any]) -> Deadline:
        """Start the deadline of an operation: `target` (a task or a future) is cancelled
        if still open `timeout` seconds from now."""
        loop = target.get_loop()
        if loop is not self._loop:  # a new event loop: what was open went with the old one
            self._drop_all()
            self._loop = loop
        deadline = Deadline(self, target, loop.time() + self.timeout)
        self._forget_closed()
        self._open.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(deadline.at, self._expire)
        return deadline

    def pending(self) -> list[asyncio.Future[Any]]:
        """The targets whose deadlines are open and that are not done."""
        return [d.target for d in self._open if d.target is not None and not d.target.done()]

    def expire_all(self) -> None:
        """Time out every open deadline now (cancelling its target) and drop the timer."""
        for deadline in self._open:
            target = deadline.target
            if target is not None and not target.done():
                deadline.expired = True
                target.cancel()
        self._drop_all()

    def _drop_all(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._open.clear()

    def _forget_closed(self) -> None:
        """Drop the oldest deadlines while they are closed: ended, or their future done
        (futures' deadlines are not ended), so only the operations in flight are held."""
        open_ = self._open
        while open_:
            target = open_[0].target
            if target is not None and not target.done():
                return
            open_.popleft()

    def _expire(self) -> None:
        """Cancel the targets past their deadline, then wait for the next deadline."""
        self._timer = None
        open_ = self._open
        while open_:
            first = open_[0]
            target = first.target
            if target is not None and not target.done():
                loop = target.get_loop()
                if first.at > loop.time():
                    self._timer = loop.call_at(first.at, self._expire)
                    return
                first.expired = True
                target.cancel()
            open_.popleft()
