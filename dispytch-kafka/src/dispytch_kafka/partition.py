"""`Partition`: one assigned partition, for as long as the assignment lasts."""

from __future__ import annotations

from collections import deque
from typing import Any


class Partition:
    """What the consumer knows about one partition during one assignment.

    `backlog` holds records fetched and not handed out yet. Offsets handed out are
    tracked until done; acks may arrive in any order, and `committable` only moves
    past offsets that are all done, so a commit never skips a message still in
    flight or failed. Once revoked the partition is `retired` and ignores late acks.
    """

    def __init__(self, key: str = "") -> None:
        self.key = key
        """The ordering key of the partition's messages, `"<topic>:<partition>"`."""
        self.backlog: deque[Any] = deque()
        self.committable: int | None = None
        """The next offset to commit: one past the highest contiguous done offset."""
        self.committed: int | None = None
        self.paused = False
        self.retired = False
        self.pending: deque[int] = deque()
        """Offsets handed out and not done yet, in increasing order."""
        self._done: set[int] = set()

    @property
    def in_flight(self) -> int:
        """Offsets handed out and not done yet."""
        return len(self.pending)

    @property
    def needs_commit(self) -> bool:
        return not self.retired and self.committable != self.committed

    def track(self, offset: int) -> None:
        """Record that `offset` was handed out (offsets arrive in increasing order)."""
        self.pending.append(offset)

    def done(self, offset: int) -> None:
        """Record that `offset` was handled; advance `committable` as far as contiguous."""
        pending, done = self.pending, self._done
        if not done and pending and pending[0] == offset:  # acked in order: the usual case
            pending.popleft()
            self.committable = offset + 1
            return
        done.add(offset)
        while pending and pending[0] in done:
            finished = pending.popleft()
            done.discard(finished)
            self.committable = finished + 1
