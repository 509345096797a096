"""Publish deadlines: one timer for all of a producer's publishes in flight.

A timeout per publish (`asyncio.timeout`) puts a timer per publish on the event loop's heap:
with thousands of publishes waiting for their confirms, pushing and cancelling those timers
costs about a tenth of the publish rate. A producer's publishes share one timeout and begin
in order, so their deadlines come in order too: one timer, set for the oldest deadline
still open, does the same work.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque


class Deadline:
    """The deadline of one publish: its task is cancelled if it is still open at `at`."""

    __slots__ = ("at", "cancelling", "expired", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task: asyncio.Task[object] | None = task
        self.at = at
        self.cancelling = 0
        if sys.version_info >= (3, 11):
            self.cancelling = task.cancelling()
        self.expired = False

    def timed_out(self) -> bool:
        """Whether the cancellation being handled is this deadline's own (not the caller's);
        call it once, on `CancelledError`."""
        if not self.expired:
            return False
        if sys.version_info < (3, 11) or self.task is None:
            return True
        return self.task.uncancel() <= self.cancelling


class Deadlines:
    """Cancels the tasks of publishes still open `timeout` seconds after they began.

    `begin()` before awaiting the publish, `end(deadline)` once it is done, whatever the
    outcome; on `CancelledError` in between, `deadline.timed_out()` tells a timeout from a
    cancellation of the caller's.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._open: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> Deadline:
        """Start the deadline of the publish the current task is about to await."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a publish deadline needs to run in an asyncio task")
        loop = task.get_loop()
        deadline = Deadline(task, loop.time() + self.timeout)
        self._open.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(deadline.at, self._expire)
        return deadline

    def end(self, deadline: Deadline) -> None:
        """Close `deadline`: its publish is done."""
        deadline.task = None
        open_ = self._open
        while open_ and open_[0].task is None:
            open_.popleft()

    def _expire(self) -> None:
        """Cancel the publishes past their deadline, then wait for the next deadline."""
        self._timer = None
        open_ = self._open
        while open_:
            first = open_[0]
            if first.task is not None:
                loop = first.task.get_loop()
                if first.at > loop.time():
                    self._timer = loop.call_at(first.at, self._expire)
                    return
                first.expired = True
                first.task.cancel()
            open_.popleft()
