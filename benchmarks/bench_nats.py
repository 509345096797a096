"""NATS: Dispytch next to a hand-written nats-py loop and FastStream 0.7, on one server,
in both modes: backend `nats` (JetStream) and backend `nats-core` (core NATS).

The server (nats-server with JetStream; tools/brokers.py) is started here; every
implementation uses it in the same run and does the same work per event. JetStream events
go to the stream `bench` (subjects `bench` and `bench.>`), created up front as Dispytch
would create it.

- emit: build the JSON envelope of an event (the same pydantic events for every
  implementation, built before the clock starts; the hand-written loops encode them with
  `encode_event` inside the timing) and publish it. JetStream emits are done once
  JetStream acknowledged them; core NATS confirms nothing, so core rows end with one
  flush (a PING answered by the server): the time covers the server having read them all.
  - emit one by one: `n / 4` events on JetStream (each a round trip), `n` on core NATS,
    each awaited before the next is sent: a loop of `js.publish` (or `client.publish`)
    next to a loop of `emitter.emit`.
  - emit concurrent: `n` events, a task per event: `gather` over `js.publish` (a request
    each) or `client.publish`, next to `gather` over `emitter.emit` and FastStream's
    `gather` over `broker.publish`.
  - emit burst: `n` events handed over at once: nats-py's fastest way, `publish_async`
    for each then every acknowledgement awaited (core: the publish loop), next to
    `emitter.emit_many` (no task per event: the producers `enqueue` them).
- consume, JetStream: `n` events pre-loaded on a fresh subject; a new durable consumer
  reads them in pull batches of 100: decode the envelope, validate `Payload` with
  pydantic, resolve one dependency, call a trivial handler, ack each message. Timed from
  the moment the listener is ready until the last event was handled, and until the
  consumer's info shows nothing delivered and not acked (time to last ack).
- consume, core: nothing can be pre-loaded, so the subscriber is started first; then `n`
  events are published by a plain connection. Timed from the first publish until the last
  event was handled; the same publisher feeds every implementation.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from faststream import Depends
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client
from nats.js import api

from brokers import NatsServer
from dispytch import EventEmitter, EventListener
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
    encode_event,
    encoded,
    event_envelope,
    fresh,
    handler,
    until,
)

BATCH = 100
STREAM = "bench"
TIMEOUT = 30.0
"""Seconds a JetStream publish may wait for its acknowledgement: a burst of `n` requests
sent at once is answered in turn, so the hand-written loop and FastStream get as long as
they need."""
CHUNK = 1000


async def throughput(n: int) -> list[Row]:
    server = NatsServer()
    await asyncio.to_thread(server.start)
    try:
        url = server.url
        client = await nats.connect(url)
        await client.jetstream().add_stream(name=STREAM, subjects=[STREAM, f"{STREAM}.>"])
        await client.close()
        core = "nats-core"
        one, concurrent, burst = "emit one by one", "emit concurrent", "emit burst"
        return await best_of(
            [
                lambda: _emit(url, n // 4, "nats", one, "raw nats-py", _raw_jetstream_one_by_one),
                lambda: _emit(url, n // 4, "nats", one, "dispytch", _dispytch("nats", _one_by_one)),
                lambda: _emit(
                    url,
                    n,
                    "nats",
                    concurrent,
                    "raw nats-py gather(publish)",
                    _raw_jetstream_concurrent,
                ),
                lambda: _emit(
                    url,
                    n,
                    "nats",
                    concurrent,
                    "dispytch gather(emit)",
                    _dispytch("nats", _gather_emits),
                ),
                lambda: _emit(
                    url,
                    n,
                    "nats",
                    concurrent,
                    "faststream 0.7 gather(publish)",
                    _faststream_jetstream,
                ),
                lambda: _emit(
                    url, n, "nats", burst, "raw nats-py publish_async loop", _raw_jetstream_burst
                ),
                lambda: _emit(
                    url, n, "nats", burst, "dispytch emit_many", _dispytch("nats", _emit_many)
                ),
                lambda: _consume(url, n, "nats", "raw nats-py", _consume_raw_jetstream),
                lambda: _consume(url, n, "nats", "dispytch", _consume_dispytch("nats")),
                lambda: _consume(url, n, "nats", "faststream 0.7", _consume_faststream_jetstream),
                lambda: _emit(url, n, core, one, "raw nats-py", _raw_core_one_by_one),
                lambda: _emit(url, n, core, one, "dispytch", _dispytch(core, _one_by_one)),
                lambda: _emit(
                    url, n, core, concurrent, "raw nats-py gather(publish)", _raw_core_concurrent
                ),
                lambda: _emit(
                    url,
                    n,
                    core,
                    concurrent,
                    "dispytch gather(emit)",
                    _dispytch(core, _gather_emits),
                ),
                lambda: _emit(
                    url, n, core, concurrent, "faststream 0.7 gather(publish)", _faststream_core
                ),
                lambda: _emit(
                    url, n, core, burst, "raw nats-py publish loop", _raw_core_one_by_one
                ),
                lambda: _emit(
                    url, n, core, burst, "dispytch emit_many", _dispytch(core, _emit_many)
                ),
                lambda: _consume(url, n, core, "raw nats-py", _consume_raw_core),
                lambda: _consume(url, n, core, "dispytch", _consume_dispytch(core)),
                lambda: _consume(url, n, core, "faststream 0.7", _consume_faststream_core),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[str, list[BenchEvent], str], Awaitable[float]]
"""Emit the events on a backend's server; the seconds it took."""


async def _emit(
    url: str, n: int, backend: str, scenario: str, implementation: str, emit: Emit
) -> Row:
    """Time one emit implementation on a fresh subject. The events are built before the
    clock starts, and the garbage of earlier runs collected: every implementation encodes
    the same events inside the timing."""
    subject = _subject(backend, "emit")
    events = bench_events(subject, n)
    gc.collect()
    return Row(backend, scenario, implementation, n, await emit(url, events, subject))


def _subject(backend: str, kind: str) -> str:
    """A fresh subject: in the stream `bench` for JetStream, outside any stream for core
    NATS (a stream would store core messages too)."""
    return fresh(kind) if backend == "nats" else f"core.{fresh(kind)}"


async def _timed_raw(url: str, send_all: Callable[[Client], Awaitable[None]]) -> float:
    """Seconds `send_all` takes on a fresh nats-py connection."""
    client = await nats.connect(url)
    try:
        start = time.perf_counter()
        await send_all(client)
        return time.perf_counter() - start
    finally:
        await client.close()


async def _raw_jetstream_one_by_one(url: str, events: list[BenchEvent], subject: str) -> float:
    async def send_all(client: Client) -> None:
        js = client.jetstream(timeout=TIMEOUT)
        for event in events:
            await js.publish(subject, encode_event(event))

    return await _timed_raw(url, send_all)


async def _raw_jetstream_concurrent(url: str, events: list[BenchEvent], subject: str) -> float:
    async def send_all(client: Client) -> None:
        js = client.jetstream(timeout=TIMEOUT)
        await asyncio.gather(*(js.publish(subject, encode_event(e)) for e in events))

    return await _timed_raw(url, send_all)


async def _raw_jetstream_burst(url: str, events: list[BenchEvent], subject: str) -> float:
    """nats-py's pipelined publishing: all sent, then every acknowledgement awaited."""

    async def send_all(client: Client) -> None:
        js = client.jetstream(timeout=TIMEOUT)
        acks = [await js.publish_async(subject, encode_event(e)) for e in events]
        await asyncio.gather(*acks)

    return await _timed_raw(url, send_all)


async def _raw_core_one_by_one(url: str, events: list[BenchEvent], subject: str) -> float:
    """Core NATS has no acknowledgement: a publish loop, then one flush (a PING answered
    by the server), so the time covers the server having read them all. The burst row of
    core NATS is the same loop: it is nats-py's fastest way to send many."""

    async def send_all(client: Client) -> None:
        for event in events:
            await client.publish(subject, encode_event(event))
        await client.flush()

    return await _timed_raw(url, send_all)


async def _raw_core_concurrent(url: str, events: list[BenchEvent], subject: str) -> float:
    async def send_all(client: Client) -> None:
        await asyncio.gather(*(client.publish(subject, encode_event(e)) for e in events))
        await client.flush()

    return await _timed_raw(url, send_all)


def _dispytch(backend: str, emit_all: Callable[[EventEmitter, list[BenchEvent]], Any]) -> Emit:
    """Dispytch emitting with `emit_all(emitter, events)`; on core NATS, then one flush as
    the hand-written loop does."""

    async def emit(url: str, events: list[BenchEvent], subject: str) -> float:
        async with EventEmitter.from_backend(backend, url=url) as emitter:
            start = time.perf_counter()
            await emit_all(emitter, events)
            if backend == "nats-core":
                client: Client = emitter.producer.client  # type: ignore[attr-defined]
                await client.flush()
            return time.perf_counter() - start

    return emit


async def _one_by_one(emitter: EventEmitter, events: list[BenchEvent]) -> None:
    for event in events:
        await emitter.emit(event)


async def _gather_emits(emitter: EventEmitter, events: list[BenchEvent]) -> None:
    await asyncio.gather(*(emitter.emit(e) for e in events))


async def _emit_many(emitter: EventEmitter, events: list[BenchEvent]) -> None:
    await emitter.emit_many(events)


async def _faststream_jetstream(url: str, events: list[BenchEvent], subject: str) -> float:
    broker = NatsBroker(url, logger=None)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                broker.publish(event_envelope(e), subject, stream=STREAM, timeout=TIMEOUT)
                for e in events
            )
        )
        return time.perf_counter() - start
    finally:
        await broker.stop()


async def _faststream_core(url: str, events: list[BenchEvent], subject: str) -> float:
    broker = NatsBroker(url, logger=None)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(broker.publish(event_envelope(e), subject) for e in events))
        await broker.connection.flush()
        return time.perf_counter() - start
    finally:
        await broker.stop()


# -- consume -----------------------------------------------------------------------------------

Acked = Callable[[], Awaitable[float]]
"""Wait until JetStream shows every event acked; the perf_counter() then."""
Timing = tuple[float, float, float]
"""The perf_counter() of the start, of the last event handled and of the last ack."""
Consume = Callable[[str, int, str, str, Acked], Awaitable[Timing]]


async def _consume(url: str, n: int, backend: str, implementation: str, consume: Consume) -> Row:
    """Time one consume implementation on a fresh subject; for JetStream, pre-load it first
    and see the last ack by polling the group's consumer info every millisecond."""
    subject, group = _subject(backend, "consume"), fresh("group").replace(".", "-")
    client = await nats.connect(url)
    js = client.jetstream()
    if backend == "nats":
        for first in range(0, n, CHUNK):
            acks = [
                await js.publish_async(subject, encoded(i))
                for i in range(first, min(first + CHUNK, n))
            ]
            await asyncio.gather(*acks)

    async def all_acked() -> bool:
        info = await js.consumer_info(STREAM, group)
        return info.num_ack_pending == 0 and info.num_pending == 0

    async def acked() -> float:
        if backend != "nats":
            return time.perf_counter()
        return await until(all_acked, f"{implementation}: acks of all {n} messages")

    COUNTER.reset(n)
    try:
        start, handled, last_ack = await consume(url, n, subject, group, acked)
    finally:
        await client.close()
    assert COUNTER.count >= n, f"{implementation} handled {COUNTER.count} of {n}"
    return Row(backend, "consume", implementation, n, handled - start, ack=last_ack - start)


async def _finished(done: asyncio.Event) -> float:
    """Wait for `done`; the perf_counter() then."""
    try:
        await asyncio.wait_for(done.wait(), 120)
    except asyncio.TimeoutError:
        raise AssertionError("not every event was handled within 120s") from None
    return time.perf_counter()


async def _publish_all(url: str, n: int, subject: str) -> float:
    """Publish `n` events on core NATS; return when the first was sent."""
    client = await nats.connect(url)
    start = time.perf_counter()
    for i in range(n):
        await client.publish(subject, encoded(i))
    await client.flush()
    await client.close()
    return start


async def _consume_raw_jetstream(
    url: str, n: int, subject: str, group: str, acked: Acked
) -> Timing:
    client = await nats.connect(url)
    try:
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=1000)
        subscription = await client.jetstream().pull_subscribe(
            subject, durable=group, stream=STREAM, config=config
        )
        start = time.perf_counter()
        while COUNTER.count < n:
            for message in await subscription.fetch(BATCH, timeout=1.0):
                data = json.loads(message.data)
                await handler(Payload.model_validate(data["body"]), counter_dependency())
                await message.ack()
        return start, time.perf_counter(), await acked()
    finally:
        await client.close()


async def _consume_raw_core(url: str, n: int, subject: str, group: str, acked: Acked) -> Timing:
    client = await nats.connect(url)
    subscription = await client.subscribe(subject, queue=group)
    await client.flush()
    try:
        publishing = asyncio.create_task(_publish_all(url, n, subject))
        while COUNTER.count < n:
            message = await subscription.next_msg(timeout=None)
            data = json.loads(message.data)
            await handler(Payload.model_validate(data["body"]), counter_dependency())
        handled = time.perf_counter()
        return await publishing, handled, await acked()
    finally:
        await client.close()


def _consume_dispytch(backend: str) -> Consume:
    async def consume(url: str, n: int, subject: str, group: str, acked: Acked) -> Timing:
        listener = EventListener.from_backend(backend, group=group, url=url)
        done = count_until(listener, subject)
        task = asyncio.create_task(listener.listen())
        await listener.wait_ready()
        if backend == "nats":
            start = time.perf_counter()
        else:
            start = await _publish_all(url, n, subject)
        handled = await _finished(done)
        last_ack = await acked()
        await listener.stop()
        await task
        return start, handled, last_ack

    return consume


async def _consume_faststream_jetstream(
    url: str, n: int, subject: str, group: str, acked: Acked
) -> Timing:
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(
        subject,
        stream=JStream(STREAM, declare=False),
        durable=group,
        pull_sub=PullSub(batch_size=BATCH, timeout=1.0),
        ack_policy=AckPolicy.ACK,
    )
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    await broker.start()
    start = time.perf_counter()
    handled = await _finished(COUNTER.reached)
    last_ack = await acked()
    await broker.stop()
    return start, handled, last_ack


async def _consume_faststream_core(
    url: str, n: int, subject: str, group: str, acked: Acked
) -> Timing:
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(subject, queue=group)
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    await broker.start()
    start = await _publish_all(url, n, subject)
    handled = await _finished(COUNTER.reached)
    last_ack = await acked()
    await broker.stop()
    return start, handled, last_ack
