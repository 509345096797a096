"""The memory backend: the whole Dispytch pipeline next to a hand-written loop on the same broker.

Both sides do the same work per event: decode the JSON envelope, validate the body with
pydantic, resolve one dependency, call the handler, ack. The hand-written loop decodes with
the standard library's `json`; Dispytch's JSON serializer uses pydantic-core's faster parser,
so a second hand-written loop uses that parser too: the gap between it and Dispytch is what
the framework itself costs. The memory broker settles an ack as it is made, so the time to
the last ack is the time to the last event handled.

Latency is not measured here: the memory broker lives in one process, and the latency
scenario's emitter is a separate process. `rss()` measures the resident memory of a
consumer process (resident.py) at 0, 100k, 500k and 1M events.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic_core import from_json

import resident
from dispytch import EventEmitter, EventListener
from dispytch.backends.memory import MemoryConsumer, MemoryProducer, get_broker
from dispytch.emitter.producer import OutgoingMessage
from dispytch.routing import TopicPattern
from harness import (
    COUNTER,
    BenchEvent,
    MemoryRow,
    Payload,
    Row,
    bench_events,
    best_of,
    count_until,
    counter_dependency,
    encode_event,
    handler,
)

TOPIC = "bench.events"
POINTS = (100_000, 500_000, 1_000_000)


async def rss() -> list[MemoryRow]:
    points = ",".join(str(p) for p in POINTS)
    return [
        MemoryRow("memory", "raw memory consumer", await resident.probe("memory", "raw", points)),
        MemoryRow("memory", "dispytch", await resident.probe("memory", "dispytch", points)),
    ]


async def throughput(n: int) -> list[Row]:
    events = bench_events(TOPIC, n)
    return await best_of(
        [
            lambda: _emit_raw(events),
            lambda: _emit_dispytch(events),
            lambda: _consume_raw(events),
            lambda: _consume_fast(events),
            lambda: _consume_dispytch(events),
        ]
    )


def _row(scenario: str, implementation: str, n: int, seconds: float) -> Row:
    ack = seconds if scenario == "consume" else None  # acks are settled synchronously
    return Row("memory", scenario, implementation, n, seconds, ack=ack)


async def _emit_raw(events: list[BenchEvent]) -> Row:
    producer = MemoryProducer(get_broker(uuid.uuid4().hex))

    async def send(event: BenchEvent) -> None:
        await producer.publish(OutgoingMessage(TOPIC, encode_event(event)))

    start = time.perf_counter()
    await asyncio.gather(*(send(e) for e in events))
    return _row("emit", "raw memory producer", len(events), time.perf_counter() - start)


async def _emit_dispytch(events: list[BenchEvent]) -> Row:
    emitter = EventEmitter.from_url(f"memory://{uuid.uuid4().hex}")
    start = time.perf_counter()
    async with emitter:
        await asyncio.gather(*(emitter.emit(e) for e in events))
    return _row("emit", "dispytch", len(events), time.perf_counter() - start)


async def _preload(events: list[BenchEvent]) -> str:
    """A fresh broker holding `events` for group "bench"; returns its name."""
    name = uuid.uuid4().hex
    get_broker(name).join("bench", [TopicPattern(TOPIC)])
    async with EventEmitter.from_url(f"memory://{name}") as emitter:
        for event in events:
            await emitter.emit(event)
    return name


async def _consume_raw(events: list[BenchEvent]) -> Row:
    return await _consume_loop(events, "raw memory consumer", json.loads)


async def _consume_fast(events: list[BenchEvent]) -> Row:
    loads = partial(from_json, cache_strings="keys")
    return await _consume_loop(events, "memory consumer loop, pydantic-core JSON", loads)


async def _consume_loop(
    events: list[BenchEvent], implementation: str, loads: Callable[[bytes], Any]
) -> Row:
    """The hand-written loop, decoding JSON with `loads`."""
    n = len(events)
    consumer = MemoryConsumer(get_broker(await _preload(events)), "bench", [TopicPattern(TOPIC)])
    COUNTER.reset(n)

    await consumer.start()
    start = time.perf_counter()
    async for msg in consumer.listen():
        envelope = loads(msg.payload)
        await handler(Payload.model_validate(envelope["body"]), counter_dependency())
        consumer.ack(msg)
        if COUNTER.count == n:
            break
    seconds = time.perf_counter() - start
    await consumer.stop()
    return _row("consume", implementation, n, seconds)


async def _consume_dispytch(events: list[BenchEvent]) -> Row:
    n = len(events)
    broker = await _preload(events)
    COUNTER.reset(n)
    listener = EventListener.from_url(f"memory://{broker}", group="bench")
    done = count_until(listener, TOPIC)

    start = time.perf_counter()
    task = asyncio.create_task(listener.listen())
    await done.wait()
    seconds = time.perf_counter() - start
    await listener.stop()
    await task
    return _row("consume", "dispytch", n, seconds)
