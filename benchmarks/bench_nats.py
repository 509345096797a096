"""NATS: Dispytch next to a hand-written nats-py loop and FastStream 0.7, on one server,
in both modes: backend `nats` (JetStream) and backend `nats-core` (core NATS).

The server (nats-server with JetStream; tools/brokers.py) is started here; every
implementation uses it in the same run and does the same work per event. JetStream events
go to the stream `bench` (subjects `bench` and `bench.>`), created up front as Dispytch
would create it.

- emit, JetStream: build the JSON envelope and publish it; `n` events published
  concurrently, each awaited until JetStream acknowledged it. The hand-written loop is a
  gather over `js.publish` (a request each) and, in a second row, nats-py's pipelined
  `publish_async`, which Dispytch's producer uses.
- emit, core: build the JSON envelope and publish it; `n` events, then one flush (a
  PING answered by the server), so the time covers the server having read them all.
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
import json
import time
from collections.abc import Awaitable, Callable

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
        return await best_of(
            [
                lambda: _emit(url, n, "nats", "raw nats-py", _emit_raw_jetstream),
                lambda: _emit(
                    url, n, "nats", "raw nats-py publish_async", _emit_raw_jetstream_async
                ),
                lambda: _emit(url, n, "nats", "dispytch", _emit_dispytch("nats")),
                lambda: _emit(url, n, "nats", "faststream 0.7", _emit_faststream_jetstream),
                lambda: _consume(url, n, "nats", "raw nats-py", _consume_raw_jetstream),
                lambda: _consume(url, n, "nats", "dispytch", _consume_dispytch("nats")),
                lambda: _consume(url, n, "nats", "faststream 0.7", _consume_faststream_jetstream),
                lambda: _emit(url, n, "nats-core", "raw nats-py", _emit_raw_core),
                lambda: _emit(url, n, "nats-core", "dispytch", _emit_dispytch("nats-core")),
                lambda: _emit(url, n, "nats-core", "faststream 0.7", _emit_faststream_core),
                lambda: _consume(url, n, "nats-core", "raw nats-py", _consume_raw_core),
                lambda: _consume(url, n, "nats-core", "dispytch", _consume_dispytch("nats-core")),
                lambda: _consume(url, n, "nats-core", "faststream 0.7", _consume_faststream_core),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[str, int, str], Awaitable[float]]


async def _emit(url: str, n: int, backend: str, implementation: str, emit: Emit) -> Row:
    return Row(backend, "emit", implementation, n, await emit(url, n, _subject(backend, "emit")))


def _subject(backend: str, kind: str) -> str:
    """A fresh subject: in the stream `bench` for JetStream, outside any stream for core
    NATS (a stream would store core messages too)."""
    return fresh(kind) if backend == "nats" else f"core.{fresh(kind)}"


async def _emit_raw_jetstream(url: str, n: int, subject: str) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(js.publish(subject, encoded(i), timeout=TIMEOUT) for i in range(n)))
        return time.perf_counter() - start
    finally:
        await client.close()


async def _emit_raw_jetstream_async(url: str, n: int, subject: str) -> float:
    """nats-py's pipelined publishing: all sent, then every acknowledgement awaited."""
    client = await nats.connect(url)
    js = client.jetstream()
    try:
        start = time.perf_counter()
        acks = [await js.publish_async(subject, encoded(i)) for i in range(n)]
        await asyncio.gather(*acks)
        return time.perf_counter() - start
    finally:
        await client.close()


async def _emit_raw_core(url: str, n: int, subject: str) -> float:
    client = await nats.connect(url)
    try:
        start = time.perf_counter()
        for i in range(n):
            await client.publish(subject, encoded(i))
        await client.flush()
        return time.perf_counter() - start
    finally:
        await client.close()


def _emit_dispytch(backend: str) -> Emit:
    async def emit(url: str, n: int, subject: str) -> float:
        events = bench_events(subject, n)
        async with EventEmitter.from_backend(backend, url=url) as emitter:
            start = time.perf_counter()
            await asyncio.gather(*(emitter.emit(e) for e in events))
            if backend == "nats-core":
                client: Client = emitter.producer.client  # type: ignore[attr-defined]
                await client.flush()
            return time.perf_counter() - start

    return emit


async def _emit_faststream_jetstream(url: str, n: int, subject: str) -> float:
    broker = NatsBroker(url, logger=None)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                broker.publish(envelope(i), subject, stream=STREAM, timeout=TIMEOUT)
                for i in range(n)
            )
        )
        return time.perf_counter() - start
    finally:
        await broker.stop()


async def _emit_faststream_core(url: str, n: int, subject: str) -> float:
    broker = NatsBroker(url, logger=None)
    await broker.connect()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(broker.publish(envelope(i), subject) for i in range(n)))
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
