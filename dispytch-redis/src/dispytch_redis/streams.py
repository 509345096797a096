"""Redis Streams: XADD to emit; XREADGROUP in a consumer group to listen, XACK once
handled, XAUTOCLAIM to take over what a dead consumer left pending."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ResponseError, TimeoutError

from dispytch._cancelling import cancel_and_wait
from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch.listener.consumer import Consumer, Message
from dispytch.routing import TopicPattern
from dispytch_redis._cancel import reraise_cancellation
from dispytch_redis._patterns import glob, parse
from dispytch_redis._pipelining import Pipelining
from dispytch_redis._reconnect import UNREACHABLE, Backoff
from dispytch_redis._replies import Entry, data, field, stream_entries, text
from dispytch_redis.config import event_config

logger = logging.getLogger("dispytch.redis")


class RedisStreamProducer(Producer):
    """Adds each event to the stream named by its topic (XADD).

    An entry has a `payload` field and, when the event has headers, a `headers` field
    holding them as a JSON object. `maxlen` trims each stream to about that many
    entries (`MAXLEN ~`); an event's `RedisEventConfig(maxlen=...)` overrides it.
    The XADDs of concurrent emits share one pipeline. With `close_client=True` the
    client is closed when the producer stops.
    """

    def __init__(
        self, redis: Redis, *, maxlen: int | None = None, close_client: bool = False
    ) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.close_client = close_client
        self._pipelining = Pipelining(redis)

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """XADD `payload` to stream `topic`; raise `ProducerTimeout` if Redis is too slow."""
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        """XADD the message, headers included."""
        fields: dict[Any, Any] = {"payload": message.payload}
        if message.headers:
            fields["headers"] = json.dumps(message.headers)
        config = event_config(message.config, type(self))
        maxlen = self.maxlen if config is None or config.maxlen is None else config.maxlen
        topic = message.topic
        try:
            await self._pipelining.run(
                lambda pipe: pipe.xadd(topic, fields, maxlen=maxlen, approximate=True)
            )
        except TimeoutError as exc:
            raise ProducerTimeout(
                f"Redis did not confirm XADD to {message.topic!r} in time"
            ) from exc

    async def ping(self) -> None:
        """PING; raise when Redis does not answer."""
        await self.redis.ping()

    async def stop(self) -> None:
        """Wait for the sends under way; close the client if this producer owns it."""
        await self._pipelining.drain()
        if self.close_client:
            await self.redis.aclose()


class RedisStreamConsumer(Consumer):
    """Reads streams as one consumer of the consumer group `group`.

    `topics` name the streams: a literal topic is a stream key; a topic with `{param}`
    or `*` segments matches the streams SCAN finds, looked for every
    `discovery_interval` seconds. The group is created on each stream if missing,
    starting at `start_id`. New entries are read with XREADGROUP, up to `batch_size`
    per stream, waiting up to `block` seconds; acks are sent in batches with XACK.

    Every `claim_interval` seconds, entries pending for `claim_idle` seconds are
    claimed with XAUTOCLAIM, so a crashed consumer's entries are taken over. A live
    consumer keeps its own pending entries fresh so that they are not. A nacked entry
    becomes claimable after the nack's delay, and entries not acked by the time the
    consumer stops become claimable at once.

    A message's `key` is its stream and `attempt` its delivery count; `metadata` holds
    `stream`, `message_id` and `delivery_count`. With `close_client=True` the client
    is closed when the consumer stops.
    """

    def __init__(
        self,
        redis: Redis,
        group: str,
        topics: Iterable[str | TopicPattern],
        *,
        consumer_name: str | None = None,
        start_id: str = "0",
        batch_size: int = 100,
        block: float = 1.0,
        claim_idle: float = 30.0,
        claim_interval: float = 5.0,
        discovery_interval: float = 1.0,
        close_client: bool = False,
    ) -> None:
        patterns = parse(topics)
        if not patterns:
            raise ValueError("RedisStreamConsumer needs at least one topic to read")
        self.redis = redis
        self.group = group
        self.name = consumer_name or _unique_name()
        self.start_id = start_id
        self.batch_size = batch_size
        self.block = block
        self.claim_idle = claim_idle
        self.claim_interval = claim_interval
        self.discovery_interval = discovery_interval
        self.close_client = close_client
        self._literal = [str(p) for p in patterns if p.is_literal]
        self._wildcards = [p for p in patterns if not p.is_literal]
        self._streams = dict.fromkeys(self._literal)  # the streams read, in order
        self._pending: dict[str, set[str]] = {}  # handed out and not acked, per stream
        self._acks: dict[str, list[str]] = {}  # acked and not yet sent, per stream
        self._acked = asyncio.Event()
        self._cursors: dict[str, str] = {}  # where XAUTOCLAIM goes on, per stream
        self._next_claim = 0.0
        self._next_discovery = 0.0
        self._regroup = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Create the group on the literal topics' streams; start sending acks."""
        if self._tasks:
            return
        await self._create_groups(self._literal)
        self._tasks = [asyncio.create_task(self._send_acks()), asyncio.create_task(self._refresh())]

    async def listen(self) -> AsyncIterator[Message]:
        """Yield entries as they come, claimed ones first; ride out Redis restarts."""
        await self.start()
        backoff = Backoff(f"stream consumer {self.name!r} of group {self.group!r}")
        while True:
            try:
                batch = await self._fetch()
                reraise_cancellation()
            except UNREACHABLE as exc:
                await backoff.wait(exc)
                continue
            except ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                logger.warning("Redis lost group %r (%s); creating it again", self.group, exc)
                self._streams = dict.fromkeys(self._literal)
                self._cursors.clear()
                self._next_discovery = 0.0
                self._regroup = True
                continue
            backoff.reset()
            for message in batch:
                yield message

    async def ping(self) -> None:
        """PING; raise when Redis does not answer."""
        await self.redis.ping()

    def ack(self, msg: Message) -> None:
        """Queue an XACK for the entry; queued acks are sent at once, in batches."""
        stream, entry_id = msg.topic, msg.metadata["message_id"]
        pending = self._pending.get(stream)
        if pending is not None:
            pending.discard(entry_id)
        acks = self._acks.get(stream)
        if acks is None:
            self._acks[stream] = [entry_id]
        else:
            acks.append(entry_id)
        self._acked.set()

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        """Make the entry claimable again in about `delay` seconds, by any consumer."""
        stream, entry_id = msg.topic, msg.metadata["message_id"]
        self._pending.get(stream, set()).discard(entry_id)
        await self._claim_ids({stream: [entry_id]}, idle=max(self.claim_idle - delay, 0.0))
        due = asyncio.get_running_loop().time() + delay
        self._next_claim = min(self._next_claim, due)

    async def stop(self) -> None:
        """Send the queued acks, make entries not acked claimable by others at once, and
        close the client if this consumer owns it."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        unacked = {stream: list(ids) for stream, ids in self._pending.items() if ids}
        try:
            await self._send(self._acks)
            self._acks = {}
            await self._claim_ids(unacked, idle=self.claim_idle)
        except (*UNREACHABLE, ResponseError) as exc:
            logger.warning(
                "could not settle with Redis on stop (%r): entries not acked are claimed by "
                "other consumers after claim_idle",
                exc,
            )
        self._pending.clear()
        if self.close_client:
            await self.redis.aclose()

    # -- reading -----------------------------------------------------------------------

    async def _fetch(self) -> list[Message]:
        loop = asyncio.get_running_loop()
        if self._regroup:
            await self._create_groups(self._literal)
            self._regroup = False
        if self._wildcards and loop.time() >= self._next_discovery:
            await self._discover()
        if loop.time() >= self._next_claim:
            claimed = await self._claim()
            if claimed:
                return claimed
        wait = min(self.block, self._next_claim - loop.time())
        if self._wildcards:
            wait = min(wait, self._next_discovery - loop.time())
        if not self._streams:
            await asyncio.sleep(wait)
            return []
        await asyncio.sleep(0)  # handlers of the entries just handed out start before the read
        reply = await self.redis.xreadgroup(
            self.group,
            self.name,
            dict.fromkeys(self._streams, ">"),
            count=self.batch_size,
            block=max(int(wait * 1000), 1),
        )
        return [
            message
            for stream, entries in stream_entries(reply)
            for message in self._messages(stream, entries, {})
        ]

    async def _claim(self) -> list[Message]:
        """Take over entries idle for `claim_idle` seconds, a batch per stream."""
        messages: list[Message] = []
        finished = True
        for stream in self._streams:
            reply = await self.redis.xautoclaim(
                stream,
                self.group,
                self.name,
                min_idle_time=_ms(self.claim_idle),
                start_id=self._cursors.get(stream, "0-0"),
                count=self.batch_size,
            )
            cursor, entries = text(reply[0]), reply[1]
            self._cursors[stream] = cursor
            finished = finished and cursor == "0-0"
            mine = self._pending.get(stream, set())
            taken = [(i, f) for i, f in entries if text(i) not in mine]
            if taken:
                counts = await self._delivery_counts(stream, [text(i) for i, _ in taken])
                messages += self._messages(stream, taken, counts)
        if messages:
            logger.info("claimed %d idle entries for group %r", len(messages), self.group)
        loop = asyncio.get_running_loop()
        self._next_claim = loop.time() + (0.0 if not finished else self.claim_interval)
        return messages

    async def _delivery_counts(self, stream: str, ids: list[str]) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        return {text(r[0]["message_id"]): int(r[0]["times_delivered"]) for r in replies if r}

    def _messages(
        self, stream: str, entries: list[Entry], counts: Mapping[str, int]
    ) -> list[Message]:
        pending = self._pending.setdefault(stream, set())
        messages = []
        for raw_id, fields in entries:
            entry_id = text(raw_id)
            if fields is None:  # deleted while pending (Redis < 7 reports these)
                self._acks.setdefault(stream, []).append(entry_id)
                continue
            pending.add(entry_id)
            messages.append(self._message(stream, entry_id, fields, counts.get(entry_id, 1)))
        return messages

    def _message(self, stream: str, entry_id: str, fields: Any, attempt: int) -> Message:
        payload = field(fields, "payload")
        headers = field(fields, "headers")
        if payload is None:
            logger.warning("entry %s of stream %r has no 'payload' field", entry_id, stream)
        return Message(  # topic, payload, key, headers, attempt, metadata, raw: positional
            stream,  # arguments cost half what keywords do, once per message
            b"" if payload is None else data(payload),
            stream,
            json.loads(headers) if headers else {},
            attempt,
            {"stream": stream, "message_id": entry_id, "delivery_count": attempt},
            fields,
        )

    # -- streams and groups ------------------------------------------------------------

    async def _discover(self) -> None:
        """Add the streams matching wildcard topics that are not read yet."""
        loop = asyncio.get_running_loop()
        self._next_discovery = loop.time() + self.discovery_interval
        found: dict[str, None] = {}
        for pattern in self._wildcards:
            async for key in self.redis.scan_iter(match=glob(pattern), count=1000, _type="stream"):
                stream = text(key)
                if stream not in self._streams and pattern.match(stream) is not None:
                    found[stream] = None
        if found:
            await self._create_groups(list(found))
            self._streams.update(found)
            logger.info("reading new streams %s for group %r", sorted(found), self.group)

    async def _create_groups(self, streams: Iterable[str]) -> None:
        for stream in streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id=self.start_id, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise ResponseError(
                        f"cannot create consumer group {self.group!r} on stream {stream!r}: {exc}"
                    ) from exc

    # -- settling ------------------------------------------------------------------------

    async def _send_acks(self) -> None:
        """Send queued acks as they come; what fails is sent again once Redis is back,
        and what is cut short by `stop()` is sent by it."""
        backoff = Backoff(f"acks of stream consumer {self.name!r}")
        while True:
            await self._acked.wait()
            self._acked.clear()
            acks, self._acks = self._acks, {}
            try:
                await self._send(acks)
                reraise_cancellation()
            except UNREACHABLE as exc:
                self._requeue(acks)
                await backoff.wait(exc)
                continue
            except ResponseError as exc:
                logger.warning("Redis refused acks for group %r: %s", self.group, exc)
            except asyncio.CancelledError:
                self._requeue(acks)
                raise
            backoff.reset()

    def _requeue(self, acks: dict[str, list[str]]) -> None:
        for stream, ids in acks.items():
            self._acks.setdefault(stream, []).extend(ids)
        self._acked.set()

    async def _send(self, acks: dict[str, list[str]]) -> None:
        if not acks:
            return
        if len(acks) == 1:  # one stream: one XACK, without a pipeline's bookkeeping
            ((stream, ids),) = acks.items()
            await self.redis.xack(stream, self.group, *ids)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in acks.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()

    async def _refresh(self) -> None:
        """Keep entries handed out and not acked from looking idle to other consumers."""
        while True:
            await asyncio.sleep(self.claim_interval)
            pending = {stream: list(ids) for stream, ids in self._pending.items() if ids}
            try:
                await self._claim_ids(pending, idle=0.0)
                reraise_cancellation()
            except (*UNREACHABLE, ResponseError) as exc:
                logger.debug("could not refresh pending entries: %r", exc)

    async def _claim_ids(self, entries: Mapping[str, list[Any]], idle: float) -> None:
        """Claim `entries` for this consumer, setting their idle time to `idle` seconds;
        their delivery counts stay as they are."""
        if not entries:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in entries.items():
                pipe.xclaim(stream, self.group, self.name, 0, ids, idle=_ms(idle), justid=True)
            await pipe.execute()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _unique_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
