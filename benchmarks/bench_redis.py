"""Redis: Dispytch next to a hand-written redis-py loop and FastStream 0.7, on one server,
in both modes: backend `redis` (Streams) and backend `redis-pubsub` (Pub/Sub).

The server (redis-server; tools/brokers.py) is started here; every implementation uses it
in the same run and does the same work per event. Hand-written loops and the Dispytch seam
rows use the client Dispytch's settings build (a blocking pool of 50 connections); FastStream
gets 50 connections too.

- emit: build the JSON envelope and send it (XADD, or PUBLISH); `n` events sent
  concurrently, each awaited until Redis answered. Dispytch's producers pipeline the
  commands of concurrent emits; the hand-written row sends each command on its own, as
  `gather` over redis-py calls does.
- emit one by one: `n / 4` events, each awaited before the next is sent.
- consume, Streams: `n` events pre-loaded in a stream whose consumer group was created at
  its start; read them with XREADGROUP (batches of 100): decode the envelope, validate
  `Payload` with pydantic, resolve one dependency, call a trivial handler, XACK. The
  hand-written loop acks each batch with one XACK. Timed from the moment the listener is
  ready until the last event was handled, and until XPENDING shows no entry pending (the
  time to the last ack, polled every millisecond from the last event handled on).
- consume, Pub/Sub: nothing can be pre-loaded, so the subscriber is started first; then `n`
  events are published in pipelines of 1000 by a plain client. Timed from the first
  PUBLISH until the last event was handled; the same publisher feeds every implementation.
  Pub/Sub has no acks: the time to the last ack is the time to the last event handled.
- latency: see latency.py; the emitter XADDs (or PUBLISHes) each due burst in one pipeline.

The "dispytch-redis seam only" rows do the same work through the backend's producer and
consumer (a plain loop over `listen()` that acks each message) without the rest of
Dispytch: they show what the backend itself costs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from faststream import Depends
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from redis.asyncio import Redis

import latency as paced
from brokers import RedisServer
from dispytch import EventEmitter, EventListener
from dispytch.backends import Subscription
from dispytch.routing import TopicPattern
from dispytch_redis import RedisPubSubSettings, RedisStreamsSettings
from dispytch_redis.plugin import pubsub_consumer, pubsub_producer, stream_consumer, stream_producer
from harness import (
    COUNTER,
    BenchEvent,
    Counter,
    Envelope,
    LatencyRow,
    Payload,
    Row,
    bench_events,
    best_of,
    count_until,
    counter_dependency,
    encode_event,
    encoded,
    event_envelope,
    fresh,
    handler,
    in_background,
    listening,
    until,
)

BATCH = 100
POOL = 50
CHUNK = 1000


async def throughput(n: int) -> list[Row]:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    try:
        url = server.url
        return await best_of(
            [
                lambda: _emit_one_by_one(url, n // 4, "redis", "raw redis-py"),
                lambda: _emit_one_by_one(url, n // 4, "redis", "dispytch"),
                lambda: _emit_one_by_one(url, n // 4, "redis-pubsub", "raw redis-py"),
                lambda: _emit_one_by_one(url, n // 4, "redis-pubsub", "dispytch"),
                lambda: _emit(url, n, "redis", "raw redis-py", _emit_raw_streams),
                lambda: _emit(url, n, "redis", "dispytch", _emit_dispytch("redis")),
                lambda: _emit(url, n, "redis", "dispytch-redis seam only", _emit_seam_streams),
                lambda: _emit(url, n, "redis", "faststream 0.7", _emit_faststream_streams),
                lambda: _consume(url, n, "redis", "raw redis-py", _consume_raw_streams),
                lambda: _consume(url, n, "redis", "dispytch", _consume_dispytch("redis")),
                lambda: _consume(
                    url, n, "redis", "dispytch-redis seam only", _consume_seam_streams
                ),
                lambda: _consume(url, n, "redis", "faststream 0.7", _consume_faststream_streams),
                lambda: _emit(url, n, "redis-pubsub", "raw redis-py", _emit_raw_pubsub),
                lambda: _emit(url, n, "redis-pubsub", "dispytch", _emit_dispytch("redis-pubsub")),
                lambda: _emit(
                    url, n, "redis-pubsub", "dispytch-redis seam only", _emit_seam_pubsub
                ),
                lambda: _emit(url, n, "redis-pubsub", "faststream 0.7", _emit_faststream_pubsub),
                lambda: _consume(url, n, "redis-pubsub", "raw redis-py", _consume_raw_pubsub),
                lambda: _consume(
                    url, n, "redis-pubsub", "dispytch", _consume_dispytch("redis-pubsub")
                ),
                lambda: _consume(
                    url, n, "redis-pubsub", "dispytch-redis seam only", _consume_seam_pubsub
                ),
                lambda: _consume(
                    url, n, "redis-pubsub", "faststream 0.7", _consume_faststream_pubsub
                ),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[str, int, str], Awaitable[float]]


async def _emit(url: str, n: int, backend: str, implementation: str, emit: Emit) -> Row:
    return Row(backend, "emit", implementation, n, await emit(url, n, fresh("emit")))


async def _emit_one_by_one(url: str, n: int, backend: str, implementation: str) -> Row:
    """`n` events sent one after another, each awaited before the next is sent."""
    topic = fresh("emit")
    events = bench_events(topic, n)
    if implementation.startswith("raw"):
        client = RedisStreamsSettings(url=url).client()
        send = partial(client.xadd, topic) if backend == "redis" else None
        start = time.perf_counter()
        for event in events:
            if send is not None:
                await send({"payload": encode_event(event)})
            else:
                await client.publish(topic, encode_event(event))
        seconds = time.perf_counter() - start
        await client.aclose()
    else:
        async with EventEmitter.from_backend(backend, url=url) as emitter:
            start = time.perf_counter()
            for event in events:
                await emitter.emit(event)
            seconds = time.perf_counter() - start
    return Row(backend, "emit one by one", implementation, n, seconds)


async def _emit_raw_streams(url: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    client = RedisStreamsSettings(url=url).client()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(client.xadd(topic, {"payload": encode_event(e)}) for e in events))
        return time.perf_counter() - start
    finally:
        await client.aclose()


async def _emit_raw_pubsub(url: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    client = RedisPubSubSettings(url=url).client()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(client.publish(topic, encode_event(e)) for e in events))
        return time.perf_counter() - start
    finally:
        await client.aclose()


def _emit_dispytch(backend: str) -> Emit:
    async def emit(url: str, n: int, topic: str) -> float:
        events = bench_events(topic, n)
        async with EventEmitter.from_backend(backend, url=url) as emitter:
            start = time.perf_counter()
            await asyncio.gather(*(emitter.emit(e) for e in events))
            return time.perf_counter() - start

    return emit


async def _emit_seam_streams(url: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    producer = stream_producer(RedisStreamsSettings(url=url))
    try:
        start = time.perf_counter()
        await asyncio.gather(*(producer.send(topic, encode_event(e)) for e in events))
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def _emit_seam_pubsub(url: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    producer = pubsub_producer(RedisPubSubSettings(url=url))
    try:
        start = time.perf_counter()
        await asyncio.gather(*(producer.send(topic, encode_event(e)) for e in events))
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def _emit_faststream_streams(url: str, n: int, topic: str) -> float:
    return await _emit_faststream(url, bench_events(topic, n), {"stream": topic})


async def _emit_faststream_pubsub(url: str, n: int, topic: str) -> float:
    return await _emit_faststream(url, bench_events(topic, n), {"channel": topic})


async def _emit_faststream(
    url: str, events: list[BenchEvent], destination: dict[str, str]
) -> float:
    """FastStream's pool raises past its size, so sends wait for one of as many slots."""
    broker = RedisBroker(url, logger=None, max_connections=POOL)
    slots = asyncio.Semaphore(POOL)

    async def publish(event: BenchEvent) -> None:
        async with slots:
            await broker.publish(event_envelope(event), **destination)  # type: ignore[call-overload]

    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(publish(e) for e in events))
        return time.perf_counter() - start
    finally:
        await broker.stop()


# -- consume -----------------------------------------------------------------------------------

Acked = Callable[[], Awaitable[float]]
"""Wait until Redis shows every event acked; the perf_counter() then."""
Timing = tuple[float, float, float]
"""The perf_counter() of the start, of the last event handled and of the last ack."""
Consume = Callable[[str, int, str, str, Acked], Awaitable[Timing]]


async def _consume(url: str, n: int, backend: str, implementation: str, consume: Consume) -> Row:
    """Time one consume implementation on a fresh topic; for Streams, pre-load it first.

    On Streams the last ack is seen by polling XPENDING every millisecond once the last
    event was handled; Pub/Sub has no acks."""
    topic, group = fresh("consume"), fresh("group")
    client = Redis.from_url(url)
    if backend == "redis":
        field = "__data__" if implementation.startswith("faststream") else "payload"
        await client.xgroup_create(topic, group, id="0", mkstream=True)
        for first in range(0, n, CHUNK):
            async with client.pipeline(transaction=False) as pipe:
                for i in range(first, min(first + CHUNK, n)):
                    pipe.xadd(topic, {field: encoded(i)})
                await pipe.execute()

    async def none_pending() -> bool:
        return int((await client.xpending(topic, group))["pending"]) == 0

    async def acked() -> float:
        if backend != "redis":
            return time.perf_counter()
        return await until(none_pending, f"{implementation}: XACK of all {n} entries")

    COUNTER.reset(n)
    try:
        start, handled, last_ack = await consume(url, n, topic, group, acked)
    finally:
        await client.aclose()
    assert COUNTER.count >= n, f"{implementation} handled {COUNTER.count} of {n}"
    return Row(backend, "consume", implementation, n, handled - start, ack=last_ack - start)


async def _finished(done: asyncio.Event) -> float:
    """Wait for `done`; the perf_counter() then."""
    try:
        await asyncio.wait_for(done.wait(), 120)
    except asyncio.TimeoutError:
        raise AssertionError("not every event was handled within 120s") from None
    return time.perf_counter()


async def _publish_all(url: str, n: int, topic: str) -> float:
    """PUBLISH `n` events in pipelines; return when the first was sent."""
    client = Redis.from_url(url)
    start = time.perf_counter()
    for first in range(0, n, CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(first, min(first + CHUNK, n)):
                pipe.publish(topic, encoded(i))
            await pipe.execute()
    await client.aclose()
    return start


async def _raw_streams_loop(client: Redis, topic: str, group: str, n: int) -> None:
    """The hand-written loop: XREADGROUP a batch, handle it, XACK it."""
    while COUNTER.count < n:
        reply = await client.xreadgroup(group, "raw", {topic: ">"}, count=BATCH, block=1000)
        for _, entries in reply:
            for _, fields in entries:
                data = json.loads(fields[b"payload"])
                await handler(Payload.model_validate(data["body"]), counter_dependency())
            await client.xack(topic, group, *(entry_id for entry_id, _ in entries))


async def _consume_raw_streams(url: str, n: int, topic: str, group: str, acked: Acked) -> Timing:
    client = RedisStreamsSettings(url=url).client()
    try:
        start = time.perf_counter()
        await _raw_streams_loop(client, topic, group, n)
        return start, time.perf_counter(), await acked()
    finally:
        await client.aclose()


async def _raw_pubsub_loop(pubsub: Any, n: int) -> None:
    while COUNTER.count < n:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
        if message is not None and message["type"] == "message":
            data = json.loads(message["data"])
            await handler(Payload.model_validate(data["body"]), counter_dependency())


async def _consume_raw_pubsub(url: str, n: int, topic: str, group: str, acked: Acked) -> Timing:
    client = RedisPubSubSettings(url=url).client()
    pubsub = client.pubsub()
    await pubsub.subscribe(topic)
    await pubsub.get_message(timeout=5)  # the subscription's confirmation
    try:
        publishing = asyncio.create_task(_publish_all(url, n, topic))
        await _raw_pubsub_loop(pubsub, n)
        handled = time.perf_counter()
        return await publishing, handled, await acked()
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


def _consume_dispytch(backend: str) -> Consume:
    async def consume(url: str, n: int, topic: str, group: str, acked: Acked) -> Timing:
        listener = EventListener.from_backend(backend, group=group, url=url)
        done = count_until(listener, topic)

        task = asyncio.create_task(listener.listen())
        await listener.wait_ready()
        if backend == "redis":
            start = time.perf_counter()
        else:
            start = await _publish_all(url, n, topic)
        handled = await _finished(done)
        last_ack = await acked()
        await listener.stop()
        await task
        return start, handled, last_ack

    return consume


async def _consume_seam_streams(url: str, n: int, topic: str, group: str, acked: Acked) -> Timing:
    subscription = Subscription(group, (TopicPattern(topic),))
    consumer = stream_consumer(RedisStreamsSettings(url=url), subscription)
    await consumer.start()
    try:
        start = time.perf_counter()
        async for message in consumer.listen():
            data = json.loads(message.payload)
            await handler(Payload.model_validate(data["body"]), counter_dependency())
            consumer.ack(message)
            if COUNTER.count == n:
                return start, time.perf_counter(), await acked()
        raise AssertionError("the consumer stopped early")
    finally:
        await consumer.stop()


async def _consume_seam_pubsub(url: str, n: int, topic: str, group: str, acked: Acked) -> Timing:
    subscription = Subscription(group, (TopicPattern(topic),))
    consumer = pubsub_consumer(RedisPubSubSettings(url=url), subscription)
    await consumer.start()
    try:
        publishing = asyncio.create_task(_publish_all(url, n, topic))
        async for message in consumer.listen():
            data = json.loads(message.payload)
            await handler(Payload.model_validate(data["body"]), counter_dependency())
            consumer.ack(message)
            if COUNTER.count == n:
                handled = time.perf_counter()
                return await publishing, handled, await acked()
        raise AssertionError("the consumer stopped early")
    finally:
        await consumer.stop()


def _faststream_streams(url: str, topic: str, group: str) -> RedisBroker:
    broker = RedisBroker(url, logger=None)
    stream = StreamSub(topic, group=group, consumer="faststream", max_records=BATCH)

    @broker.subscriber(stream=stream, ack_policy=AckPolicy.ACK)
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    return broker


def _faststream_pubsub(url: str, topic: str) -> RedisBroker:
    broker = RedisBroker(url, logger=None)

    @broker.subscriber(channel=topic)
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    return broker


async def _consume_faststream_streams(
    url: str, n: int, topic: str, group: str, acked: Acked
) -> Timing:
    broker = _faststream_streams(url, topic, group)
    await broker.start()
    start = time.perf_counter()
    handled = await _finished(COUNTER.reached)
    last_ack = await acked()
    await broker.stop()
    return start, handled, last_ack


async def _consume_faststream_pubsub(
    url: str, n: int, topic: str, group: str, acked: Acked
) -> Timing:
    broker = _faststream_pubsub(url, topic)
    await broker.start()
    start = await _publish_all(url, n, topic)
    handled = await _finished(COUNTER.reached)
    last_ack = await acked()
    await broker.stop()
    return start, handled, last_ack


# -- latency -----------------------------------------------------------------------------------

Running = Callable[[str, str], AbstractAsyncContextManager[object]]


async def latency(rate: int, seconds: float, rounds: int) -> list[LatencyRow]:
    """Both modes, the consumers configured alike: Streams read in batches of BATCH,
    blocking up to Dispytch's default `block` (1 s) when idle."""
    server = RedisServer()
    await asyncio.to_thread(server.start)
    url = server.url
    modes: dict[str, dict[str, Running]] = {
        "redis": {
            "raw redis-py": partial(_raw_streams_running, url),
            "dispytch": partial(_dispytch_running, url, "redis"),
            "faststream 0.7 (ack_policy=ACK)": partial(_faststream_running, url, "redis"),
        },
        "redis-pubsub": {
            "raw redis-py": partial(_raw_pubsub_running, url),
            "dispytch": partial(_dispytch_running, url, "redis-pubsub"),
            "faststream 0.7": partial(_faststream_running, url, "redis-pubsub"),
        },
    }
    rows = []
    try:
        for backend, implementations in modes.items():
            results: dict[str, list[dict[str, float]]] = {name: [] for name in implementations}
            for _ in range(rounds):
                for name, running in implementations.items():
                    topic, group = fresh("latency"), fresh("group")
                    if backend == "redis":
                        client = Redis.from_url(url)
                        await client.xgroup_create(topic, group, id="0", mkstream=True)
                        await client.aclose()
                    faststream = backend == "redis" and name.startswith("faststream")
                    sender = "redis-faststream" if faststream else backend
                    results[name].append(
                        await paced.measure(
                            sender, url, topic, rate, seconds, partial(running, topic, group)
                        )
                    )
            config = f"XREADGROUP COUNT {BATCH}" if backend == "redis" else ""
            rows += [LatencyRow(backend, rate, name, r, config) for name, r in results.items()]
    finally:
        await asyncio.to_thread(server.close)
    return rows


@asynccontextmanager
async def _raw_streams_running(url: str, topic: str, group: str) -> AsyncIterator[None]:
    client = RedisStreamsSettings(url=url).client(read_timeout=10)
    try:
        async with in_background(_raw_streams_loop(client, topic, group, 2**62)):
            yield
    finally:
        await client.aclose()


@asynccontextmanager
async def _raw_pubsub_running(url: str, topic: str, group: str) -> AsyncIterator[None]:
    client = RedisPubSubSettings(url=url).client()
    pubsub = client.pubsub()
    await pubsub.subscribe(topic)
    await pubsub.get_message(timeout=5)  # the subscription's confirmation
    try:
        async with in_background(_raw_pubsub_loop(pubsub, 2**62)):
            yield
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@asynccontextmanager
async def _dispytch_running(url: str, backend: str, topic: str, group: str) -> AsyncIterator[None]:
    listener = EventListener.from_backend(backend, group=group, url=url)
    async with listening(listener, topic):
        yield


@asynccontextmanager
async def _faststream_running(
    url: str, backend: str, topic: str, group: str
) -> AsyncIterator[None]:
    if backend == "redis":
        broker = _faststream_streams(url, topic, group)
    else:
        broker = _faststream_pubsub(url, topic)
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()
