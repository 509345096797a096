"""`Partition`: one assigned partition, for as long as the assignment lasts, and its records
as the messages it hands out."""

from __future__ import annotations

from collections import deque
from typing import Any

from dispytch.listener.consumer import Message


class Partition:
    """What the consumer knows about one partition during one assignment.

    `backlog` holds records fetched and not handed out yet. Offsets handed out are
    tracked until done; acks may arrive in any order, and `committable` only moves
    past offsets that are all done, so a commit never skips a message still in
    flight or failed. Once revoked the partition is `retired` and ignores late acks.
    """

    def __init__(self, topic: str, number: int) -> None:
        self.topic = topic
        self.number = number
        self.key = f"{topic}:{number}"
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

    def hand_out(self, count: int, in_flight: dict[Message, Partition]) -> list[Message]:
        """The next `count` records of the backlog as messages, tracked as handed out:
        their offsets pending, each message in `in_flight`."""
        backlog = self.backlog
        messages = []
        for _ in range(count):
            record = backlog.popleft()
            offset: int = record.offset
            message = self.message(record, offset)
            self.track(offset)
            in_flight[message] = self
            messages.append(message)
        return messages

    def message(self, record: Any, offset: int) -> Message:
        """`record`, an aiokafka `ConsumerRecord` of this partition at `offset`, as a
        `Message` (topic and partition read from the partition, not from each record)."""
        headers, value = record.headers, record.value
        return Message(
            self.topic,
            value if value is not None else b"",
            self.key,
            {n: (v or b"").decode("utf-8", "replace") for n, v in headers} if headers else {},
            1,
            {
                "topic": self.topic,
                "partition": self.number,
                "offset": offset,
                "key": record.key,
                "headers": headers,
                "timestamp": record.timestamp,
            },
            record,
        )

    def track(self, offset: int) -> None:
        """Record that `offset` was handed out (offsets arrive in increasing order)."""
        self.pending.append(offset)

    def settle(self, offset: int, resume_below: int) -> bool:
        """Record that `offset` was handled (see `done`); True when the partition was
        paused and now has at most `resume_below` offsets in flight: time to resume it."""
        self.done(offset)
        if self.paused and self.in_flight <= resume_below:
            self.paused = False
            return True
        return False

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
