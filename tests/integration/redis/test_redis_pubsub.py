"""The backend `redis-pubsub` against a real server: Dispytch 0.10's construction,
pattern subscriptions, clients that decode or not, and its declared limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis_helpers import Note, NoteBody, fresh, logged, wait_until

from brokers import RedisServer
from dispytch import Event, EventEmitter, EventListener, TopicSegment
from dispytch.backends import CapabilityError
from dispytch.testing import Probe, running
from dispytch_redis import RedisConsumer, RedisProducer

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("decode_responses", [False, True], ids=["bytes", "decoded"])
async def test_constructed_as_in_0_10(redis_server: RedisServer, decode_responses: bool) -> None:
    topic, probe = fresh("legacy"), Probe()
    redis = Redis.from_url(redis_server.url, decode_responses=decode_responses)
    pubsub = redis.pubsub()
    await pubsub.subscribe(topic)
    listener = EventListener(RedisConsumer(pubsub))

    @listener.handler(topic=topic, event=Note.__event_type__)
    async def record(event: Event[NoteBody]) -> None:
        probe.add(event)

    async with running(listener):
        emitter = EventEmitter(RedisProducer(redis))
        await emitter.emit(Note(stream=topic, n=1))
        [event] = await probe.wait_for(1)
    assert (event.body.n, event.topic, event.key) == (1, topic, topic)
    assert event.metadata == {"channel": topic}
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await redis.aclose()


@pytest.mark.parametrize("decode_responses", [False, True], ids=["bytes", "decoded"])
async def test_patterns_use_psubscribe_and_match_whole_segments(
    redis: Redis, redis_server: RedisServer, decode_responses: bool
) -> None:
    chat = fresh("chat")
    client = Redis.from_url(redis_server.url, decode_responses=decode_responses)
    consumer = RedisConsumer(client.pubsub(), [f"{chat}.{{room}}"], close_client=True)
    await consumer.start()
    assert await redis.publish(f"{chat}.lobby.private", b"crosses a delimiter") == 1
    assert await redis.publish(f"{chat}.lobby", b"hello") == 1
    message = await anext(aiter(consumer.listen()))
    await consumer.stop()
    assert (message.topic, message.payload, message.key) == (
        f"{chat}.lobby",
        b"hello",
        message.topic,
    )
    assert message.metadata == {"channel": f"{chat}.lobby", "pattern": f"{chat}.*"}


async def test_wildcard_handlers_through_the_backend(pubsub_settings: dict[str, Any]) -> None:
    chat, rooms = fresh("chat"), Probe()
    listener = EventListener.from_backend("redis-pubsub", group="ignored", **pubsub_settings)

    @listener.handler(topic=f"{chat}.{{room}}", event=Note.__event_type__)
    async def record(event: Event[NoteBody], room: Annotated[str, TopicSegment()]) -> None:
        rooms.add((room, event.body.n))

    async with (
        running(listener),
        EventEmitter.from_url(
            pubsub_settings["url"].replace("redis://", "redis-pubsub://")
        ) as emitter,
    ):
        await emitter.emit(Note(stream=f"{chat}.a", n=1))
        await emitter.emit(Note(stream=f"{chat}.b", n=2))
        await rooms.wait_for(2)
    assert sorted(rooms.items) == [("a", 1), ("b", 2)]


@pytest.mark.parametrize("capability", ["persistent", "redelivery", "consumer_groups"])
async def test_capability_check_refuses_what_pubsub_cannot_give(
    pubsub_settings: dict[str, Any], capability: str
) -> None:
    listener = EventListener.from_backend(
        "redis-pubsub",
        group="billing",
        listener_options={"requires": [capability]},
        **pubsub_settings,
    )

    @listener.handler(topic="orders", event=Note.__event_type__)
    async def handle(event: Event[NoteBody]) -> None: ...

    with pytest.raises(CapabilityError, match=f"{capability}.*'redis-pubsub'"):
        await listener.listen()


async def test_pubsub_has_nothing_to_listen_to_without_subscriptions(redis: Redis) -> None:
    consumer = RedisConsumer(redis.pubsub())
    with pytest.raises(RuntimeError, match="nothing to listen to"):
        await consumer.start()


class ReadLoggingPubSub(PubSub):
    """A real PubSub that notes each read it starts and each message it got."""

    log: list[str]

    async def get_message(self, *args: Any, **kwargs: Any) -> Any:
        self.log.append("read")
        message = await super().get_message(*args, **kwargs)
        if message is not None and message["type"] == "message":
            self.log.append("got")
        return message


async def test_a_lone_message_is_handled_before_the_next_read_and_a_burst_is_read_ahead(
    redis: Redis, redis_server: RedisServer
) -> None:
    """A hand-written read-then-handle loop starts a handler before redis-py sets up the
    next read; so does the consumer when a message came alone, and it reads on through
    what a burst brought without waiting for each handler."""
    topic, log = fresh("order"), Probe()
    client = Redis.from_url(redis_server.url)
    pubsub = ReadLoggingPubSub(client.connection_pool)
    pubsub.log = log.items
    listener = EventListener(RedisConsumer(pubsub, [topic], close_client=True))

    @listener.handler(topic=topic, event=Note.__event_type__)
    async def note(event: Event[NoteBody]) -> None:
        log.add(f"handle {event.body.n}")

    async with running(listener), EventEmitter(RedisProducer(redis)) as emitter:
        for n in range(3):
            await emitter.emit(Note(stream=topic, n=n))
            await wait_until(f"message {n} handled", lambda n=n: logged(log, f"handle {n}"))
        after_each_message = [log.items[i + 1] for i, item in enumerate(log.items) if item == "got"]
        assert after_each_message == ["handle 0", "handle 1", "handle 2"], log.items

        del log.items[:]
        # the first goes alone, the other 19 together, in one pipeline and one read
        await asyncio.gather(*(emitter.emit(Note(stream=topic, n=n)) for n in range(3, 23)))
        await wait_until("the burst handled", lambda: logged(log, "handle 22"))
    assert "got, read, got" in ", ".join(log.items), f"each handler was waited for: {log.items}"
