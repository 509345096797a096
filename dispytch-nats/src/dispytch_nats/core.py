"""Core NATS: publish and subscribe, at most once.

A message reaches the listeners subscribed when it is published and no other; nothing
is stored, acknowledged or redelivered. A listener group is a NATS queue group: its
listeners share the messages, and every group gets each of them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError
from pydantic import BaseModel

from dispytch.backends.backend import Subscription
from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch.listener.consumer import Consumer, Message
from dispytch_nats._shutdown import close
from dispytch_nats.payload import check_outgoing
from dispytch_nats.settings import NatsSettings
from dispytch_nats.subjects import Subjects

logger = logging.getLogger("dispytch.nats")

MAX_BUFFERED = 65_536
"""Messages a core consumer holds for its listener at most; more are dropped, as NATS
drops messages for a slow consumer."""


class CoreProducer(Producer):
    """Publishes each event on the subject named by its topic (core NATS PUBLISH).

    Core NATS confirms nothing: `send` and `publish` return, and what `enqueue` returns
    completes, once the message is handed to the connection, which writes it to the
    server in the background; `stop()` flushes what is left. Pass `client` to publish
    on a nats-py connection you own.
    """

    def __init__(self, settings: NatsSettings | None = None, *, client: Client | None = None):
        self.settings = settings or NatsSettings(mode="core")
        self._client = client
        self._owns_client = client is None
        self._lifecycle = asyncio.Lock()
        self._queue: deque[tuple[OutgoingMessage, asyncio.Future[None]]] = deque()
        self._queued = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    @property
    def client(self) -> Client | None:
        """The nats-py connection (opened on `start()` when built from settings)."""
        return self._client

    async def start(self) -> None:
        """Connect, unless connected already."""
        async with self._lifecycle:
            if self._client is None:
                self._client = await self.settings.connect()
            if self._sender is None:
                self._sender = asyncio.create_task(self._send_queued(self._client))

    async def stop(self) -> None:
        """Publish what is queued and flush what is not written yet; close the connection
        if this producer opened it."""
        async with self._lifecycle:
            sender, self._sender = self._sender, None
            if sender is not None:
                self._queued.set()
                await sender
            client = self._client
            if client is None:
                return
            if self._owns_client:
                self._client = None
                await close(client, self.settings.timeout)
            elif not client.is_closed:
                await client.flush(math.ceil(self.settings.timeout))

    async def ping(self) -> None:
        """PING the server and wait for its PONG."""
        await _ping(self._client, self.settings)

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` on subject `topic`."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish `message` on its subject, headers included."""
        client = self._client
        if client is None:
            await self.start()
            client = self._client
            assert client is not None
        check_outgoing(client, self.settings.max_payload, message)
        try:  # _publish, written out: this is the path of every emit
            await client.publish(message.topic, message.payload, headers=message.headers or None)
        except NatsError as exc:
            raise _not_taken(message, exc) from exc

    def enqueue(self, message: OutgoingMessage) -> Awaitable[None]:
        """Queue `message` for publishing behind those queued before it, without waiting.

        What is returned completes once the message is handed to the connection (core
        NATS confirms nothing), or raises `ProducerTimeout` when the connection cannot
        take it. Raises at once: `TypeError` for a backend config, `SubjectError` or
        `PayloadTooLarge` for a message the server would refuse, `RuntimeError` when
        the producer is not started.
        """
        client = self._client
        if client is None or self._sender is None:
            raise RuntimeError(
                "CoreProducer is not started: await producer.start() first "
                "(an EventEmitter starts its producer itself)"
            )
        check_outgoing(client, self.settings.max_payload, message)
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((message, handed))
        self._queued.set()
        return handed

    async def _send_queued(self, client: Client) -> None:
        """Publish queued messages in order, as a loop of `publish` calls does; once
        stopped, end when the queue is empty."""
        queue = self._queue
        while self._sender is not None or queue:
            await self._queued.wait()
            self._queued.clear()
            while queue:
                message, handed = queue.popleft()
                if handed.done():  # the emit was cancelled
                    continue
                try:
                    await _publish(client, message)
                except Exception as exc:
                    if not handed.done():
                        handed.set_exception(exc)
                else:
                    if not handed.done():
                        handed.set_result(None)


class CoreConsumer(Consumer):
    """Subscribes to the subjects of `subscription.patterns` in the queue group named
    `subscription.group`.

    A message's `key` is its subject; `metadata` holds `subject` and, when the publisher
    asked for one, `reply`. Pass `client` to subscribe on a connection you own.
    """

    def __init__(
        self, settings: NatsSettings, subscription: Subscription, *, client: Client | None = None
    ) -> None:
        if not subscription.patterns:
            raise ValueError(
                f"group {subscription.group!r} has no topics to consume: register a handler first"
            )
        self.settings = settings
        self.group = subscription.group
        self.subjects = Subjects.of(subscription.patterns)
        self._client = client
        self._owns_client = client is None
        self._subscriptions: list[NatsSubscription] = []
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._dropped = 0

    async def start(self) -> None:
        """Subscribe; return once the server has processed the subscriptions, so that a
        message published from then on reaches this consumer."""
        if self._subscriptions:
            return
        if self._client is None:
            self._client = await self.settings.connect()
        client = self._client
        for filter_subject in self.subjects.filters:
            self._subscriptions.append(
                await client.subscribe(filter_subject, queue=self.group, cb=self._receive)
            )
        await _confirmed(client, self.settings.timeout)

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages as they arrive."""
        await self.start()
        buffer, wanted = self._buffer, self.subjects
        while True:
            if not buffer:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            raw = buffer.popleft()
            if not wanted.wanted(raw.subject):
                continue  # a wider subscription than the topics let it through
            headers = raw.headers
            metadata = {"subject": raw.subject}
            if raw.reply:
                metadata["reply"] = raw.reply
            yield Message(
                raw.subject, raw.data, raw.subject, dict(headers) if headers else {}, 1, metadata
            )

    def ack(self, msg: Message) -> None:
        """Nothing to do: core NATS does not track deliveries."""

    async def ping(self) -> None:
        """PING the server and wait for its PONG."""
        await _ping(self._client, self.settings)

    async def stop(self) -> None:
        """Unsubscribe, and close the connection if this consumer opened it."""
        client = self._client
        if client is None:
            return
        try:
            for subscription in self._subscriptions:
                await subscription.unsubscribe()
        except NatsError as exc:
            logger.debug("could not unsubscribe: %r", exc)
        self._subscriptions = []
        self._buffer.clear()
        if self._owns_client:
            self._client = None
            await close(client, self.settings.timeout)

    async def _receive(self, raw: Msg) -> None:
        if len(self._buffer) >= MAX_BUFFERED:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                logger.warning(
                    "group %r: the listener is too slow, %d messages dropped so far",
                    self.group,
                    self._dropped,
                )
            return
        self._buffer.append(raw)
        self._arrived.set()


async def _publish(client: Client, message: OutgoingMessage) -> None:
    try:
        await client.publish(message.topic, message.payload, headers=message.headers or None)
    except NatsError as exc:
        raise _not_taken(message, exc) from exc


def _not_taken(message: OutgoingMessage, exc: NatsError) -> ProducerTimeout:
    """The connection refused `message`: its outgoing buffer is full while reconnecting."""
    return ProducerTimeout(f"NATS could not take a message to {message.topic!r}: {exc}")


async def _confirmed(client: Client, timeout: float) -> None:
    """Return once the server has processed every subscription sent so far.

    `client.flush()` cannot tell: nats-py writes its PING straight to the socket, ahead
    of the SUBs still waiting in its outgoing buffer, so the PONG may come first. A
    message to a subscription of our own goes out behind them, so when it comes back
    they were processed.
    """
    echo = client.new_inbox()
    subscription = await client.subscribe(echo, max_msgs=1)
    await client.publish(echo, b"")
    try:
        await subscription.next_msg(timeout)
    except NatsError as exc:
        raise RuntimeError(
            f"the NATS server did not confirm the subscriptions within {timeout}s"
        ) from exc


async def _ping(client: Client | None, settings: NatsSettings) -> None:
    if client is None:
        raise RuntimeError("not connected to NATS")
    await client.flush(math.ceil(settings.timeout))
