"""Redis Pub/Sub: PUBLISH and SUBSCRIBE/PSUBSCRIBE, as in Dispytch 0.10.

Every subscriber gets every message while it is connected; nothing is kept,
acknowledged or redelivered, and headers do not travel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import TimeoutError

from dispytch.emitter.producer import Producer, ProducerTimeout
from dispytch.listener.consumer import Consumer, Message
from dispytch.routing import TopicPattern
from dispytch_redis._cancel import reraise_cancellation
from dispytch_redis._patterns import glob, parse
from dispytch_redis._pipelining import Pipelining
from dispytch_redis._reconnect import UNREACHABLE, Backoff
from dispytch_redis._replies import data, text
from dispytch_redis.config import event_config

_CONFIRM_TIMEOUT = 10.0


class RedisProducer(Producer):
    """Publishes each event on the channel named by its topic (PUBLISH); the PUBLISHes of
    concurrent emits share one pipeline.

    `RedisProducer(redis)` takes a redis-py asyncio client; with `close_client=True` it
    closes the client when stopped.
    """

    def __init__(self, redis: Redis, *, close_client: bool = False) -> None:
        self.redis = redis
        self.close_client = close_client
        self._pipelining = Pipelining(redis)

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        """PUBLISH `payload` on channel `topic`; raise `ProducerTimeout` if Redis is too slow.

        Concurrent sends go to Redis together, in one pipeline."""
        event_config(config, type(self))
        try:
            await self._pipelining.run(lambda pipe: pipe.publish(topic, payload))
        except TimeoutError as exc:
            raise ProducerTimeout(f"Redis did not confirm PUBLISH to {topic!r} in time") from exc

    async def ping(self) -> None:
        """PING; raise when Redis does not answer."""
        await self.redis.ping()

    async def stop(self) -> None:
        """Wait for the sends under way; close the client if this producer owns it."""
        await self._pipelining.drain()
        if self.close_client:
            await self.redis.aclose()


class RedisConsumer(Consumer):
    """Receives the messages of a redis-py `PubSub`.

    `RedisConsumer(pubsub)` listens to what `pubsub` is subscribed to, as in 0.10.
    `topics` are subscribed when the consumer starts: literal topics with SUBSCRIBE,
    topics with `{param}` or `*` segments with PSUBSCRIBE. With `close_client=True` the
    PubSub and its connection pool are closed when the consumer stops.

    Each message's `key` is its channel, and `metadata` holds `channel` and, for a
    pattern subscription, `pattern`.
    """

    def __init__(
        self,
        pubsub: PubSub,
        topics: Iterable[str | TopicPattern] = (),
        *,
        close_client: bool = False,
    ) -> None:
        self.pubsub = pubsub
        self.topics = parse(topics)
        self.close_client = close_client
        self._globs = {glob(p): p for p in self.topics if not p.is_literal}
        self._started = False
        self._early: deque[dict[str, Any]] = deque()

    async def start(self) -> None:
        """Subscribe to `topics`; return once Redis confirmed the subscriptions."""
        if self._started:
            return
        channels = [str(p) for p in self.topics if p.is_literal]
        if channels:
            await self.pubsub.subscribe(*channels)
        if self._globs:
            await self.pubsub.psubscribe(*self._globs)
        if not self.pubsub.subscribed:
            raise RuntimeError(
                "RedisConsumer has nothing to listen to: pass topics=... "
                "or subscribe the PubSub before listening"
            )
        await self._confirmed({*channels, *self._globs})
        self._started = True

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages as they are published; reconnect and resubscribe after an outage."""
        await self.start()
        while self._early:
            message = self._message(self._early.popleft())
            if message is not None:
                yield message
        backoff = Backoff("Redis Pub/Sub consumer")
        loop, waited = asyncio.get_running_loop(), False

        def note_wait() -> None:  # runs only if the read let the event loop turn
            nonlocal waited
            waited = True

        while True:
            if waited:  # the message it brought came alone: its handler starts before
                await asyncio.sleep(0)  # redis-py sets up the next read (a burst goes on)
            waited = False
            turn = loop.call_soon(note_wait)
            try:
                raw = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                reraise_cancellation()
            except UNREACHABLE as exc:
                await backoff.wait(exc)
                continue
            finally:
                turn.cancel()
            backoff.reset()
            message = self._message(raw)
            if message is not None:
                yield message

    def ack(self, msg: Message) -> None:
        """Nothing to do: Pub/Sub does not track deliveries."""

    async def stop(self) -> None:
        """Close the PubSub and its connections if this consumer owns them."""
        self._started = False
        if self.close_client:
            await self.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed in redis 8
            await self.pubsub.connection_pool.disconnect()

    async def _confirmed(self, names: set[str]) -> None:
        """Wait for Redis to confirm subscribing to `names`; keep messages that come first."""
        while names:
            raw = await self.pubsub.get_message(timeout=_CONFIRM_TIMEOUT)
            if raw is None:
                raise TimeoutError(f"Redis did not confirm subscribing to {sorted(names)}")
            if raw["type"] in ("subscribe", "psubscribe"):
                names.discard(text(raw["channel"]))
            else:
                self._early.append(raw)

    def _message(self, raw: dict[str, Any] | None) -> Message | None:
        if raw is None or raw["type"] not in ("message", "pmessage"):
            return None
        channel = text(raw["channel"])
        metadata = {"channel": channel}
        if raw["type"] == "pmessage":
            pattern = text(raw["pattern"])
            topic = self._globs.get(pattern)
            if topic is not None and topic.match(channel) is None:
                return None  # the glob's `*` also matched a delimiter
            metadata["pattern"] = pattern
        # topic, payload, key, headers, attempt, metadata, raw: positional arguments cost
        # half what keywords do, once per message
        return Message(channel, data(raw["data"]), channel, {}, 1, metadata, raw)
