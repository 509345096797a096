"""Kafka: Dispytch next to a hand-written aiokafka loop and FastStream 0.7, on one broker.

The broker (tansu, a Kafka-protocol broker; tools/brokers.py) is started here; every
implementation uses it in the same run, with the same client settings, and does the
same work per event. Topics have 4 partitions.

- emit: build the JSON envelope and publish it with acks=all; `n` events, all awaited
  until the broker confirmed them. The hand-written loop ("raw") uses aiokafka's own
  batching: `send()` each record, then await all delivery futures. "aiokafka
  gather(send_and_wait)" is the hand-written concurrent version: a task per event.
  "dispytch" emits concurrently, `gather` over `emit()` (a task per event, too);
  "dispytch emit_many" hands them over in one `emit_many()` call (no task per event).
  FastStream publishes them concurrently, `gather` over `publish()`. The Dispytch rows
  build their pydantic events before the clock starts and collect garbage after building
  them: 20,000 live events would otherwise make a full collection due inside the timing,
  which the other rows, building plain dicts, do not have to pay.
- consume: `n` events pre-loaded; a consumer group with manual commits reads them from
  the start: decode the envelope, validate `Payload` with pydantic, resolve one
  dependency, call a trivial handler, commit. The hand-written loop handles each
  `getmany()` batch in order and commits once per batch. Timed from the moment the
  consumer has joined its group (joins take about half the session timeout on tansu,
  which would otherwise dominate) until the last event was handled and committed: the
  Dispytch and seam rows commit what was acked before they stop the clock, as the
  hand-written loop does. The hand-written loop ("raw") decodes with the standard
  library's `json`; Dispytch's JSON serializer uses pydantic-core's parser, several times
  faster, so "aiokafka loop, pydantic-core JSON" is the hand-written loop with that parser:
  the gap between it and "dispytch" is what the framework itself costs.

Every scenario starts with a `gc.collect()`, outside the timing: a full collection of this
process takes ~50 ms, and without it whichever implementation happens to make one due pays
for the garbage of the scenarios before it.

The "dispytch-kafka seam only" rows do the same work through the backend's `KafkaProducer`
(`enqueue()` each encoded event, then await the deliveries in order) and `KafkaConsumer` (a
plain loop over `listen()` that acks each message) without the rest of Dispytch: they show
what the backend itself costs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream import Depends
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from pydantic_core import from_json

from brokers import KafkaServer
from dispytch import EventEmitter, EventListener, OutgoingMessage
from dispytch.backends import Subscription
from dispytch.routing import TopicPattern
from dispytch_kafka import KafkaConsumer, KafkaProducer, KafkaSettings
from harness import (
    COUNTER,
    BenchEvent,
    Counter,
    Envelope,
    Payload,
    Row,
    bench_events,
    best_of,
    count_until,
    counter_dependency,
    encoded,
    envelope,
    fresh,
    handler,
)

PRODUCER: dict[str, Any] = {"acks": "all", "max_batch_size": 256 * 1024}
GROUP: dict[str, Any] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


async def run(n: int) -> list[Row]:
    server = KafkaServer()
    await asyncio.to_thread(server.start)
    try:
        bootstrap = server.bootstrap
        return await best_of(
            [
                lambda: _emit(bootstrap, n, "raw aiokafka", _emit_raw),
                lambda: _emit(bootstrap, n, "aiokafka gather(send_and_wait)", _emit_concurrently),
                lambda: _emit(bootstrap, n, "dispytch", _emit_dispytch(_gather_emits)),
                lambda: _emit(bootstrap, n, "dispytch emit_many", _emit_dispytch(_emit_many)),
                lambda: _emit(bootstrap, n, "dispytch-kafka seam only (enqueue)", _emit_seam),
                lambda: _emit(bootstrap, n, "faststream 0.7", _emit_faststream),
                lambda: _consume(bootstrap, n, "raw aiokafka", _consume_raw),
                lambda: _consume(bootstrap, n, "aiokafka loop, pydantic-core JSON", _consume_fast),
                lambda: _consume(bootstrap, n, "dispytch", _consume_dispytch),
                lambda: _consume(bootstrap, n, "dispytch-kafka seam only", _consume_seam),
                lambda: _consume(bootstrap, n, "faststream 0.7", _consume_faststream),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[str, int, str], Awaitable[float]]


async def _emit(bootstrap: str, n: int, implementation: str, emit: Emit) -> Row:
    """Run one emit implementation into a fresh topic, created beforehand."""
    topic = fresh("emit")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"creates the topic")
    finally:
        await producer.stop()
    gc.collect()  # see _consume
    return Row("kafka", "emit", implementation, n, await emit(bootstrap, n, topic))


async def _emit_raw(bootstrap: str, n: int, topic: str) -> float:
    async def send_all(producer: AIOKafkaProducer) -> None:
        deliveries = [await producer.send(topic, encoded(i)) for i in range(n)]
        await asyncio.gather(*deliveries)

    return await _with_aiokafka(bootstrap, send_all)


async def _emit_concurrently(bootstrap: str, n: int, topic: str) -> float:
    async def send_all(producer: AIOKafkaProducer) -> None:
        await asyncio.gather(*(producer.send_and_wait(topic, encoded(i)) for i in range(n)))

    return await _with_aiokafka(bootstrap, send_all)


async def _with_aiokafka(
    bootstrap: str, send_all: Callable[[AIOKafkaProducer], Awaitable[None]]
) -> float:
    """Seconds `send_all` takes with a started aiokafka producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER)
    await producer.start()
    try:
        start = time.perf_counter()
        await send_all(producer)
        return time.perf_counter() - start
    finally:
        await producer.stop()


def _emit_dispytch(emit_all: Callable[[EventEmitter, list[BenchEvent]], Awaitable[Any]]) -> Emit:
    """Dispytch emitting with `emit_all(emitter, events)`."""

    async def emit(bootstrap: str, n: int, topic: str) -> float:
        events = bench_events(topic, n)
        gc.collect()  # the events are input, built before the clock: so is their collection debt
        async with EventEmitter.from_backend(
            "kafka", bootstrap_servers=bootstrap, **PRODUCER
        ) as emitter:
            start = time.perf_counter()
            await emit_all(emitter, events)
            return time.perf_counter() - start

    return emit


async def _gather_emits(emitter: EventEmitter, events: list[BenchEvent]) -> None:
    await asyncio.gather(*(emitter.emit(e) for e in events))


async def _emit_many(emitter: EventEmitter, events: list[BenchEvent]) -> None:
    await emitter.emit_many(events)


async def _emit_seam(bootstrap: str, n: int, topic: str) -> float:
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=bootstrap, **PRODUCER))
    await producer.start()
    try:
        start = time.perf_counter()
        deliveries = [producer.enqueue(OutgoingMessage(topic, encoded(i))) for i in range(n)]
        for delivery in deliveries:
            await delivery
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def _emit_faststream(bootstrap: str, n: int, topic: str) -> float:
    broker = KafkaBroker(bootstrap, logger=None, **PRODUCER)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(broker.publish(envelope(i), topic=topic) for i in range(n)))
        return time.perf_counter() - start
    finally:
        await broker.stop()


# -- consume -----------------------------------------------------------------------------------

Consume = Callable[[str, int, str, str], Awaitable[float]]


async def _consume(bootstrap: str, n: int, implementation: str, consume: Consume) -> Row:
    """Pre-load `n` events into a fresh topic, then time one consume implementation."""
    topic, group = fresh("consume"), fresh("group")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER)
    await producer.start()
    try:
        deliveries = [await producer.send(topic, encoded(i)) for i in range(n)]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    COUNTER.count = 0
    # Start each implementation with no garbage pending: otherwise whichever one makes a
    # full collection of this process due (~50 ms) pays for the garbage of earlier scenarios.
    gc.collect()
    seconds = await consume(bootstrap, n, topic, group)
    assert COUNTER.count >= n, f"{implementation} handled {COUNTER.count} of {n}"
    return Row("kafka", "consume", implementation, n, seconds)


async def _consume_raw(bootstrap: str, n: int, topic: str, group: str) -> float:
    return await _consume_loop(bootstrap, n, topic, group, json.loads)


async def _consume_fast(bootstrap: str, n: int, topic: str, group: str) -> float:
    return await _consume_loop(bootstrap, n, topic, group, partial(from_json, cache_strings="keys"))


async def _consume_loop(
    bootstrap: str, n: int, topic: str, group: str, loads: Callable[[bytes], Any]
) -> float:
    """The hand-written loop, decoding JSON with `loads`."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP,
    )
    await consumer.start()
    try:
        start = time.perf_counter()
        while COUNTER.count < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    data = loads(record.value)
                    await handler(Payload.model_validate(data["body"]), counter_dependency())
            await consumer.commit(
                {TopicPartition(topic, tp.partition): r[-1].offset + 1 for tp, r in batch.items()}
            )
        return time.perf_counter() - start
    finally:
        await consumer.stop()


async def _consume_dispytch(bootstrap: str, n: int, topic: str, group: str) -> float:
    listener = EventListener.from_backend(
        "kafka", group=group, bootstrap_servers=bootstrap, **GROUP
    )
    done = count_until(listener, topic, n)

    task = asyncio.create_task(listener.listen())
    await listener.wait_ready()
    start = time.perf_counter()
    await done.wait()
    await asyncio.sleep(0)  # the last handler's ack follows its return
    assert isinstance(listener.consumer, KafkaConsumer)
    await listener.consumer.commit()  # as the hand-written loop commits before it ends
    seconds = time.perf_counter() - start
    await listener.stop()
    await task
    return seconds


async def _consume_seam(bootstrap: str, n: int, topic: str, group: str) -> float:
    settings = KafkaSettings(bootstrap_servers=bootstrap, **GROUP)
    consumer = KafkaConsumer.from_settings(settings, Subscription(group, (TopicPattern(topic),)))
    await consumer.start()
    try:
        start = time.perf_counter()
        async for message in consumer.listen():
            data = json.loads(message.payload)
            await handler(Payload.model_validate(data["body"]), counter_dependency())
            consumer.ack(message)
            if COUNTER.count == n:
                await consumer.commit()
                return time.perf_counter() - start
        raise AssertionError("the consumer stopped early")
    finally:
        await consumer.stop()


async def _consume_faststream(bootstrap: str, n: int, topic: str, group: str) -> float:
    done = asyncio.Event()
    broker = KafkaBroker(bootstrap, logger=None)

    @broker.subscriber(
        topic, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.ACK, **GROUP
    )
    async def handler(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.count += 1
        if counter.count == n:
            done.set()

    await broker.start()
    start = time.perf_counter()
    await done.wait()
    seconds = time.perf_counter() - start
    await broker.stop()
    return seconds
