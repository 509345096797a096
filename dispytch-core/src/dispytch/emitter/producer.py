"""The producer seam: how the emitter hands encoded events to a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class ProducerTimeout(Exception):
    """The backend did not confirm a send in time."""


class Producer(ABC):
    """Sends encoded events to a backend.

    Implement `send`; implement `publish` too when the backend can carry headers.
    Optional `start()`/`stop()` coroutines are called by the emitter.
    """

    @abstractmethod
    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Deliver `payload` to `topic`; raise `ProducerTimeout` when the backend times out."""


@dataclass
class OutgoingMessage:
    """One encoded event on its way to a producer, as emitter middleware sees it."""

    topic: str
    payload: bytes
    config: BaseModel | None = None
    headers: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class SupportsPublish(Protocol):
    """A producer that takes the whole outgoing message, headers included."""

    async def publish(self, message: OutgoingMessage) -> None: ...


@runtime_checkable
class SupportsEnqueue(Protocol):
    """A producer that queues a whole message without waiting for the broker.

    `enqueue` is a plain method: it queues `message` for publishing, in call order, and
    returns an awaitable that completes once the broker confirmed the message, or
    raises `ProducerTimeout` or the backend's own error. On a
    producer not started it raises `RuntimeError`; the emitter then calls `start()`,
    which must be idempotent, and enqueues again.
    """

    def enqueue(self, message: OutgoingMessage) -> Awaitable[None]: ...


def publisher(producer: Producer) -> Callable[[OutgoingMessage], Awaitable[None]]:
    """How `producer` takes a whole message: its `publish`, or its `send` (without headers)."""
    if isinstance(producer, SupportsPublish):
        return producer.publish

    async def send(message: OutgoingMessage) -> None:
        await producer.send(message.topic, message.payload, message.config)

    return send
