"""`KafkaConsumer`: the listener's seam to Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.abc import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    IllegalStateError,
    KafkaError,
)
from aiokafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

from dispytch._timers import wait_at_most
from dispytch.backends.backend import Subscription
from dispytch.listener.consumer import Consumer, Message
from dispytch.routing import TopicPattern
from dispytch_kafka.partition import Partition
from dispytch_kafka.settings import KafkaSettings

logger = logging.getLogger("dispytch_kafka")

MIN_REDELIVERY_DELAY = 0.1
"""Seconds a nacked message waits at least before it is handed out again."""

_POLL_TIMEOUT = 1.0
_TURN = 128
"""Messages one partition hands out before the next partition's turn."""


class KafkaConsumer(Consumer):
    """Consumes with an `aiokafka.AIOKafkaConsumer` in a consumer group, committing by hand.

    Wrap a client you built (`KafkaConsumer(AIOKafkaConsumer("topic", group_id=...,
    enable_auto_commit=False))`) or let the backend build one from `KafkaSettings` and
    the listener's `Subscription` (handler patterns with parameters or wildcards become
    a regex subscription). `settings` also tune a wrapped client's consumer.

    Each message's `key` is `"<topic>:<partition>"`, so a partition is handled in order
    while partitions run concurrently; `metadata` holds `topic`, `partition`, `offset`,
    `key` (the record key, bytes or None), `headers` (the raw `(name, bytes)` pairs) and
    `timestamp` (ms). Offsets are committed in batches: as soon as every message fetched
    is acked (the stream went idle), else `commit_interval` after the first ack not
    committed yet; also when partitions are revoked and on `stop()`; each only up to the
    highest offset below which every message was acked. A partition with
    `max_in_flight_per_partition` unacked messages is paused until half of them are
    acked. A nacked message is handed out again after its delay (at least
    `MIN_REDELIVERY_DELAY`) with `attempt` raised; Kafka keeps no delivery count, so
    `attempt` starts over in a new process.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer | None = None,
        *,
        settings: KafkaSettings | None = None,
        subscription: Subscription | None = None,
    ) -> None:
        if consumer is None and (settings is None or subscription is None):
            raise TypeError("KafkaConsumer takes an AIOKafkaConsumer, or settings and subscription")
        if consumer is not None:
            _check_client(consumer)
        if subscription is not None and not subscription.patterns:
            raise ValueError(
                f"group {subscription.group!r} has no topics to consume: register a handler first"
            )
        self._client = consumer
        self._builds_client = consumer is None
        self._settings = settings or KafkaSettings()
        self._resume_below = self._settings.max_in_flight_per_partition // 2
        self._subscription = subscription
        self._started = False
        self._owns_client = False
        self._lifecycle = asyncio.Lock()
        self._commit_lock = asyncio.Lock()
        self._acked = asyncio.Event()
        self._commit_due = False
        """Whether offsets were acked since the last commit began (`_acked` is set)."""
        self._drained = asyncio.Event()
        self._dry = True
        """Whether every backlog is empty; noted when one runs dry or fills, so acks need
        not look at every partition."""
        self._committer: asyncio.Task[None] | None = None
        self._partitions: dict[TopicPartition, Partition] = {}
        self._in_flight: dict[Message, Partition] = {}
        self._redeliveries: list[tuple[float, int, Message, Partition]] = []
        self._sequence = itertools.count()

    @classmethod
    def from_settings(cls, settings: KafkaSettings, subscription: Subscription) -> KafkaConsumer:
        """A consumer whose aiokafka client is built from `settings` when it starts."""
        return cls(settings=settings, subscription=subscription)

    @property
    def client(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer (built on start when created from settings)."""
        return self._client

    async def start(self) -> None:
        """Subscribe and join the group, unless started already."""
        async with self._lifecycle:
            if self._started:
                return
            if self._client is None:
                assert self._subscription is not None
                group = self._subscription.group
                self._client = AIOKafkaConsumer(**self._settings.consumer_options(group))
            client = self._client
            self._subscribe(client)
            if not _consumer_running(client):
                try:
                    await client.start()
                except BaseException:
                    await client.stop()
                    if self._builds_client:
                        self._client = None
                    raise
                self._owns_client = True
            self._committer = asyncio.create_task(self._commit_periodically())
            self._started = True

    async def stop(self) -> None:
        """Commit what was acked, then leave the group if this consumer joined it."""
        async with self._lifecycle:
            if not self._started:
                return
            if self._committer is not None:
                self._committer.cancel()
                await asyncio.gather(self._committer, return_exceptions=True)
            await self._retire(list(self._partitions))
            self._in_flight.clear()
            self._redeliveries.clear()
            if self._owns_client and self._client is not None:
                await self._client.stop()
                if self._builds_client:
                    self._client = None
            self._started = self._owns_client = False

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages from the assigned partitions: in order within each partition,
        taking turns between partitions so none waits behind another's backlog."""
        if not self._started:
            await self.start()
        client, limit = self._running(), self._settings.max_in_flight_per_partition
        in_flight = self._in_flight
        while True:
            if self._redeliveries:
                for message in self._due_redeliveries():
                    yield message
            await self._fetch(client)
            for tp, partition in list(self._partitions.items()):
                backlog, pending = partition.backlog, partition.pending
                if not backlog:
                    continue
                if len(pending) >= limit:
                    self._pause(client, tp, partition)
                    continue
                turn = min(_TURN, len(backlog), limit - len(pending))
                messages = partition.hand_out(turn, in_flight)
                if not backlog:  # noted before the last message goes: its ack may be the last
                    self._note_dry()
                for message in messages:
                    yield message
                    if partition.retired:  # revoked meanwhile: the rest of its turn is gone
                        break

    def ack(self, msg: Message) -> None:
        """Mark `msg` handled; its offset is committed once all before it are too."""
        partition = self._in_flight.pop(msg, None)
        if partition is None or partition.retired:
            return
        if partition.settle(msg.metadata["offset"], self._resume_below):
            with suppress(IllegalStateError):  # revoked meanwhile
                self._running().resume(TopicPartition(partition.topic, partition.number))
        if not self._commit_due:  # a plain flag: cheaper per ack than asking the event
            self._note_commit_due()
        if self._dry and not self._in_flight and not self._redeliveries:
            self._drained.set()  # the stream went idle: commit now

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        """Hand `msg` out again after `delay` seconds (at least `MIN_REDELIVERY_DELAY`).

        Its offset stays uncommitted meanwhile, so it also survives a restart.
        """
        partition = self._in_flight.pop(msg, None)
        if partition is None or partition.retired:
            return
        due = asyncio.get_running_loop().time() + max(delay, MIN_REDELIVERY_DELAY)
        again = dataclasses.replace(msg, attempt=msg.attempt + 1)
        heapq.heappush(self._redeliveries, (due, next(self._sequence), again, partition))

    async def ping(self) -> None:
        """Fetch the cluster's metadata; raise when no broker answers."""
        await self._running()._client.fetch_all_metadata()

    async def commit(self) -> None:
        """Commit, for every assigned partition, the offsets acked contiguously so far."""
        async with self._commit_lock:
            await self._commit(self._partitions)

    def _note_commit_due(self) -> None:
        """Wake the committer: offsets wait for their commit."""
        self._commit_due = True
        self._acked.set()

    def _note_dry(self) -> None:
        self._dry = not any(p.backlog for p in self._partitions.values())

    def _running(self) -> AIOKafkaConsumer:
        if self._client is None:
            raise RuntimeError("the KafkaConsumer is not started; await its start() first")
        return self._client

    async def _fetch(self, client: AIOKafkaConsumer) -> None:
        """Take what aiokafka fetched for every partition whose backlog is under its
        in-flight limit, before it runs dry: aiokafka fetches a partition's next records
        once the last are taken, so they come while these are handled, and partitions
        are fetched together. Wait only when every backlog ran dry."""
        limit = self._settings.max_in_flight_per_partition
        low = [tp for tp, p in self._partitions.items() if len(p.backlog) < limit]
        waiting = self._dry
        if not low and not waiting:
            return
        timeout = self._poll_timeout() if waiting else 0.0
        batch = await client.getmany(*low, timeout_ms=int(timeout * 1000))
        for tp, records in batch.items():
            partition = self._partitions.get(tp)
            if partition is not None:
                partition.backlog.extend(records)
                self._dry = False

    def _pause(self, client: AIOKafkaConsumer, tp: TopicPartition, partition: Partition) -> None:
        """Stop fetching `tp` until acks bring it under half its in-flight limit; its
        backlog is dropped and fetched again from the first record not handed out."""
        partition.paused = True
        with suppress(IllegalStateError):  # revoked meanwhile
            client.pause(tp)
            client.seek(tp, partition.backlog[0].offset)
        partition.backlog.clear()
        self._note_dry()

    def _subscribe(self, client: AIOKafkaConsumer) -> None:
        listener = _Rebalance(self)
        if self._subscription is not None:
            patterns = self._subscription.patterns
            if all(p.is_literal for p in patterns):
                client.subscribe(topics=sorted({p.text for p in patterns}), listener=listener)
            else:
                client.subscribe(pattern=subscription_regex(patterns), listener=listener)
            return
        # A wrapped client keeps its own subscription; re-subscribe to add our listener.
        pattern = client._subscription.subscribed_pattern
        topics = client.subscription()
        if pattern is not None:
            client.subscribe(pattern=pattern.pattern, listener=listener)
        elif topics:
            client.subscribe(topics=sorted(topics), listener=listener)
        else:
            raise ValueError(
                "the AIOKafkaConsumer given to KafkaConsumer is subscribed to nothing: "
                "pass it topics (AIOKafkaConsumer('orders', ...)) or call its subscribe() first"
            )

    def _assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for tp in assigned:
            self._partitions[tp] = Partition(tp.topic, tp.partition)

    async def _retire(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what `revoked` partitions finished, then forget them: from now on
        acks of their messages are ignored, as another member may own them."""
        async with self._commit_lock:
            gone = {tp: self._partitions.pop(tp) for tp in revoked if tp in self._partitions}
            await self._commit(gone)
            for partition in gone.values():
                partition.retired = True
                partition.backlog.clear()
            in_flight = self._in_flight  # their messages' acks are ignored now: forget them
            for message in [m for m, p in in_flight.items() if p.retired]:
                del in_flight[message]
            self._note_dry()

    async def _commit(self, partitions: dict[TopicPartition, Partition]) -> None:
        """Commit `partitions` that moved on; hold `_commit_lock` while calling this."""
        offsets = {
            tp: p.committable
            for tp, p in partitions.items()
            if p.needs_commit and p.committable is not None
        }
        if not offsets:
            return
        try:
            await self._send_commit(offsets)
        except CommitFailedError as exc:
            logger.warning("offsets %s were not committed: %s", offsets, exc)
            return
        except KafkaError as exc:
            logger.error("committing offsets %s failed, will retry: %r", offsets, exc)
            self._note_commit_due()
            return
        for tp, offset in offsets.items():
            partitions[tp].committed = offset

    async def _send_commit(self, offsets: dict[TopicPartition, int]) -> None:
        client = self._running()
        try:
            await client.commit(offsets)
        except IllegalStateError:
            # When a regex subscription gains a topic, aiokafka drops its assignment before
            # it calls on_partitions_revoked, and commit() refuses. The generation is still
            # ours until the group rejoins: commit through the group coordinator directly.
            coordinator = client._coordinator
            metadata = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
            await coordinator.commit_offsets(None, metadata)

    async def _commit_periodically(self) -> None:
        """Commit once every message handed out is acked, or `commit_interval` after the
        first ack not committed yet, whichever comes first."""
        acked, drained = self._acked, self._drained
        while True:
            await acked.wait()
            await wait_at_most(drained, self._settings.commit_interval)
            acked.clear()
            self._commit_due = False
            drained.clear()
            await self.commit()

    def _due_redeliveries(self) -> list[Message]:
        now, due = asyncio.get_running_loop().time(), []
        while self._redeliveries and self._redeliveries[0][0] <= now:
            _, _, message, partition = heapq.heappop(self._redeliveries)
            if not partition.retired:
                self._in_flight[message] = partition
                due.append(message)
        return due

    def _poll_timeout(self) -> float:
        if not self._redeliveries:
            return _POLL_TIMEOUT
        wait = self._redeliveries[0][0] - asyncio.get_running_loop().time()
        return min(max(wait, 0.0), _POLL_TIMEOUT)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer._retire(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer._assigned(assigned)


def subscription_regex(patterns: Iterable[TopicPattern]) -> str:
    """One regex matching every topic any of `patterns` matches, and no other."""
    alternatives = "|".join(f"(?:{p.regex})" for p in patterns)
    return f"(?:{alternatives})\\Z"


def _check_client(client: Any) -> None:
    """Refuse wrapped clients that would commit on their own or cannot commit at all
    (aiokafka keeps both options private; unknown attributes are not held against it)."""
    if getattr(client, "_group_id", "") is None:
        raise ValueError(
            "KafkaConsumer needs an AIOKafkaConsumer with a group_id, to commit offsets"
        )
    if getattr(client, "_enable_auto_commit", False):
        raise ValueError(
            "KafkaConsumer commits offsets itself, after handlers succeed: create the "
            "AIOKafkaConsumer with enable_auto_commit=False"
        )


def _consumer_running(client: Any) -> bool:
    """Whether `client` was started already (aiokafka has no public flag for it)."""
    return getattr(client, "_fetcher", None) is not None
