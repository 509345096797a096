"""`KafkaProducer`: the emitter's seam to Kafka."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    KafkaError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)
from pydantic import BaseModel

from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch_kafka.config import KafkaEventConfig
from dispytch_kafka.settings import KafkaSettings


class KafkaPublishError(Exception):
    """Kafka refused a message; `__cause__` holds aiokafka's error."""


class _Confirmation(asyncio.Future[None]):
    """What `enqueue` returns: done once Kafka confirmed (or refused) one message."""

    __slots__ = ("topic",)

    def __init__(self, topic: str, loop: asyncio.AbstractEventLoop | None) -> None:
        asyncio.Future.__init__(self, loop=loop)
        self.topic = topic

    def settle(self, delivery: asyncio.Future[Any]) -> None:
        """Done-callback of aiokafka's delivery future: pass its outcome on."""
        if delivery.cancelled():
            self.cancel()
            return
        error = delivery.exception()  # retrieved even when no one waits any more
        if error is not None:
            self.fail(error)
        elif not self.done():  # done: the emit was cancelled
            self.set_result(None)

    def fail(self, error: BaseException) -> None:
        """Fail with `error`, in Dispytch's terms when it is aiokafka's."""
        if not self.done():
            self.set_exception(_publish_error(error, self.topic))


_Queued = tuple[OutgoingMessage, KafkaEventConfig, _Confirmation]


class KafkaProducer(Producer):
    """Publishes events with an `aiokafka.AIOKafkaProducer`.

    Wrap a client you built (`KafkaProducer(AIOKafkaProducer(...))`) or let the backend
    build one from `KafkaSettings`. The client is started on `start()` or the first
    send if it is not running yet, and stopped by `stop()` only when this producer
    started it.

    Concurrent emits share aiokafka's batches: `enqueue` queues a message and returns a
    future, one task appends the queue to aiokafka's batches in order, and each future
    is settled by its own confirmation. `publish` is `enqueue` and a wait.
    """

    def __init__(
        self, producer: AIOKafkaProducer | None = None, *, settings: KafkaSettings | None = None
    ) -> None:
        if (producer is None) == (settings is None):
            raise TypeError("KafkaProducer takes either an AIOKafkaProducer or settings=...")
        self._client = producer
        self._builds_client = producer is None
        self._settings = settings
        self._started = False
        self._owns_client = False
        self._lifecycle = asyncio.Lock()
        self._queue: deque[_Queued] = deque()
        self._queued = asyncio.Event()
        self._appender: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> KafkaProducer:
        """A producer whose aiokafka client is built from `settings` when it starts."""
        return cls(settings=settings)

    @property
    def client(self) -> AIOKafkaProducer | None:
        """The aiokafka producer (built on start when created from settings)."""
        return self._client

    async def start(self) -> None:
        """Connect, unless the client is running already."""
        async with self._lifecycle:
            if self._started:
                return
            client = self._client
            if client is None:
                assert self._settings is not None
                client = AIOKafkaProducer(**self._settings.producer_options())
            if not _producer_running(client):
                try:
                    await client.start()
                except BaseException:
                    await client.stop()
                    raise
                self._owns_client = True
            self._client = client
            self._loop = asyncio.get_running_loop()
            self._appender = asyncio.create_task(self._append(client))
            self._started = True

    async def stop(self) -> None:
        """Deliver what is queued, then disconnect a client this producer started."""
        async with self._lifecycle:
            if not self._started:
                return
            self._started = False  # the appender finishes the queue, then returns
            self._queued.set()
            if self._appender is not None:
                await self._appender
            if self._owns_client and self._client is not None:
                await self._client.stop()
                if self._builds_client:
                    self._client = None
            self._owns_client = False

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` to `topic` and wait until Kafka confirms it."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish `message` (headers included) and wait until Kafka confirms it."""
        if not self._started:
            await self.start()
        await self.enqueue(message)

    def enqueue(self, message: OutgoingMessage) -> asyncio.Future[None]:
        """Queue `message` behind those queued before it, without waiting.

        The future returned is done once Kafka confirmed the message, or fails with
        `ProducerTimeout` or `KafkaPublishError`. Raises at once: `TypeError` for a
        config of another backend, `RuntimeError` when the producer is not started.
        """
        if not self._started:
            raise RuntimeError(
                "KafkaProducer is not started: await producer.start() first "
                "(an EventEmitter starts its producer itself)"
            )
        confirmation = _Confirmation(message.topic, self._loop)
        self._queue.append((message, _event_config(message.config), confirmation))
        self._queued.set()
        return confirmation

    async def _append(self, client: AIOKafkaProducer) -> None:
        """Hand queued messages to aiokafka one at a time, as a plain loop of `send()`s
        does: many emits waiting in `send()` at once are all woken whenever a full
        batch drains, which makes a burst of emits quadratic."""
        queue = self._queue
        # Confirmations are settled in this one context instead of a copy of the current
        # context per message (`settle` reads no context variables): less garbage.
        context = contextvars.Context()
        while self._started or queue:
            await self._queued.wait()
            self._queued.clear()
            while queue:
                message, config, confirmation = queue.popleft()
                if confirmation.done():  # the emit was cancelled
                    continue
                headers = message.headers or config.headers
                try:
                    if config.partition is not None:
                        await self._check_partition(message.topic, config.partition)
                    delivery = await client.send(
                        message.topic,
                        message.payload,
                        key=config.key_bytes(),
                        partition=config.partition,
                        timestamp_ms=config.timestamp_ms,
                        headers=config.header_pairs(message.headers) if headers else None,
                    )
                except Exception as exc:
                    confirmation.fail(exc)
                else:
                    delivery.add_done_callback(confirmation.settle, context=context)

    async def _check_partition(self, topic: str, partition: int) -> None:
        assert self._client is not None
        partitions = await self._client.partitions_for(topic)
        if partition not in partitions:
            raise KafkaPublishError(
                f"topic {topic!r} has no partition {partition}; "
                f"its partitions are {sorted(partitions)}"
            )


_DEFAULT_CONFIG = KafkaEventConfig()


def _publish_error(error: BaseException, topic: str) -> BaseException:
    """aiokafka's `error` as Dispytch raises it: `ProducerTimeout` or `KafkaPublishError`."""
    if not isinstance(error, KafkaError):
        return error
    mapped: Exception
    if isinstance(error, UnknownTopicOrPartitionError):
        mapped = KafkaPublishError(
            f"topic {topic!r} is unknown to the broker: it does not exist and was not "
            f"created automatically, or no broker answered within request_timeout_ms"
        )
    elif isinstance(error, KafkaTimeoutError) or error.retriable:
        # aiokafka retries retriable errors until request_timeout_ms runs out.
        mapped = ProducerTimeout(
            f"Kafka did not confirm a message to topic {topic!r} within "
            f"request_timeout_ms; last error: {error!r}"
        )
    else:
        mapped = KafkaPublishError(f"Kafka refused a message to topic {topic!r}: {error!r}")
    mapped.__cause__ = error  # as `raise mapped from error`
    return mapped


def _event_config(config: BaseModel | None) -> KafkaEventConfig:
    if config is None:
        return _DEFAULT_CONFIG
    if not isinstance(config, KafkaEventConfig):
        raise TypeError(
            f"the Kafka backend takes a KafkaEventConfig as __backend_config__, "
            f"got {type(config).__name__}"
        )
    return config


def _producer_running(client: Any) -> bool:
    """Whether `client` was started already (aiokafka has no public flag for it)."""
    sender = getattr(client, "_sender", None)
    return getattr(sender, "sender_task", None) is not None
