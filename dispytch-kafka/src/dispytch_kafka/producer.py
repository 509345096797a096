"""`KafkaProducer`: the emitter's seam to Kafka."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Generator
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


class _Delivery:
    """What `enqueue` returns: awaiting it waits for the message's turn in the queue,
    then for Kafka's confirmation, and raises aiokafka's errors in Dispytch's terms.

    It adds no callback per message: a caller awaiting many in order is woken about once
    per batch Kafka confirms.
    """

    __slots__ = ("appended", "config", "message")

    def __init__(
        self,
        message: OutgoingMessage,
        config: KafkaEventConfig,
        appended: asyncio.Future[asyncio.Future[Any]],
    ) -> None:
        self.message, self.config, self.appended = message, config, appended

    def __await__(self) -> Generator[Any, None, None]:
        return self._confirmed().__await__()

    async def _confirmed(self) -> None:
        try:
            await (await self.appended)
        except KafkaError as exc:
            raise _publish_error(exc, self.message.topic) from exc


class KafkaProducer(Producer):
    """Publishes events with an `aiokafka.AIOKafkaProducer`.

    Wrap a client you built (`KafkaProducer(AIOKafkaProducer(...))`) or let the backend
    build one from `KafkaSettings`. The client is started on `start()` or the first
    send if it is not running yet, and stopped by `stop()` only when this producer
    started it.

    Concurrent emits share aiokafka's batches: `enqueue` queues a message and returns its
    delivery, one task appends the queue to aiokafka's batches in order, and awaiting a
    delivery waits for that message's confirmation. `publish` is `enqueue` and a wait.
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
        self._queue: deque[_Delivery] = deque()
        self._queued = asyncio.Event()
        self._appender: asyncio.Task[None] | None = None

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

    async def ping(self) -> None:
        """Fetch the cluster's metadata (starting the producer first); raise when no
        broker answers."""
        if not self._started:
            await self.start()
        assert self._client is not None
        await self._client.client.fetch_all_metadata()

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` to `topic` and wait until Kafka confirms it."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish `message` (headers included) and wait until Kafka confirms it."""
        if not self._started:
            await self.start()
        await self.enqueue(message)

    def enqueue(self, message: OutgoingMessage) -> Awaitable[None]:
        """Queue `message` behind those queued before it, without waiting.

        Awaiting what is returned waits until Kafka confirmed the message, and raises
        `ProducerTimeout` or `KafkaPublishError`. Raises at once: `TypeError` for a
        config of another backend, `RuntimeError` when the producer is not started.
        """
        if not self._started:
            raise RuntimeError(
                "KafkaProducer is not started: await producer.start() first "
                "(an EventEmitter starts its producer itself)"
            )
        appended: asyncio.Future[asyncio.Future[Any]] = asyncio.get_running_loop().create_future()
        delivery = _Delivery(message, _event_config(message.config), appended)
        self._queue.append(delivery)
        self._queued.set()
        return delivery

    async def _append(self, client: AIOKafkaProducer) -> None:
        """Hand queued messages to aiokafka one at a time, as a plain loop of `send()`s
        does: many emits waiting in `send()` at once are all woken whenever a full
        batch drains, which makes a burst of emits quadratic."""
        queue = self._queue
        while self._started or queue:
            await self._queued.wait()
            self._queued.clear()
            while queue:
                queued = queue.popleft()
                if queued.appended.done():  # the emit was cancelled
                    continue
                message, config = queued.message, queued.config
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
                    if not queued.appended.done():
                        queued.appended.set_exception(exc)
                else:
                    if not queued.appended.done():
                        queued.appended.set_result(delivery)

    async def _check_partition(self, topic: str, partition: int) -> None:
        assert self._client is not None
        partitions = await self._client.partitions_for(topic)
        if partition not in partitions:
            raise KafkaPublishError(
                f"topic {topic!r} has no partition {partition}; "
                f"its partitions are {sorted(partitions)}"
            )


_DEFAULT_CONFIG = KafkaEventConfig()


def _publish_error(error: KafkaError, topic: str) -> Exception:
    """aiokafka's `error` as Dispytch raises it: `ProducerTimeout` or `KafkaPublishError`."""
    if isinstance(error, UnknownTopicOrPartitionError):
        return KafkaPublishError(
            f"topic {topic!r} is unknown to the broker: it does not exist and was not "
            f"created automatically, or no broker answered within request_timeout_ms"
        )
    if isinstance(error, KafkaTimeoutError) or error.retriable:
        # aiokafka retries retriable errors until request_timeout_ms runs out.
        return ProducerTimeout(
            f"Kafka did not confirm a message to topic {topic!r} within "
            f"request_timeout_ms; last error: {error!r}"
        )
    return KafkaPublishError(f"Kafka refused a message to topic {topic!r}: {error!r}")


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
