"""Listeners ride out a Redis restart mid-stream: they reconnect and carry on.

Each test runs its own server (without persistence, so a restart also loses the
streams and their consumer groups, which the listener creates again)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis_helpers import Note, NoteBody, fresh, wait_until

from brokers import RedisServer
from dispytch import Event, EventEmitter, EventListener
from dispytch.testing import Probe, running

pytestmark = pytest.mark.redis


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis(server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url)
    yield client
    await client.aclose()


def recording(listener: EventListener, topic: str, probe: Probe) -> None:
    @listener.handler(topic=topic, event=Note.__event_type__)
    async def record(event: Event[NoteBody]) -> None:
        probe.add(event.body.n)


async def test_streams_listener_resumes_after_a_restart(server: RedisServer) -> None:
    topic, probe = fresh("restart"), Probe()
    listener = EventListener.from_backend(
        "redis", group=fresh("group"), url=server.url, block=0.2, claim_idle=1.0, claim_interval=0.2
    )
    recording(listener, topic, probe)
    async with running(listener), EventEmitter.from_backend("redis", url=server.url) as emitter:
        for n in range(10):
            await emitter.emit(Note(stream=topic, n=n))
        await probe.wait_for(10)
        await asyncio.to_thread(server.restart)
        for n in range(10, 20):
            await emitter.emit(Note(stream=topic, n=n))
        await probe.wait_for(20, timeout=30)
    assert sorted(set(probe.items)) == list(range(20))


async def test_pubsub_listener_resubscribes_after_a_restart(
    server: RedisServer, redis: Redis
) -> None:
    topic, probe = fresh("restart"), Probe()
    listener = EventListener.from_backend("redis-pubsub", group="any", url=server.url)
    recording(listener, topic, probe)
    async with (
        running(listener),
        EventEmitter.from_backend("redis-pubsub", url=server.url) as emitter,
    ):
        await emitter.emit(Note(stream=topic, n=1))
        await probe.wait_for(1)
        await asyncio.to_thread(server.restart)

        async def subscribed_again() -> bool:
            [(_, count)] = await redis.pubsub_numsub(topic)
            return int(count) == 1

        await wait_until("the listener subscribed again", subscribed_again, timeout=30)
        await emitter.emit(Note(stream=topic, n=2))
        await probe.wait_for(2)
    assert probe.items == [1, 2]
