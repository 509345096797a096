"""Batch handlers: events collected per ordering key and handled as one list.

A handler registered with `batch=Batch(max_size=..., max_wait=...)` takes its events as
a parameter annotated `list[Event[Body]]`. Messages routed to it are collected per
ordering key (a Kafka partition, say) until `max_size` are there or `max_wait` seconds
passed since the first; then the handler is called once, its dependencies resolved
once for the batch. Batches of one key run one after another, in order.

Each message stays in flight (it counts towards `max_in_flight`) until its batch is
done, and is acked only then, so a committed offset never passes an unfinished batch.
A batch that raises is retried as a whole under the handler's retry policy; a handler
that raises `BatchFailed(failed=[...])` reports that only those events failed, and only
they are retried and, when retries run out, dead-lettered one by one. A body that does
not validate is dead-lettered alone, before the call; the rest of the batch is handled.

Middleware wraps single-event calls only: a batch handler is called without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dispytch.event import Event


@dataclass(frozen=True)
class Batch:
    """How a batch handler's events are collected: up to `max_size` events of one
    ordering key, or fewer once `max_wait` seconds passed since the first arrived."""

    max_size: int = 100
    max_wait: float = 0.2

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"Batch max_size must be at least 1, got {self.max_size}")
        if not self.max_wait >= 0:
            raise ValueError(f"Batch max_wait must be >= 0 seconds, got {self.max_wait}")


class BatchFailed(Exception):
    """Raised by a batch handler when some events of its batch failed and the others
    were handled.

    `failed` lists the events that failed (the objects the handler was given), or
    `(event, error)` pairs to give each its own error. An event given without an error
    fails with `error` when given, else with the exception this one was raised from
    (`raise BatchFailed(failed=[...]) from exc`), else with this exception. Only the
    failed events are retried, and dead-lettered when no retry is left.
    """

    def __init__(
        self,
        failed: Iterable[Event[Any] | tuple[Event[Any], BaseException]],
        error: BaseException | None = None,
    ) -> None:
        self.failed = list(failed)
        self.error = error
        super().__init__(f"{len(self.failed)} event(s) of the batch failed")

    def errors(self) -> list[tuple[Event[Any], BaseException]]:
        """Each failed event with the error it failed with."""
        default = self.error or self.__cause__ or self
        return [item if isinstance(item, tuple) else (item, default) for item in self.failed]
