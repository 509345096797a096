"""The RabbitMQ consumer: manual acks, delayed requeue, native dead-lettering, clean stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from functools import partial
from typing import Any, cast

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from dispytch.backends.backend import Subscription
from dispytch.listener.consumer import Consumer, Message
from dispytch_rabbitmq import topology
from dispytch_rabbitmq.config import AMQP_PROPERTIES
from dispytch_rabbitmq.connection import connect
from dispytch_rabbitmq.settings import RabbitMQSettings

logger = logging.getLogger("dispytch_rabbitmq")

_GONE = (AMQPError, ConnectionError)
"""Errors settling a message whose channel is gone: the broker redelivers it anyway."""

_CANCEL_TIMEOUT = 5.0
"""Seconds `stop()` waits for the broker to confirm that consuming stopped."""


class RabbitMQConsumer(Consumer):
    """Consumes RabbitMQ queues and acknowledges each message after it was handled.

    `RabbitMQConsumer(queue, ...)` consumes aio-pika queues you declared yourself, as in
    Dispytch 0.10. `RabbitMQConsumer(settings=..., subscription=...)` connects, sets the
    prefetch and declares the group's queue and bindings on `start()` (what
    `EventListener.from_backend` does).

    - The topic is the routing key; the ordering key is the queue name.
    - `nack(msg, delay)` holds the message for `delay` seconds, then rejects it with
      requeue: no hot loop, and at most `prefetch` messages are held.
    - `attempt` is the quorum queue's delivery count, else 2 for a redelivered message.
    - `metadata`: `queue`, `exchange`, `routing_key`, `delivery_tag`, `redelivered`,
      `consumer_tag`, `headers` (all AMQP headers, any type) and `properties`.
    - `stop()` cancels the consumer and hands every message not acked back to the broker.
    """

    def __init__(
        self,
        *queues: AbstractQueue,
        settings: RabbitMQSettings | None = None,
        subscription: Subscription | None = None,
    ) -> None:
        if bool(queues) == (settings is not None) or (settings is None) != (subscription is None):
            raise TypeError(
                "RabbitMQConsumer takes either aio-pika queues or settings=... and subscription=..."
            )
        self.queues = list(queues)
        self._settings = settings
        self._subscription = subscription
        self._connection: AbstractRobustConnection | None = None
        self._tags: dict[str, ConsumerTag] = {}
        self._starting = asyncio.Lock()
        self._inbox: asyncio.Queue[tuple[str, AbstractIncomingMessage]] = asyncio.Queue()
        self._unsettled: set[Message] = set()
        self._delayed: set[asyncio.Task[None]] = set()
        self._delimiter = settings.topic_delimiter if settings is not None else "."
        self._reconnected: list[Callable[[], None]] = []
        if subscription is not None:
            _check_delimiter(subscription, self._delimiter)

    async def start(self) -> None:
        """Connect and declare (settings only), then start consuming every queue.

        Returns once the exchange, the group's queue and its bindings exist and the broker
        confirmed every subscription (`basic.consume-ok`): a message published from then
        on for the handlers' topics is routed to the queue and delivered to this consumer.
        """
        async with self._starting:
            if self._tags:
                return
            if self._settings is not None and self._subscription is not None:
                self.queues = [await self._open(self._settings, self._subscription)]
            try:
                for queue in self.queues:
                    tag = await queue.consume(partial(self._receive, queue.name))
                    self._tags[queue.name] = tag
            except BaseException:
                await self.stop()
                raise

    _purpose = "consumer"
    """What the connection is for, in its name as the broker shows it."""

    async def _open(self, settings: RabbitMQSettings, subscription: Subscription) -> AbstractQueue:
        connection = await connect(settings, f"{self._purpose} {subscription.group}")
        try:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=settings.prefetch)
            queue = await self._declare(channel, settings, subscription)
        except BaseException:
            await connection.close()
            raise
        connection.reconnect_callbacks.add(self._report_reconnect)
        self._connection = connection
        return queue

    async def _declare(
        self, channel: AbstractChannel, settings: RabbitMQSettings, subscription: Subscription
    ) -> AbstractQueue:
        """The queue to consume: the group's, bound to its handlers' topics."""
        return await topology.group_queue(
            channel, settings, subscription.group, subscription.patterns
        )

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the connection is back after being lost (settings only:
        a consumer given queues does not own their connection)."""
        self._reconnected.append(callback)

    def _report_reconnect(self, connection: object) -> None:
        for callback in self._reconnected:
            callback()

    async def _receive(self, queue: str, raw: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait((queue, raw))

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages as the broker delivers them."""
        if not self._tags:
            await self.start()
        while True:
            queue, raw = await self._inbox.get()
            if _stale(raw):
                continue  # its channel closed (a reconnect): the broker delivers it again
            msg = self._message(queue, raw)
            self._unsettled.add(msg)
            yield msg

    async def ping(self) -> None:
        """Raise unless the connection and every consuming channel are open."""
        if self._connection is not None and self._connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ is closed")
        for queue in self.queues:
            if queue.channel.is_closed:
                raise ConnectionError(f"the channel consuming {queue.name!r} is closed")

    async def ack(self, msg: Message) -> None:
        """Acknowledge a handled message."""
        self._unsettled.discard(msg)
        raw: AbstractIncomingMessage = msg.raw
        tag = cast(int, raw.delivery_tag)  # set on every message consumed with acks
        try:
            # Queue the frame without waiting for the socket to take it: acks have no reply.
            await raw.channel.basic_ack(tag, wait=False)
        except _GONE as exc:
            logger.warning("could not ack a message from %s (%s); it comes again", msg.topic, exc)

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        """Requeue a message after about `delay` seconds, holding it until then."""
        self._unsettled.discard(msg)
        if delay <= 0:
            await _requeue(msg.raw)
            return
        task = asyncio.create_task(self._requeue_later(msg.raw, delay))
        self._delayed.add(task)
        task.add_done_callback(self._delayed.discard)

    async def _requeue_later(self, raw: AbstractIncomingMessage, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            await _requeue(raw)

    async def stop(self) -> None:
        """Cancel consuming and give every message not acked back to the broker."""
        for queue in self.queues:
            tag = self._tags.pop(queue.name, None)
            if tag is not None and not queue.channel.is_closed:  # closed: nothing to cancel
                with suppress(*_GONE, asyncio.TimeoutError):
                    await asyncio.wait_for(queue.cancel(tag), _CANCEL_TIMEOUT)
        for task in list(self._delayed):
            task.cancel()
        await asyncio.gather(*self._delayed, return_exceptions=True)
        while not self._inbox.empty():
            await _requeue(self._inbox.get_nowait()[1])
        for msg in self._unsettled:
            await _requeue(msg.raw)
        self._unsettled.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _message(self, queue: str, raw: AbstractIncomingMessage) -> Message:
        headers: dict[str, Any] = raw.headers or {}
        routing_key = raw.routing_key or ""
        count = headers.get("x-delivery-count")
        topic = routing_key if self._delimiter == "." else routing_key.replace(".", self._delimiter)
        return Message(
            topic=topic,
            payload=raw.body,
            key=queue,
            headers={k: v for k, v in headers.items() if isinstance(v, str)},
            attempt=count + 1 if isinstance(count, int) else 2 if raw.redelivered else 1,
            metadata={
                "queue": queue,
                "exchange": raw.exchange,
                "routing_key": routing_key,
                "delivery_tag": raw.delivery_tag,
                "redelivered": raw.redelivered,
                "consumer_tag": raw.consumer_tag,
                "headers": headers,
                "properties": {name: getattr(raw, name) for name in AMQP_PROPERTIES},
            },
            raw=raw,
        )


class DeadLetteringRabbitMQConsumer(RabbitMQConsumer):
    """A `RabbitMQConsumer` for queues with a dead-letter exchange.

    A listener with `native_dead_letter=True` rejects failed messages without requeue,
    and RabbitMQ routes them through the queue's dead-letter exchange (adding an
    `x-death` header). Use it only for queues that have one: without, RabbitMQ drops
    rejected messages.
    """

    async def dead_letter(self, msg: Message, reason: str) -> None:
        """Reject `msg` without requeue so that RabbitMQ dead-letters it."""
        self._unsettled.discard(msg)
        logger.warning("dead-lettering a message from %s through the DLX: %s", msg.topic, reason)
        try:
            await msg.raw.reject(requeue=False)
        except _GONE as exc:
            logger.warning(
                "could not dead-letter a message from %s (%s); RabbitMQ will deliver it again",
                msg.topic,
                exc,
            )


async def _requeue(raw: AbstractIncomingMessage) -> None:
    with suppress(*_GONE):
        await raw.reject(requeue=True)


def _stale(raw: AbstractIncomingMessage) -> bool:
    try:
        return raw.channel.is_closed
    except ChannelInvalidStateError:
        return True


def _check_delimiter(subscription: Subscription, delimiter: str) -> None:
    for pattern in subscription.patterns:
        if pattern.delimiter != delimiter:
            raise ValueError(
                f"handler topic {pattern.text!r} uses the delimiter {pattern.delimiter!r}, but the "
                f"RabbitMQ setting topic_delimiter is {delimiter!r}: set both to the same value"
            )
