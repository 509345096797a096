"""`SQSProducer`: publishes events to SNS topics, which fan them out to the groups' queues."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pydantic import BaseModel

from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch_sqs import wire
from dispytch_sqs.config import event_config
from dispytch_sqs.settings import SQSSettings
from dispytch_sqs.topology import Topics

BATCH_LIMIT = 10
"""Messages one SNS PublishBatch takes at most."""


class SQSPublishError(Exception):
    """SNS refused an event, or the event cannot be sent (too large, say)."""


@dataclass
class _Queued:
    topic: str
    entry: dict[str, Any]
    delivery: asyncio.Future[None]


class SQSProducer(Producer):
    """Publishes each event to the SNS topic of its topic (created on first use).

    Events waiting to be published are sent in batches of up to ten per topic
    (PublishBatch), as many batches at once as the client has connections; with
    `fifo=True` one batch per topic at a time, so that events keep their order. An event
    whose body is larger than `settings.max_payload_bytes`, or which takes more than
    `max_message_size` with its attributes, raises `SQSPublishError` before anything is sent.
    """

    def __init__(self, settings: SQSSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._client_context: Any = None
        self._topics: Topics | None = None
        self._started = False
        self._lifecycle = asyncio.Lock()
        self._queue: deque[_Queued] = deque()
        self._queued = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_pool_connections)
        self._topic_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: SQSSettings) -> SQSProducer:
        """A producer whose SNS client is built from `settings` when it starts."""
        return cls(settings)

    @property
    def client(self) -> Any:
        """The aiobotocore SNS client, while the producer runs."""
        return self._client

    async def start(self) -> None:
        """Create the SNS client, unless started already."""
        async with self._lifecycle:
            if self._started:
                return
            context = self.settings.session().create_client("sns", **self.settings.client_options())
            self._client = await context.__aenter__()
            self._client_context = context
            self._topics = Topics(self.settings, self._client)
            self._sender = asyncio.create_task(self._send_queued())
            self._started = True

    async def stop(self) -> None:
        """Publish what is queued, then close the client."""
        async with self._lifecycle:
            if not self._started:
                return
            self._started = False  # the sender empties the queue, then returns
            self._queued.set()
            if self._sender is not None:
                await self._sender
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self._client_context.__aexit__(None, None, None)
            self._client = self._client_context = self._topics = None

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` to `topic` and wait until SNS accepted it."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish `message`, headers included, and wait until SNS accepted it."""
        if not self._started:
            await self.start()
        await self.enqueue(message)

    def enqueue(self, message: OutgoingMessage) -> Awaitable[None]:
        """Queue `message` behind those queued before it, without waiting.

        Awaiting what is returned waits until SNS accepted the message, and raises
        `ProducerTimeout` or `SQSPublishError`. Raises at once: `TypeError` for a
        config of another backend, `SQSPublishError` for a message too large,
        `RuntimeError` when the producer is not started.
        """
        if not self._started:
            raise RuntimeError(
                "SQSProducer is not started: await producer.start() first "
                "(an EventEmitter starts its producer itself)"
            )
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(message.topic, self._entry(message), delivery))
        self._queued.set()
        return delivery

    def _entry(self, message: OutgoingMessage) -> dict[str, Any]:
        """The PublishBatch entry of `message`."""
        config = event_config(message.config)
        text, base64_body = wire.body(message.payload)
        attributes = wire.attributes(message.topic, message.headers, base64_body)
        body_size = len(text) if base64_body else len(message.payload)
        size = body_size + wire.attributes_size(attributes)
        settings = self.settings
        if body_size > settings.max_payload_bytes or size > settings.max_message_size:
            encoded = " (in base64, as the payload is not UTF-8 text)" if base64_body else ""
            raise SQSPublishError(
                f"an event to topic {message.topic!r} takes {body_size} bytes{encoded} and "
                f"{size - body_size} bytes of attributes; SNS messages take at most "
                f"{settings.max_payload_bytes} and {settings.max_message_size} bytes in all: "
                "send a smaller event, or store the data elsewhere and send a reference"
            )
        entry: dict[str, Any] = {"Message": text, "MessageAttributes": attributes}
        if self.settings.fifo:
            key = config.key if config is not None and config.key else message.topic
            dedup = config.deduplication_id if config is not None else None
            entry["MessageGroupId"] = key
            entry["MessageDeduplicationId"] = dedup or os.urandom(16).hex()
        return entry

    async def _send_queued(self) -> None:
        """Take what is queued, in order, and publish it in batches per topic."""
        queue = self._queue
        while self._started or queue:
            await self._queued.wait()
            self._queued.clear()
            batches: dict[str, list[_Queued]] = {}
            while queue:
                queued = queue.popleft()
                if queued.delivery.done():  # the emit was cancelled
                    continue
                batch = batches.setdefault(queued.topic, [])
                batch.append(queued)
                if len(batch) == BATCH_LIMIT:
                    await self._dispatch(batches.pop(queued.topic))
            for batch in batches.values():
                await self._dispatch(batch)

    async def _dispatch(self, batch: list[_Queued]) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._publish_batch(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _publish_batch(self, batch: list[_Queued]) -> None:
        topic = batch[0].topic
        try:
            if self.settings.fifo:
                lock = self._topic_locks.setdefault(topic, asyncio.Lock())
                async with lock:
                    await self._publish(topic, batch)
            else:
                await self._publish(topic, batch)
        except Exception as exc:
            error = _publish_error(exc, topic)
            for queued in batch:
                if not queued.delivery.done():
                    queued.delivery.set_exception(error)
        finally:
            self._slots.release()

    async def _publish(self, topic: str, batch: list[_Queued]) -> None:
        assert self._topics is not None
        arn = await self._topics.arn(topic)
        entries = [{"Id": str(i), **queued.entry} for i, queued in enumerate(batch)]
        reply = await self._client.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)
        for failed in reply.get("Failed", []):
            queued = batch[int(failed["Id"])]
            if not queued.delivery.done():
                queued.delivery.set_exception(
                    SQSPublishError(
                        f"SNS refused an event to topic {topic!r}: "
                        f"{failed.get('Code')}: {failed.get('Message')}"
                    )
                )
        for queued in batch:
            if not queued.delivery.done():
                queued.delivery.set_result(None)


def _publish_error(error: Exception, topic: str) -> Exception:
    """What an emit of an event to `topic` raises when publishing failed with `error`."""
    if isinstance(error, (ReadTimeoutError, ConnectTimeoutError)):
        return ProducerTimeout(f"SNS did not confirm an event to topic {topic!r} in time")
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return SQSPublishError(
            f"SNS refused an event to topic {topic!r}: "
            f"{detail.get('Code')}: {detail.get('Message')}"
        )
    if isinstance(error, EndpointConnectionError):
        return SQSPublishError(f"could not reach SNS to publish to topic {topic!r}: {error}")
    if isinstance(error, BotoCoreError):
        return SQSPublishError(f"could not publish an event to topic {topic!r}: {error}")
    return error
