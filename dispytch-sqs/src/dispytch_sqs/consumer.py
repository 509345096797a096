"""`SQSConsumer`: one consumer of a group's SQS queue."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dispytch.backends.backend import Subscription
from dispytch.listener.consumer import Consumer, Message
from dispytch_sqs import wire
from dispytch_sqs.naming import queue_name
from dispytch_sqs.settings import SQSSettings
from dispytch_sqs.topology import GroupQueue, group_queue

logger = logging.getLogger("dispytch_sqs")

BATCH_LIMIT = 10
"""Entries one DeleteMessageBatch or ChangeMessageVisibilityBatch takes at most."""
REASON = "dispytch.reason"
"""The attribute naming why a message was put into the dead-letter queue."""
_REASON_LIMIT = 1024
_SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "MessageGroupId", "SentTimestamp"]
_RETRY_DELAY = 1.0


class SQSConsumer(Consumer):
    """Receives a group's messages from its SQS queue and deletes them once handled.

    The queue (and the SNS subscriptions feeding it) is created on `start()`. `receivers`
    long polls run at once, each taking up to `batch_size` messages, while fewer than
    `max_in_flight` messages are unsettled. A receiver polls again once the listener has
    taken what it received, so that handling starts before the next request is built,
    signed and sent in the same event loop. While a message is unsettled its visibility
    timeout is extended, so a long handler keeps it; a crashed consumer's messages come
    back to the group after `visibility_timeout`. Acks are deleted in batches. A nack
    changes the message's visibility timeout to the delay (rounded up to whole seconds),
    so that SQS delivers it again then. `dead_letter` (with `max_receive_count` set)
    moves the message to the queue's dead-letter queue with the reason attached.

    FIFO queues: a message's `key` is its `MessageGroupId`; the messages of one key are
    handed out one at a time, and a nack hands the key's later messages back with it, so
    they keep their order. Standard queues give no order and no key.

    A message's `attempt` is SQS's `ApproximateReceiveCount`; `metadata` holds
    `queue_url`, `message_id`, `receipt_handle`, `receive_count`, `sent_timestamp` (ms)
    and, on FIFO queues, `message_group_id`.
    """

    def __init__(self, settings: SQSSettings, subscription: Subscription) -> None:
        if not subscription.patterns:
            raise ValueError(
                f"group {subscription.group!r} has no topics to consume: register a handler first"
            )
        wild = [p.text for p in subscription.patterns if not p.is_literal]
        if wild:
            raise ValueError(
                f"SNS subscribes to topics by name only, and topics {wild} have wildcards or "
                "parameters: give handlers literal topics with the sqs backend"
            )
        self.settings = settings
        self.subscription = subscription
        self._topics = sorted({p.text for p in subscription.patterns})
        self._fallback_topic = (
            self._topics[0]
            if len(self._topics) == 1
            else queue_name(subscription.group, settings.name_prefix, settings.fifo)
        )
        self._client: Any = None
        self._client_context: Any = None
        self._queue: GroupQueue | None = None
        self._lifecycle = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsettled: dict[Message, float] = {}  # message -> visibility deadline
        self._ready: deque[Message] = deque()
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()  # every message received was handed out
        self._room = asyncio.Event()
        self._busy_keys: set[str] = set()
        self._held: dict[str, deque[Message]] = {}
        self._deletes: list[dict[str, str]] = []
        self._deleting = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: SQSSettings, subscription: Subscription) -> SQSConsumer:
        """A consumer of `subscription.group`'s queue, set up from `settings` on start."""
        return cls(settings, subscription)

    @property
    def queue(self) -> GroupQueue | None:
        """The group's queue, once started."""
        return self._queue

    async def start(self) -> None:
        """Create the group's queue and subscriptions, then start receiving."""
        async with self._lifecycle:
            if self._tasks:
                return
            session, options = self.settings.session(), self.settings.client_options()
            context = session.create_client("sqs", **options)
            client = await context.__aenter__()
            try:
                async with session.create_client("sns", **options) as sns:
                    self._queue = await group_queue(
                        self.settings, client, sns, self.subscription.group, self._topics
                    )
            except BaseException:
                await context.__aexit__(None, None, None)
                raise
            self._client, self._client_context = client, context
            self._room.set()
            self._tasks = [
                *(asyncio.create_task(self._receive()) for _ in range(self.settings.receivers)),
                asyncio.create_task(self._extend_visibility()),
                asyncio.create_task(self._delete_acked()),
            ]

    async def stop(self) -> None:
        """Delete what was acked, hand every unsettled message back to the group at once,
        and close the client."""
        async with self._lifecycle:
            if not self._tasks:
                return
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
            unsettled = list(self._unsettled)
            self._unsettled.clear()
            self._ready.clear()
            self._held.clear()
            self._busy_keys.clear()
            try:
                await self._flush_deletes()
                await self._change_visibility(unsettled, 0)
            except (BotoCoreError, ClientError) as exc:
                logger.warning(
                    "could not settle with SQS on stop (%r): messages not deleted come back "
                    "to the group after the visibility timeout",
                    exc,
                )
            await self._client_context.__aexit__(None, None, None)
            self._client = self._client_context = None

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages as they are received (on FIFO queues, one per key at a time)."""
        await self.start()
        ready, fifo = self._ready, self.settings.fifo
        while True:
            while not ready:
                self._taken.set()
                self._arrived.clear()
                await self._arrived.wait()
            msg = ready.popleft()
            if fifo and msg.key is not None:
                if msg.key in self._busy_keys:
                    self._held.setdefault(msg.key, deque()).append(msg)
                    continue
                self._busy_keys.add(msg.key)
            yield msg

    def ack(self, msg: Message) -> None:
        """Delete `msg` from the queue (batched with other acks, sent at once)."""
        if self._unsettled.pop(msg, None) is None:
            return
        self._deletes.append({"ReceiptHandle": msg.metadata["receipt_handle"]})
        self._deleting.set()
        self._settled(msg)

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        """Let SQS deliver `msg` again after `delay` seconds (rounded up to whole seconds)."""
        if self._unsettled.pop(msg, None) is None:
            return
        again = [msg]
        if self.settings.fifo and msg.key is not None:
            again += self._take_key(msg.key)
        self._settled(msg)
        await self._change_visibility(again, math.ceil(max(delay, 0.0)))

    async def dead_letter(self, msg: Message, reason: str) -> None:
        """Move `msg` to the group's dead-letter queue with `reason` attached, then delete it."""
        queue = self._running_queue()
        if queue.dead_letter_url is None:
            raise RuntimeError(
                "this group's queue has no dead-letter queue: set max_receive_count in the "
                "sqs settings to give it one"
            )
        raw: Mapping[str, Any] = msg.raw
        attributes = {
            **raw.get("MessageAttributes", {}),
            REASON: {"DataType": "String", "StringValue": reason[:_REASON_LIMIT] or "unknown"},
        }
        entry: dict[str, Any] = {
            "QueueUrl": queue.dead_letter_url,
            "MessageBody": raw.get("Body", ""),
            "MessageAttributes": attributes,
        }
        if self.settings.fifo:
            entry["MessageGroupId"] = msg.key or msg.topic
            entry["MessageDeduplicationId"] = msg.metadata["message_id"]
        await self._client.send_message(**entry)
        logger.warning("moved a message from %s to the dead-letter queue: %s", msg.topic, reason)
        self.ack(msg)

    # -- receiving ---------------------------------------------------------------------

    async def _receive(self) -> None:
        """One long poll after another, while there is room for more messages, each once
        the listener took what the last one received."""
        settings, queue = self.settings, self._running_queue()
        while True:
            while len(self._unsettled) + settings.batch_size > settings.max_in_flight:
                self._room.clear()
                await self._room.wait()
            try:
                reply = await self._client.receive_message(
                    QueueUrl=queue.url,
                    MaxNumberOfMessages=settings.batch_size,
                    WaitTimeSeconds=settings.wait_time,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
                )
            except (BotoCoreError, ClientError) as exc:
                logger.warning("receiving from %s failed (%r); trying again", queue.url, exc)
                await asyncio.sleep(_RETRY_DELAY)
                continue
            received = reply.get("Messages", ())
            if not received:
                continue
            deadline = asyncio.get_running_loop().time() + settings.visibility_timeout
            for raw in received:
                msg = self._message(raw, queue.url)
                self._unsettled[msg] = deadline
                self._ready.append(msg)
            self._taken.clear()
            self._arrived.set()
            await self._taken.wait()

    def _message(self, raw: Mapping[str, Any], queue_url: str) -> Message:
        system = raw.get("Attributes", {})
        count = int(system.get("ApproximateReceiveCount", 1))
        group = system.get("MessageGroupId")
        metadata = {
            "queue_url": queue_url,
            "message_id": raw.get("MessageId"),
            "receipt_handle": raw["ReceiptHandle"],
            "receive_count": count,
            "sent_timestamp": int(system.get("SentTimestamp", 0)),
        }
        if group is not None:
            metadata["message_group_id"] = group
        return Message(
            topic=wire.topic(raw) or self._fallback_topic,
            payload=wire.payload(raw),
            key=group if self.settings.fifo else None,
            headers=wire.headers(raw),
            attempt=count,
            metadata=metadata,
            raw=raw,
        )

    # -- settling ----------------------------------------------------------------------

    def _settled(self, msg: Message) -> None:
        """`msg` left the unsettled ones: make room, and on FIFO queues free its key."""
        self._room.set()
        key = msg.key
        if not self.settings.fifo or key is None:
            return
        self._busy_keys.discard(key)
        held = self._held.get(key)
        if held:
            self._ready.appendleft(held.popleft())
            self._arrived.set()
        if not held:
            self._held.pop(key, None)

    def _take_key(self, key: str) -> list[Message]:
        """Remove the messages of `key` not handed out yet, in order, from the unsettled."""
        taken = list(self._held.pop(key, ()))
        waiting = [m for m in self._ready if m.key == key]
        for msg in waiting:
            self._ready.remove(msg)
        taken += waiting
        for msg in taken:
            self._unsettled.pop(msg, None)
        return taken

    async def _delete_acked(self) -> None:
        """Delete acked messages as acks come, in batches; retry on failures to reach SQS."""
        while True:
            await self._deleting.wait()
            self._deleting.clear()
            try:
                await self._flush_deletes()
            except (BotoCoreError, ClientError) as exc:
                logger.warning("deleting acked messages failed (%r); trying again", exc)
                await asyncio.sleep(_RETRY_DELAY)

    async def _flush_deletes(self) -> None:
        deletes, self._deletes = self._deletes, []
        try:
            await self._in_batches(deletes, self._client.delete_message_batch, "delete")
        except BaseException:
            self._deletes[:0] = deletes
            self._deleting.set()
            raise

    async def _extend_visibility(self) -> None:
        """Keep unsettled messages hidden from the group's other consumers."""
        timeout = self.settings.visibility_timeout
        while True:
            await asyncio.sleep(timeout / 4)
            now = asyncio.get_running_loop().time()
            due = [m for m, deadline in self._unsettled.items() if deadline - now < timeout / 2]
            if not due:
                continue
            try:
                await self._change_visibility(due, timeout)
            except (BotoCoreError, ClientError) as exc:
                logger.warning("extending visibility timeouts failed (%r)", exc)
                continue
            deadline = now + timeout
            for msg in due:
                if msg in self._unsettled:
                    self._unsettled[msg] = deadline

    async def _change_visibility(self, messages: Sequence[Message], seconds: int) -> None:
        entries = [
            {"ReceiptHandle": m.metadata["receipt_handle"], "VisibilityTimeout": seconds}
            for m in messages
        ]
        await self._in_batches(
            entries, self._client.change_message_visibility_batch, "change the visibility of"
        )

    async def _in_batches(
        self,
        entries: list[dict[str, Any]],
        call: Callable[..., Awaitable[Any]],
        what: str,
    ) -> None:
        """Send `entries` to a batch action of the group's queue, ten at a time, all at once."""
        if not entries:
            return
        url = self._running_queue().url
        batches = [entries[i : i + BATCH_LIMIT] for i in range(0, len(entries), BATCH_LIMIT)]
        replies = await asyncio.gather(
            *(
                call(QueueUrl=url, Entries=[{"Id": str(i), **e} for i, e in enumerate(batch)])
                for batch in batches
            )
        )
        for reply in replies:
            for failed in reply.get("Failed", ()):
                logger.warning(
                    "SQS could not %s a message of %s: %s: %s",
                    what,
                    url,
                    failed.get("Code"),
                    failed.get("Message"),
                )

    def _running_queue(self) -> GroupQueue:
        if self._queue is None or self._client is None:
            raise RuntimeError("the SQSConsumer is not started; await its start() first")
        return self._queue
