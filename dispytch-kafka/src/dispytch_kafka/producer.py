"""`KafkaProducer`: the emitter's seam to Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError, KafkaTimeoutError  # type: ignore[import-untyped]
from pydantic import BaseModel

from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch_kafka.config import KafkaEventConfig
from dispytch_kafka.settings import KafkaSettings


class KafkaPublishError(Exception):
    """Kafka refused a message; `__cause__` holds aiokafka's error."""


class KafkaProducer(Producer):
    """Publishes events with an `aiokafka.AIOKafkaProducer`.

    Wrap a client you built (`KafkaProducer(AIOKafkaProducer(...))`) or let the backend
    build one from `KafkaSettings`. Concurrent emits share aiokafka's batches. The
    client is started on `start()` or the first send if it is not running yet, and
    stopped by `stop()` only when this producer started it.
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
        self._lock = asyncio.Lock()
        self._appending = asyncio.Lock()

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
        async with self._lock:
            if self._started:
                return
            client = self._client
            if client is not None and _producer_running(client):
                self._started = True
                return
            if client is None:
                assert self._settings is not None
                client = AIOKafkaProducer(**self._settings.producer_options())
            try:
                await client.start()
            except BaseException:
                await client.stop()
                raise
            self._client = client
            self._started = self._owns_client = True

    async def stop(self) -> None:
        """Deliver what is buffered, then disconnect a client this producer started."""
        async with self._lock:
            if self._owns_client and self._client is not None:
                await self._client.stop()
                if self._builds_client:
                    self._client = None
            self._started = self._owns_client = False

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` to `topic` and wait until Kafka confirms it."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish `message` (headers included) and wait until Kafka confirms it."""
        if not self._started:
            await self.start()
        client, config = self._client, _event_config(message.config)
        assert client is not None
        if config.partition is not None:
            partitions = await client.partitions_for(message.topic)
            if config.partition not in partitions:
                raise KafkaPublishError(
                    f"topic {message.topic!r} has no partition {config.partition}; "
                    f"its partitions are {sorted(partitions)}"
                )
        try:
            # One append at a time: aiokafka wakes every waiting send() whenever a full
            # batch drains, which makes a burst of thousands of emits quadratic.
            async with self._appending:
                delivery = await client.send(
                    message.topic,
                    message.payload,
                    key=config.key_bytes(),
                    partition=config.partition,
                    timestamp_ms=config.timestamp_ms,
                    headers=config.header_pairs(message.headers) or None,
                )
            await delivery
        except KafkaTimeoutError as exc:
            raise ProducerTimeout(
                f"Kafka did not confirm a message to topic {message.topic!r} in time "
                f"(request_timeout_ms); is the broker reachable?"
            ) from exc
        except KafkaError as exc:
            raise KafkaPublishError(
                f"Kafka refused a message to topic {message.topic!r}: {exc!r}"
            ) from exc


_DEFAULT_CONFIG = KafkaEventConfig()


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
