"""Kafka: Dispytch next to a hand-written aiokafka loop and FastStream 0.7, on one broker.

The broker (tansu, a Kafka-protocol broker; tools/brokers.py) is started here; every
implementation uses it in the same run, with the same client settings, and does the
same work per event. Topics have 4 partitions.

- emit burst: build the JSON envelope and publish it with acks=all; `n` events, all
  awaited until the broker confirmed them. The hand-written loop ("raw") uses aiokafka's
  own batching: `send()` each record, then await all delivery futures; "dispytch
  emit_many" hands the events over in one `emit_many()` call (no task per event).
- emit concurrent: the same, a task per event: "raw aiokafka gather(send_and_wait)",
  "dispytch" `gather` over `emit()`, FastStream `gather` over `publish()`. The Dispytch rows
  build their pydantic events before the clock starts and collect garbage after building
  them: 20,000 live events would otherwise make a full collection due inside the timing,
  which the other rows, building plain dicts, do not have to pay.
- consume: `n` events pre-loaded; a consumer group with manual commits reads them from
  the start: decode the envelope, validate `Payload` with pydantic, resolve one
  dependency, call a trivial handler, commit. The hand-written loop handles each
  `getmany()` batch in order and commits once per batch. Timed from the moment the
  consumer has joined its group (joins take about half the session timeout on tansu,
  which would otherwise dominate) until the last event was handled; the time to the last
  ack is until a client of the group that does not join it, polling every millisecond
  from then on, sees the group's committed offsets cover every event: each implementation
  commits on its own cadence.
  FastStream runs twice: at-least-once (`ack_policy=AckPolicy.ACK`: a commit after each
  message) and its default (`enable_auto_commit=True`, every 5 s, whether or not the
  handler finished).
- latency: see latency.py. Every implementation fetches with Dispytch's default
  `fetch_max_wait_ms` (100; aiokafka's own default is 500), the hand-written loop polls
  with `getmany(timeout_ms=1000)` and commits per batch, FastStream runs with its default
  (auto-commit). The hand-written loop ("raw") decodes with the standard
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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import Depends
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from pydantic_core import from_json

import latency as paced
import resident
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
    LatencyRow,
    MemoryRow,
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

PRODUCER: dict[str, Any] = {"acks": "all", "max_batch_size": 256 * 1024}
GROUP: dict[str, Any] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}
FETCH: dict[str, Any] = {"fetch_max_wait_ms": KafkaSettings().fetch_max_wait_ms}
"""What every consumer of the latency scenario fetches with: Dispytch's default."""
PARTITIONS = 4
MEMORY_POINTS = (100_000, 200_000)


async def throughput(n: int) -> list[Row]:
    server = KafkaServer()
    await asyncio.to_thread(server.start)
    try:
        bootstrap = server.bootstrap
        burst, concurrent = "emit burst", "emit concurrent"
        return await best_of(
            [
                lambda: _emit(bootstrap, n, burst, "raw aiokafka send() loop", _emit_raw),
                lambda: _emit(
                    bootstrap, n, burst, "dispytch emit_many", _emit_dispytch(_emit_many)
                ),
                lambda: _emit(
                    bootstrap, n, burst, "dispytch-kafka seam only (enqueue)", _emit_seam
                ),
                lambda: _emit(
                    bootstrap,
                    n,
                    concurrent,
                    "raw aiokafka gather(send_and_wait)",
                    _emit_concurrently,
                ),
                lambda: _emit(
                    bootstrap, n, concurrent, "dispytch gather(emit)", _emit_dispytch(_gather_emits)
                ),
                lambda: _emit(
                    bootstrap, n, concurrent, "faststream 0.7 gather(publish)", _emit_faststream
                ),
                lambda: _consume(bootstrap, n, "raw aiokafka", _consume_raw),
                lambda: _consume(bootstrap, n, "aiokafka loop, pydantic-core JSON", _consume_fast),
                lambda: _consume(bootstrap, n, "dispytch", _consume_dispytch),
                lambda: _consume(bootstrap, n, "dispytch-kafka seam only", _consume_seam),
                lambda: _consume(
                    bootstrap,
                    n,
                    "faststream 0.7 at-least-once (ack_policy=ACK)",
                    _consume_faststream(AckPolicy.ACK),
                ),
                lambda: _consume(
                    bootstrap, n, "faststream 0.7 default (auto-commit)", _consume_faststream(None)
                ),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[str, int, str], Awaitable[float]]


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _emit(bootstrap: str, n: int, scenario: str, implementation: str, emit: Emit) -> Row:
    """Run one emit implementation into a fresh topic, created beforehand."""
    topic = fresh("emit")
    await _create_topic(bootstrap, topic)
    gc.collect()  # see _consume
    return Row("kafka", scenario, implementation, n, await emit(bootstrap, n, topic))


async def _emit_raw(bootstrap: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)

    async def send_all(producer: AIOKafkaProducer) -> None:
        deliveries = [await producer.send(topic, encode_event(e)) for e in events]
        await asyncio.gather(*deliveries)

    return await _with_aiokafka(bootstrap, send_all)


async def _emit_concurrently(bootstrap: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)

    async def send_all(producer: AIOKafkaProducer) -> None:
        await asyncio.gather(*(producer.send_and_wait(topic, encode_event(e)) for e in events))

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
    events = bench_events(topic, n)
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=bootstrap, **PRODUCER))
    await producer.start()
    try:
        start = time.perf_counter()
        deliveries = [producer.enqueue(OutgoingMessage(topic, encode_event(e))) for e in events]
        for delivery in deliveries:
            await delivery
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def _emit_faststream(bootstrap: str, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    broker = KafkaBroker(bootstrap, logger=None, **PRODUCER)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(broker.publish(event_envelope(e), topic=topic) for e in events))
        return time.perf_counter() - start
    finally:
        await broker.stop()


# -- consume -----------------------------------------------------------------------------------

Committed = Callable[[], Awaitable[float]]
"""Wait until the group's committed offsets cover every event; the perf_counter() then."""
Timing = tuple[float, float, float]
"""The perf_counter() of the start, of the last event handled and of the last commit."""
Consume = Callable[[str, int, str, str, Committed], Awaitable[Timing]]


async def _preload(bootstrap: str, n: int, topic: str) -> None:
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER)
    await producer.start()
    try:
        deliveries = [await producer.send(topic, encoded(i)) for i in range(n)]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, n: int, implementation: str, consume: Consume) -> Row:
    """Pre-load `n` events into a fresh topic, then time one consume implementation."""
    topic, group = fresh("consume"), fresh("group")
    await _preload(bootstrap, n, topic)
    # A client of the group that never joins it only reads its committed offsets (tansu
    # does not answer the admin client's OffsetFetch version).
    observer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **GROUP)
    await observer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def all_committed() -> bool:
        offsets = await asyncio.gather(*(observer.committed(tp) for tp in partitions))
        return sum(o or 0 for o in offsets) >= n

    async def committed() -> float:
        return await until(all_committed, f"{implementation}: commit of all {n} offsets")

    COUNTER.reset(n)
    # Start each implementation with no garbage pending: otherwise whichever one makes a
    # full collection of this process due (~50 ms) pays for the garbage of earlier scenarios.
    gc.collect()
    try:
        start, handled, acked = await consume(bootstrap, n, topic, group, committed)
    finally:
        await observer.stop()
    assert COUNTER.count >= n, f"{implementation} handled {COUNTER.count} of {n}"
    return Row("kafka", "consume", implementation, n, handled - start, ack=acked - start)


async def _consume_raw(
    bootstrap: str, n: int, topic: str, group: str, committed: Committed
) -> Timing:
    return await _consume_loop(bootstrap, n, topic, group, committed, json.loads)


async def _consume_fast(
    bootstrap: str, n: int, topic: str, group: str, committed: Committed
) -> Timing:
    loads = partial(from_json, cache_strings="keys")
    return await _consume_loop(bootstrap, n, topic, group, committed, loads)


def _raw_consumer(bootstrap: str, topic: str, group: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP,
        **options,
    )


async def _raw_loop(consumer: AIOKafkaConsumer, loads: Callable[[bytes], Any], n: int) -> None:
    """The hand-written loop: handle each batch in order, commit it."""
    while COUNTER.count < n:
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            for record in records:
                data = loads(record.value)
                await handler(Payload.model_validate(data["body"]), counter_dependency())
        if batch:
            await consumer.commit(
                {
                    TopicPartition(tp.topic, tp.partition): r[-1].offset + 1
                    for tp, r in batch.items()
                }
            )


async def _consume_loop(
    bootstrap: str,
    n: int,
    topic: str,
    group: str,
    committed: Committed,
    loads: Callable[[bytes], Any],
) -> Timing:
    consumer = _raw_consumer(bootstrap, topic, group)
    await consumer.start()
    try:
        start = time.perf_counter()
        await _raw_loop(consumer, loads, n)
        handled = time.perf_counter()
        return start, handled, await committed()
    finally:
        await consumer.stop()


async def _consume_dispytch(
    bootstrap: str, n: int, topic: str, group: str, committed: Committed
) -> Timing:
    listener = EventListener.from_backend(
        "kafka", group=group, bootstrap_servers=bootstrap, **GROUP
    )
    done = count_until(listener, topic)

    task = asyncio.create_task(listener.listen())
    await listener.wait_ready()
    start = time.perf_counter()
    await done.wait()
    handled = time.perf_counter()
    acked = await committed()
    await listener.stop()
    await task
    return start, handled, acked


async def _consume_seam(
    bootstrap: str, n: int, topic: str, group: str, committed: Committed
) -> Timing:
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
                handled = time.perf_counter()
                return start, handled, await committed()
        raise AssertionError("the consumer stopped early")
    finally:
        await consumer.stop()


def _faststream_broker(
    bootstrap: str, topic: str, group: str, policy: AckPolicy | None, **options: Any
) -> KafkaBroker:
    broker = KafkaBroker(bootstrap, logger=None)
    policies = {} if policy is None else {"ack_policy": policy}

    @broker.subscriber(
        topic, group_id=group, auto_offset_reset="earliest", **policies, **GROUP, **options
    )
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    return broker


def _consume_faststream(policy: AckPolicy | None) -> Consume:
    async def consume(
        bootstrap: str, n: int, topic: str, group: str, committed: Committed
    ) -> Timing:
        broker = _faststream_broker(bootstrap, topic, group, policy)
        await broker.start()
        start = time.perf_counter()
        await COUNTER.reached.wait()
        handled = time.perf_counter()
        acked = await committed()
        await broker.stop()
        return start, handled, acked

    return consume


# -- latency -----------------------------------------------------------------------------------


async def latency(rate: int, seconds: float, rounds: int) -> list[LatencyRow]:
    server = KafkaServer()
    await asyncio.to_thread(server.start)
    bootstrap = server.bootstrap
    implementations: dict[str, Callable[[str, str], AbstractAsyncContextManager[object]]] = {
        "raw aiokafka": partial(_raw_running, bootstrap),
        "dispytch": partial(_dispytch_running, bootstrap),
        "faststream 0.7 default (auto-commit)": partial(_faststream_running, bootstrap),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in implementations}
    try:
        for _ in range(rounds):
            for name, running in implementations.items():
                topic, group = fresh("latency"), fresh("group")
                await _create_topic(bootstrap, topic)
                results[name].append(
                    await paced.measure(
                        "kafka", bootstrap, topic, rate, seconds, partial(running, topic, group)
                    )
                )
    finally:
        await asyncio.to_thread(server.close)
    config = f"fetch_max_wait_ms={FETCH['fetch_max_wait_ms']}"
    return [LatencyRow("kafka", rate, name, r, config) for name, r in results.items()]


@asynccontextmanager
async def _raw_running(bootstrap: str, topic: str, group: str) -> AsyncIterator[None]:
    consumer = _raw_consumer(bootstrap, topic, group, **FETCH)
    await consumer.start()
    try:
        async with in_background(_raw_loop(consumer, json.loads, 2**62)):
            yield
    finally:
        await consumer.stop()


@asynccontextmanager
async def _dispytch_running(bootstrap: str, topic: str, group: str) -> AsyncIterator[None]:
    listener = EventListener.from_backend(
        "kafka", group=group, bootstrap_servers=bootstrap, **GROUP
    )
    async with listening(listener, topic):
        yield


@asynccontextmanager
async def _faststream_running(bootstrap: str, topic: str, group: str) -> AsyncIterator[None]:
    broker = _faststream_broker(bootstrap, topic, group, None, **FETCH)
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


# -- memory ------------------------------------------------------------------------------------


async def rss() -> list[MemoryRow]:
    server = KafkaServer()
    await asyncio.to_thread(server.start)
    n = max(MEMORY_POINTS)
    points = ",".join(str(p) for p in MEMORY_POINTS)
    rows = []
    try:
        for implementation, name in (("raw", "raw aiokafka"), ("dispytch", "dispytch")):
            topic, group = fresh("memory"), fresh("group")
            await _preload(server.bootstrap, n, topic)
            sizes = await resident.probe(
                "kafka", implementation, points, server.bootstrap, topic, group
            )
            rows.append(MemoryRow("kafka", name, sizes))
    finally:
        await asyncio.to_thread(server.close)
    return rows
