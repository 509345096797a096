"""RabbitMQ: Dispytch next to a hand-written aio-pika loop and FastStream 0.7, on one node.

The node is started here (tools/brokers.py); every implementation uses it in the same run
and does the same work per event.

- emit: build the JSON envelope, publish it persistent and mandatory to a durable topic
  exchange, wait for the publisher confirm; `n` events concurrently, connection open.
- consume: `n` events pre-loaded in a durable queue; connect, consume with prefetch 100
  and manual acks; decode the envelope, validate `Payload` with pydantic, resolve one
  dependency, call a trivial handler, ack. The hand-written loop is an aio-pika
  `queue.consume` callback (faster here than `async for` over `queue.iterator()`).
  Timed from before the consumer connects until the last event was handled.
- time to the last ack: RabbitMQ shows clients only a queue's ready messages, not its
  unacked ones. So once the last event was handled, the consumer is stopped (each
  implementation its own way: its channel closes, and the broker puts back every message
  it had not acked), and a passive declare of the queue reads its message count: 0 proves
  every event acked. The time is from the same start until that answer; a count above 0
  is reported as "not all acked", without a time.
- latency: see latency.py; the emitter publishes transient messages without confirms.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from faststream import Depends
from faststream.rabbit import (
    Channel,
    ExchangeType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)

import latency as paced
from brokers import RabbitMQServer
from dispytch import EventEmitter, EventListener
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
    counter_dependency,
    encode_event,
    envelope,
    event_envelope,
    handler,
    listening,
)

EXCHANGE = "bench"
PREFETCH = 100
PUBLISH_TIMEOUT = 300.0
"""Seconds each of the `n` concurrent emits may wait for its confirm: on a loaded machine
the last of 20,000 waits longer than the default 10 s (the other rows have no limit)."""


async def throughput(n: int) -> list[Row]:
    server = RabbitMQServer()
    await asyncio.to_thread(server.start)
    try:
        url = server.url
        rows = await best_of(
            [
                lambda: _emit(url, n, "raw aio-pika", _emit_raw),
                lambda: _emit(url, n, "dispytch", _emit_dispytch),
                lambda: _emit(url, n, "faststream 0.7", _emit_faststream),
                lambda: _consume(url, n, "raw aio-pika", _raw_running),
                lambda: _consume(url, n, "dispytch", _dispytch_running),
                lambda: _consume(url, n, "faststream 0.7", _faststream_running),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)
    return rows


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[str, int, str], Awaitable[float]]


async def _emit(url: str, n: int, implementation: str, emit: Emit) -> Row:
    """Run one emit implementation into a bound, then purged, queue."""
    topic = f"emit.{uuid.uuid4().hex[:8]}"
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
        sink = await channel.declare_queue(topic, durable=True)
        await sink.bind(exchange, topic)
        seconds = await emit(url, n, topic)
        await sink.delete(if_unused=False, if_empty=False)
    return Row("rabbitmq", "emit", implementation, n, seconds)


async def _emit_raw(url: str, n: int, topic: str) -> float:
    async with await aio_pika.connect_robust(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)

        events = bench_events(topic, n)

        async def publish(event: BenchEvent) -> None:
            message = aio_pika.Message(
                encode_event(event), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await exchange.publish(message, topic, mandatory=True)

        start = time.perf_counter()
        await asyncio.gather(*(publish(e) for e in events))
        return time.perf_counter() - start


async def _emit_dispytch(url: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    async with EventEmitter.from_backend(
        "rabbitmq", url=url, exchange=EXCHANGE, publish_timeout=PUBLISH_TIMEOUT
    ) as emitter:
        start = time.perf_counter()
        await asyncio.gather(*(emitter.emit(e) for e in events))
        return time.perf_counter() - start


async def _emit_faststream(url: str, n: int, topic: str) -> float:
    broker = RabbitBroker(url, logger=None)
    exchange = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True)
    events = bench_events(topic, n)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                broker.publish(
                    event_envelope(e), exchange=exchange, routing_key=topic, persist=True
                )
                for e in events
            )
        )
        return time.perf_counter() - start
    finally:
        await broker.stop()


# -- consume -----------------------------------------------------------------------------------

Running = Callable[[str, str, str], AbstractAsyncContextManager[None]]
"""A consumer of (url, topic, group), consuming while the block runs, stopped after it."""


async def _consume(url: str, n: int, implementation: str, running: Running) -> Row:
    """Pre-load `n` events into a fresh durable queue, then time one consumer until its last
    event was handled and until the broker, once the consumer stopped, holds none of them."""
    topic = f"consume.{uuid.uuid4().hex[:8]}"
    group = topic.replace(".", "-")
    queue = f"{EXCHANGE}.{group}"  # the name Dispytch gives the group's queue
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
        loaded = await channel.declare_queue(queue, durable=True)
        await loaded.bind(exchange, topic)
        for i in range(n):
            body = json.dumps(envelope(i)).encode()
            message = aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, topic)
        await _until_queued(channel, queue, n)
        COUNTER.reset(n)
        start = time.perf_counter()
        async with running(url, topic, group):
            await COUNTER.reached.wait()
            handled = time.perf_counter()
        left = await _queued(channel, queue)
        acked = time.perf_counter()
        assert COUNTER.count >= n, f"{implementation} handled {COUNTER.count} of {n}"
        await loaded.delete(if_unused=False, if_empty=False)
    return Row(
        "rabbitmq",
        "consume",
        implementation,
        n,
        handled - start,
        ack=None if left else acked - start,
        unacked=left,
    )


async def _queued(channel: AbstractChannel, queue: str) -> int:
    """How many messages `queue` holds ready for delivery (a passive declare)."""
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def _until_queued(channel: AbstractChannel, queue: str, n: int) -> None:
    """Wait until the broker holds all `n` pre-loaded messages (published unconfirmed)."""
    for _ in range(1200):
        if await _queued(channel, queue) >= n:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{queue!r} did not receive its {n} messages within a minute")


# -- the consumers, running ----------------------------------------------------------------------


@asynccontextmanager
async def _raw_running(url: str, topic: str, group: str) -> AsyncIterator[None]:
    async def on_message(message: AbstractIncomingMessage) -> None:
        data = json.loads(message.body)
        await handler(Payload.model_validate(data["body"]), counter_dependency())
        await message.ack()

    async with await aio_pika.connect_robust(url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
        queue = await channel.declare_queue(f"{EXCHANGE}.{group}", durable=True)
        await queue.bind(exchange, topic)
        await queue.consume(on_message)
        yield


@asynccontextmanager
async def _dispytch_running(url: str, topic: str, group: str) -> AsyncIterator[None]:
    listener = EventListener.from_backend(
        "rabbitmq", group=group, url=url, exchange=EXCHANGE, prefetch=PREFETCH
    )
    async with listening(listener, topic):
        yield


@asynccontextmanager
async def _faststream_running(url: str, topic: str, group: str) -> AsyncIterator[None]:
    broker = RabbitBroker(url, default_channel=Channel(prefetch_count=PREFETCH), logger=None)
    queue = RabbitQueue(f"{EXCHANGE}.{group}", durable=True, routing_key=topic)

    @broker.subscriber(queue, RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True))
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


# -- latency -----------------------------------------------------------------------------------


async def latency(rate: int, seconds: float, rounds: int) -> list[LatencyRow]:
    server = RabbitMQServer()
    await asyncio.to_thread(server.start)
    url = server.url
    implementations = {
        "raw aio-pika": _raw_running,
        "dispytch": _dispytch_running,
        "faststream 0.7": _faststream_running,
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in implementations}
    try:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            await channel.declare_exchange(EXCHANGE, "topic", durable=True)
        for _ in range(rounds):
            for name, running in implementations.items():
                topic = f"latency.{uuid.uuid4().hex[:8]}"
                group = topic.replace(".", "-")
                results[name].append(
                    await paced.measure(
                        "rabbitmq",
                        url,
                        f"{EXCHANGE}/{topic}",
                        rate,
                        seconds,
                        partial(running, url, topic, group),
                    )
                )
    finally:
        await asyncio.to_thread(server.close)
    config = f"prefetch {PREFETCH}, manual acks, transient messages"
    return [LatencyRow("rabbitmq", rate, name, r, config) for name, r in results.items()]
