"""JetStream: events stored in streams, read by durable pull consumers, one per group.

Every group gets every event; listeners of one group share one durable consumer, so
they compete for its messages. Messages are acked once handled, nacked with a delay for
redelivery, and delivered again when a listener dies without acking them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import APIError, NoStreamResponseError
from pydantic import BaseModel

from dispytch._cancelling import cancel_and_wait
from dispytch._deadlines import Deadlines
from dispytch.backends.backend import Subscription
from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch.listener.consumer import Consumer, Message
from dispytch_nats._shutdown import close
from dispytch_nats.payload import check_outgoing
from dispytch_nats.settings import NatsJetStreamSettings
from dispytch_nats.streams import Streams
from dispytch_nats.subjects import Subjects, root

logger = logging.getLogger("dispytch.nats")

_STOP_GRACE = 1.0
"""Seconds `stop()` waits beyond `block` for pull requests still open to end."""


class JetStreamPublishError(Exception):
    """JetStream refused a message; `__cause__` holds nats-py's error."""


class JetStreamProducer(Producer):
    """Publishes each event to JetStream on the subject named by its topic and waits
    for the stream's acknowledgement.

    Concurrent emits are pipelined: each is sent at once and its acknowledgement awaited
    while the others are sent; `enqueue` (which `emit_many` uses) sends a burst the same
    way with no task per event. When no stream captures a topic, the stream for its first
    token is created (see `NatsJetStreamSettings.stream_name`) and the event published
    again. Pass `client` to publish on a nats-py connection you own; otherwise one is
    opened from `settings` on `start()` and closed on `stop()`.
    """

    def __init__(
        self, settings: NatsJetStreamSettings | None = None, *, client: Client | None = None
    ) -> None:
        self.settings = settings or NatsJetStreamSettings()
        self._client = client
        self._owns_client = client is None
        self._streams: Streams | None = None
        self._lifecycle = asyncio.Lock()
        self._queue: deque[_Queued] = deque()
        self._queued = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._acks = Deadlines(self.settings.timeout)

    @property
    def client(self) -> Client | None:
        """The nats-py connection (opened on `start()` when built from settings)."""
        return self._client

    async def start(self) -> None:
        """Connect, unless connected already."""
        async with self._lifecycle:
            if self._streams is not None:
                return
            if self._client is None:
                self._client = await self.settings.connect()
            self._streams = Streams(self._client, self.settings)
            self._sender = asyncio.create_task(self._send_queued(self._streams))

    async def stop(self) -> None:
        """Send what is queued and wait for its acknowledgements (up to `timeout` each);
        close the connection if this producer opened it."""
        async with self._lifecycle:
            sender, self._sender = self._sender, None
            if sender is not None:
                self._queued.set()
                await sender
            await self._acks_or_timeouts()
            client, self._streams = self._client, None
            if client is not None and self._owns_client:
                self._client = None
                await close(client, self.settings.timeout)

    async def ping(self) -> None:
        """Ask JetStream for the account's usage; raise when it does not answer."""
        if self._streams is None:
            raise RuntimeError("the JetStream producer is not connected")
        await self._streams.js.account_info()

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """Publish `payload` on subject `topic` and wait for JetStream to store it."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish `message`, headers included, and wait for JetStream to store it."""
        streams = self._streams
        if streams is None:
            await self.start()
            streams = self._streams
            assert streams is not None
        check_outgoing(streams.client, self.settings.max_payload, message)
        await self._publish_checked(streams, message)

    def enqueue(self, message: OutgoingMessage) -> Awaitable[None]:
        """Queue `message` behind those queued before it, without waiting.

        Queued messages are sent in order, pipelined as concurrent publishes are (up to
        `publish_window` unacknowledged). What is returned completes once JetStream
        stored the message, or raises `ProducerTimeout` (no acknowledgement within
        `timeout` of sending it) or `JetStreamPublishError`. Raises at once: `TypeError`
        for a backend config, `SubjectError` or `PayloadTooLarge` for a message the
        server would refuse, `RuntimeError` when the producer is not started.
        """
        streams = self._streams
        if streams is None or self._sender is None:
            raise RuntimeError(
                "JetStreamProducer is not started: await producer.start() first "
                "(an EventEmitter starts its producer itself)"
            )
        check_outgoing(streams.client, self.settings.max_payload, message)
        queued = _Queued(self, streams, message, asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        self._queued.set()
        return queued.stored

    async def _publish_checked(self, streams: Streams, message: OutgoingMessage) -> None:
        """Publish and wait for the stream's acknowledgement, creating the stream first
        when none captures the topic. Concurrent publishes are pipelined on one
        connection, up to `publish_window` of them; the timeout counts from when the
        message was sent, not from when it waited for room."""
        topic, headers = message.topic, message.headers or None
        try:
            try:
                acked = await streams.js.publish_async(topic, message.payload, headers=headers)
                await asyncio.wait_for(acked, self.settings.timeout)
            except NoStreamResponseError:
                await streams.create(_root(topic))
                acked = await streams.js.publish_async(topic, message.payload, headers=headers)
                await asyncio.wait_for(acked, self.settings.timeout)
        except (NoStreamResponseError, asyncio.TimeoutError, NatsTimeout, APIError) as exc:
            raise self._failure(topic, exc) from exc

    def _failure(self, topic: str, exc: BaseException) -> Exception:
        """The error to raise for a publish to `topic` that failed with `exc`."""
        if isinstance(exc, NoStreamResponseError):
            name = self.settings.stream_name.format(root=_root(topic))
            return JetStreamPublishError(
                f"no JetStream stream stored the message to {topic!r}, though stream "
                f"{name!r} exists: check its subjects"
            )
        if isinstance(exc, APIError):
            return JetStreamPublishError(
                f"JetStream refused a message to {topic!r}: {exc.description} "
                f"(error {exc.err_code})"
            )
        return ProducerTimeout(
            f"JetStream did not acknowledge a message to {topic!r} within {self.settings.timeout}s"
        )

    # -- enqueued messages ---------------------------------------------------------------

    async def _send_queued(self, streams: Streams) -> None:
        """Send queued messages in order, as a loop of `publish_async` calls does, and
        settle each one's future from its acknowledgement, which is cancelled if it did not
        come within `timeout` of sending; once stopped, end when the queue is empty."""
        queue, acks = self._queue, self._acks
        while self._sender is not None or queue:
            await self._queued.wait()
            self._queued.clear()
            while queue:
                queued = queue.popleft()
                message, stored = queued.message, queued.stored
                if stored.done():  # the emit was cancelled
                    continue
                headers = message.headers or None
                try:
                    acked = await streams.js.publish_async(
                        message.topic, message.payload, headers=headers
                    )
                except Exception as exc:
                    if not stored.done():
                        stored.set_exception(exc)
                    continue
                acks.begin(acked)
                acked.add_done_callback(queued)

    def _settle(self, queued: _Queued, acked: asyncio.Future[api.PubAck]) -> None:
        """Complete `queued.stored` as JetStream answered (`acked`); when no stream
        captures the topic, create it and publish the message again."""
        streams, message, stored = queued.streams, queued.message, queued.stored
        if stored.done():
            return
        if acked.cancelled():  # its deadline passed
            stored.set_exception(self._failure(message.topic, asyncio.TimeoutError()))
            return
        exc = acked.exception()
        if exc is None:
            stored.set_result(None)
        elif isinstance(exc, NoStreamResponseError):
            again = asyncio.ensure_future(self._publish_after_creating(streams, message))
            again.add_done_callback(partial(_copy_outcome, stored))
        else:
            failure = self._failure(message.topic, exc)
            failure.__cause__ = exc
            stored.set_exception(failure)

    async def _publish_after_creating(self, streams: Streams, message: OutgoingMessage) -> None:
        await streams.create(_root(message.topic))
        await self._publish_checked(streams, message)

    async def _acks_or_timeouts(self) -> None:
        """Wait until every message sent has its acknowledgement or timed out."""
        unacked = self._acks.pending()
        if unacked:
            await asyncio.wait(unacked, timeout=self.settings.timeout)
        self._acks.expire_all()  # the emits still unacknowledged time out


@dataclass(slots=True, eq=False)
class _Queued:
    """An enqueued message and its future. Once it is sent, it is the done callback of its
    acknowledgement: one object per message, which keeps a burst's garbage collections few."""

    producer: JetStreamProducer
    streams: Streams
    message: OutgoingMessage
    stored: asyncio.Future[None]

    def __call__(self, acked: asyncio.Future[api.PubAck]) -> None:
        self.producer._settle(self, acked)


def _root(topic: str) -> str:
    first = root(topic)
    assert first is not None  # a topic to publish to has no wildcard
    return first


def _copy_outcome(target: asyncio.Future[None], source: asyncio.Future[None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(None)


@dataclass(eq=False)
class _Feed:
    """One durable consumer of the group on one stream, and its pull requests."""

    stream: str
    filters: tuple[str, ...]
    inbox: str = ""
    subscription: NatsSubscription | None = None
    expected: int = 0
    """Messages the open pull request may still bring."""
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no pull request is open."""


class JetStreamConsumer(Consumer):
    """Reads the subjects of `subscription.patterns` as the durable consumer named after
    `subscription.group`, on every stream holding them.

    Messages are pulled in batches of `batch_size`, each pull request waiting up to
    `block` seconds, and asked for again once the listener took most of them. While a
    message is handled, JetStream is told every third of `ack_wait` that it is in
    progress (those pulled and waiting too); a listener that dies leaves its messages to be
    delivered again after `ack_wait`, and one that stops hands back at once what it did
    not finish.

    A message's `key` is its subject and `attempt` its delivery count; `metadata` holds
    `stream`, `consumer`, `stream_sequence`, `consumer_sequence`, `num_delivered`,
    `num_pending` and `timestamp`. Pass `client` to consume on a connection you own.
    """

    def __init__(
        self,
        settings: NatsJetStreamSettings,
        subscription: Subscription,
        *,
        client: Client | None = None,
    ) -> None:
        if not subscription.patterns:
            raise ValueError(
                f"group {subscription.group!r} has no topics to consume: register a handler first"
            )
        self.settings = settings
        self.group = subscription.group
        self.name = consumer_name(subscription.group)
        self.subjects = Subjects.of(subscription.patterns)
        self._client = client
        self._owns_client = client is None
        self._feeds: list[_Feed] = []
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._unacked: set[Message] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Create or update the group's consumers and start pulling."""
        if self._tasks:
            return
        self._stopping = False
        if self._client is None:
            self._client = await self.settings.connect()
        client = self._client
        streams = Streams(client, self.settings)
        by_stream: dict[str, list[str]] = {}
        for filter_subject in self.subjects.filters:
            for stream in await streams.holding(filter_subject):
                by_stream.setdefault(stream, []).append(filter_subject)
        if not by_stream:
            logger.warning(
                "no JetStream stream holds %s: group %r reads nothing until one does and "
                "the listener restarts",
                list(self.subjects.filters),
                self.group,
            )
        for stream, filters in sorted(by_stream.items()):
            feed = _Feed(stream, tuple(filters))
            feed.idle.set()
            await self._consumer(streams, feed)
            feed.inbox = client.new_inbox()
            feed.subscription = await client.subscribe(
                feed.inbox, cb=self._receiver(feed), pending_msgs_limit=-1, pending_bytes_limit=-1
            )
            self._feeds.append(feed)
        self._room.set()
        self._tasks = [asyncio.create_task(self._pull(feed)) for feed in self._feeds]
        self._tasks.append(asyncio.create_task(self._keep_in_progress()))

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages as they are pulled, in the order JetStream delivers them."""
        await self.start()
        buffer, unacked, wanted = self._buffer, self._unacked, self.subjects
        low = self.settings.batch_size // 2
        while True:
            if not buffer:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            raw = buffer.popleft()
            if len(buffer) <= low:
                self._room.set()
            if not wanted.wanted(raw.subject):
                await raw.ack()  # a wider filter than the topics let it through
                continue
            message = _message(raw)
            unacked.add(message)
            yield message

    async def ping(self) -> None:
        """Ask JetStream for the account's usage; raise when it does not answer."""
        if self._client is None:
            raise RuntimeError("the JetStream consumer is not connected")
        await self._client.jetstream(timeout=self.settings.timeout).account_info()

    async def ack(self, msg: Message) -> None:
        """Acknowledge `msg`: JetStream will not deliver it to this group again."""
        self._unacked.discard(msg)
        await msg.raw.ack()

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        """Hand `msg` back: JetStream delivers it again after about `delay` seconds."""
        self._unacked.discard(msg)
        await msg.raw.nak(delay=delay or None)

    async def stop(self) -> None:
        """Stop pulling, hand back every message not acked so that the group gets it at
        once, and close the connection if this consumer opened it."""
        self._stopping = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        client = self._client
        if client is None:
            return
        idle = [feed.idle.wait() for feed in self._feeds]
        try:  # what open pull requests still bring is handed back as it comes
            await asyncio.wait_for(asyncio.gather(*idle), self.settings.block + _STOP_GRACE)
        except asyncio.TimeoutError:
            logger.warning("pull requests of group %r did not end; closing anyway", self.group)
        finally:
            await self._hand_back(client)

    async def _hand_back(self, client: Client) -> None:
        pending = [m.raw for m in self._unacked] + list(self._buffer)
        self._unacked.clear()
        self._buffer.clear()
        try:
            for raw in pending:
                await raw.nak()
            for feed in self._feeds:
                if feed.subscription is not None:
                    await feed.subscription.unsubscribe()
            if not client.is_closed:
                await client.flush(math.ceil(self.settings.timeout))
        except (NatsError, asyncio.TimeoutError) as exc:
            logger.warning(
                "could not hand %d messages back to JetStream (%r): they come back after ack_wait",
                len(pending),
                exc,
            )
        self._feeds = []
        if self._owns_client:
            self._client = None
            await close(client, self.settings.timeout)

    # -- consumers -----------------------------------------------------------------------

    async def _consumer(self, streams: Streams, feed: _Feed) -> None:
        """Create the group's durable consumer on `feed.stream`, or bring it up to date."""
        settings = self.settings
        config = api.ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            description=f"Dispytch group {self.group}",
            deliver_policy=api.DeliverPolicy(settings.deliver_policy),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=settings.ack_wait,
            max_deliver=settings.max_deliver or -1,
            max_ack_pending=settings.max_ack_pending,
        )
        if len(feed.filters) == 1:
            config.filter_subject = feed.filters[0]
        else:
            config.filter_subjects = list(feed.filters)
        try:
            existing = await streams.js.consumer_info(feed.stream, self.name)
        except APIError:
            existing = None
        if existing is not None:
            had = existing.config.filter_subjects or [existing.config.filter_subject or ">"]
            if sorted(had) != sorted(feed.filters):
                logger.warning(
                    "group %r read %s on stream %r and now reads %s: listeners of one group "
                    "should listen to the same topics",
                    self.group,
                    had,
                    feed.stream,
                    list(feed.filters),
                )
        try:
            await streams.js.add_consumer(feed.stream, config)
        except APIError as exc:
            raise RuntimeError(
                f"JetStream refused consumer {self.name!r} (group {self.group!r}) on stream "
                f"{feed.stream!r} for {list(feed.filters)}: {exc.description} "
                f"(error {exc.err_code}). Several filter subjects need nats-server 2.10+; "
                "settings such as deliver_policy cannot change for an existing group"
            ) from exc

    # -- pulling -------------------------------------------------------------------------

    async def _pull(self, feed: _Feed) -> None:
        """Ask for a batch whenever the listener is running low; one request at a time."""
        assert self._client is not None
        client, settings = self._client, self.settings
        request_subject = f"$JS.API.CONSUMER.MSG.NEXT.{feed.stream}.{self.name}"
        request = json.dumps(
            {"batch": settings.batch_size, "expires": int(settings.block * 1e9)}
        ).encode()
        while not self._stopping:
            await self._room.wait()
            feed.expected = settings.batch_size
            feed.idle.clear()
            try:
                await client.publish(request_subject, request, reply=feed.inbox)
                await asyncio.wait_for(feed.idle.wait(), settings.block + settings.timeout)
            except (NatsError, asyncio.TimeoutError) as exc:  # lost in a reconnect, say
                feed.idle.set()
                logger.debug("pull request on %r ended without an answer: %r", feed.stream, exc)
            if len(self._buffer) > settings.batch_size // 2:
                self._room.clear()

    def _receiver(self, feed: _Feed) -> Callable[[Msg], Awaitable[None]]:
        """The callback of `feed`'s inbox: messages go to the buffer, and the status
        that ends a pull request (no messages, request expired ...) ends it."""
        buffer, arrived = self._buffer, self._arrived

        async def receive(raw: Msg) -> None:
            headers = raw.headers
            status = headers.get(api.Header.STATUS) if headers else None
            if status:
                if status != "100":  # anything but a heartbeat ends the request
                    feed.idle.set()
                if status == "409":
                    description = headers.get(api.Header.DESCRIPTION) if headers else ""
                    logger.info("pull request on stream %r: %s", feed.stream, description)
                return
            if self._stopping:
                await raw.nak()
            else:
                buffer.append(raw)
                arrived.set()
            feed.expected -= 1
            if feed.expected <= 0:
                feed.idle.set()

        return receive

    async def _keep_in_progress(self) -> None:
        """Tell JetStream, every third of `ack_wait`, which messages this listener still
        holds: handed out and not acked, or pulled and waiting to be handed out."""
        while not self._stopping:
            await asyncio.sleep(self.settings.ack_wait / 3)
            held = [message.raw for message in self._unacked]
            held += self._buffer
            for raw in held:
                with contextlib.suppress(NatsError):
                    await raw.in_progress()


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def consumer_name(group: str) -> str:
    """The durable consumer name of `group`: the group itself when JetStream accepts it
    as a name, else the group with other characters replaced and a hash to keep it
    unique (`billing.eu` is `billing_eu-1a2b3c4d`)."""
    if not _NAME_CHARS.search(group):
        return group
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    return f"{_NAME_CHARS.sub('_', group)}-{digest}"


def _message(raw: Msg) -> Message:
    meta = raw.metadata
    headers = raw.headers
    return Message(
        raw.subject,
        raw.data,
        raw.subject,
        dict(headers) if headers else {},
        meta.num_delivered,
        {
            "stream": meta.stream,
            "consumer": meta.consumer,
            "stream_sequence": meta.sequence.stream,
            "consumer_sequence": meta.sequence.consumer,
            "num_delivered": meta.num_delivered,
            "num_pending": meta.num_pending,
            "timestamp": meta.timestamp,
        },
        raw,
    )
