"""The consumer seam: how a backend hands messages to the listener."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(eq=False, slots=True)
class Message:
    """One message as received from a backend.

    `key` is the ordering key: messages sharing it are handled one after another.
    `attempt` counts deliveries, starting at 1. `metadata` holds backend facts
    (partition, offset, delivery tag ...) and `raw` the backend's own object.
    """

    topic: str
    payload: bytes
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: Any = field(default=None, repr=False)


class Consumer(ABC):
    """Yields messages from a backend and acknowledges them once handled.

    Optional `start()`/`stop()` coroutines are called by the listener, and an
    optional `nack(msg, delay=...)` hands a message back for redelivery.
    """

    @abstractmethod
    def listen(self) -> AsyncIterator[Message]:
        """Yield messages as they arrive (an async generator)."""

    @abstractmethod
    def ack(self, msg: Message) -> Awaitable[None] | None:
        """Mark `msg` as handled; may be a plain or an async method."""


@runtime_checkable
class SupportsNack(Protocol):
    """A consumer that can hand a message back for redelivery after `delay` seconds."""

    async def nack(self, msg: Message, delay: float = 0.0) -> None: ...


@runtime_checkable
class SupportsDeadLetter(Protocol):
    """A consumer whose broker dead-letters natively (a RabbitMQ DLX, say).

    When present and enabled, the listener calls it instead of publishing to
    its own dead-letter topic; the message counts as settled afterwards.
    """

    async def dead_letter(self, msg: Message, reason: str) -> None: ...
