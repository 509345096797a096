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
- latency, both modes: a separate process publishes at a fixed rate with nats-py
  (latency.py; JetStream `publish_async`, core `publish`), and each implementation, on a
  fresh subject and group, handles the events as above; the three read alike (see
  LATENCY_CONFIG).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from functools import partial
from typing import Any

import nats
from faststream import Depends
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api

import latency as paced
from brokers import NatsServer
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
    encoded,
    event_envelope,
    fresh,
    handler,
    in_background,
    listening,
    until,
)

JetStreamPull = JetStreamContext.PullSubscription

BATCH = 100
"""Messages per pull request, in every JetStream implementation (Dispytch's default)."""
BLOCK = 1.0
"""Seconds a pull request waits for messages (Dispytch's default `block`)."""
ACK_WAIT = 30.0
"""Seconds JetStream waits for an ack (Dispytch's default `ack_wait`)."""
MAX_ACK_PENDING = 1000
"""Messages a consumer may hold unacked (Dispytch's default `max_ack_pending`)."""
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
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)

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
        subscription = await _raw_pull_subscription(client, subject, group)
        start = time.perf_counter()
        await _raw_jetstream_loop(subscription, n)
        return start, time.perf_counter(), await acked()
    finally:
        await client.close()


async def _consume_raw_core(url: str, n: int, subject: str, group: str, acked: Acked) -> Timing:
    client = await nats.connect(url)
    subscription = await client.subscribe(subject, queue=group)
    await client.flush()
    try:
        publishing = asyncio.create_task(_publish_all(url, n, subject))
        await _raw_core_loop(subscription, n)
        handled = time.perf_counter()
        return await publishing, handled, await acked()
    finally:
        await client.close()


def _consume_dispytch(backend: str) -> Consume:
    async def consume(url: str, n: int, subject: str, group: str, acked: Acked) -> Timing:
        async with _dispytch_running(backend, url, subject, group):
            if backend == "nats":
                start = time.perf_counter()
            else:
                start = await _publish_all(url, n, subject)
            handled = await _finished(COUNTER.reached)
            last_ack = await acked()
        return start, handled, last_ack

    return consume


async def _consume_faststream_jetstream(
    url: str, n: int, subject: str, group: str, acked: Acked
) -> Timing:
    async with _faststream_jetstream_running(url, subject, group):
        start = time.perf_counter()
        handled = await _finished(COUNTER.reached)
        last_ack = await acked()
    return start, handled, last_ack


async def _consume_faststream_core(
    url: str, n: int, subject: str, group: str, acked: Acked
) -> Timing:
    async with _faststream_core_running(url, subject, group):
        start = await _publish_all(url, n, subject)
        handled = await _finished(COUNTER.reached)
        last_ack = await acked()
    return start, handled, last_ack


# -- the consumers, shared by the consume and latency scenarios -----------------------------------


def _consumer_config() -> api.ConsumerConfig:
    """The JetStream consumer every implementation reads with, as Dispytch's defaults
    configure its own: explicit acks, `ACK_WAIT`, `MAX_ACK_PENDING`."""
    return api.ConsumerConfig(
        ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT, max_ack_pending=MAX_ACK_PENDING
    )


async def _raw_pull_subscription(client: Client, subject: str, group: str) -> JetStreamPull:
    """The hand-written loop's durable pull consumer `group` on `subject`, created."""
    return await client.jetstream().pull_subscribe(
        subject, durable=group, stream=STREAM, config=_consumer_config()
    )


async def _raw_jetstream_loop(subscription: JetStreamPull, n: int) -> None:
    """Pull batches of BATCH, each request waiting up to BLOCK seconds; handle and ack
    every message, until `n` were counted."""
    while COUNTER.count < n:
        try:
            messages = await subscription.fetch(BATCH, timeout=BLOCK)
        except NatsTimeout:  # nothing arrived within BLOCK: ask again
            continue
        for message in messages:
            await _handle_raw(message)
            await message.ack()


async def _raw_core_loop(subscription: NatsSubscription, n: int) -> None:
    """Handle the messages of a core subscription until `n` were counted."""
    while COUNTER.count < n:
        await _handle_raw(await subscription.next_msg(timeout=None))


async def _handle_raw(message: Msg) -> None:
    """What the hand-written loops do with a message: decode the envelope, validate the
    body, call the handler with its dependency."""
    data = json.loads(message.data)
    await handler(Payload.model_validate(data["body"]), counter_dependency())


@asynccontextmanager
async def _dispytch_running(
    backend: str, url: str, subject: str, group: str
) -> AsyncIterator[None]:
    """A Dispytch listener of `group` counting the events of `subject`, ready for the block."""
    listener = EventListener.from_backend(backend, group=group, url=url)
    async with listening(listener, subject):
        yield


@asynccontextmanager
async def _faststream_jetstream_running(url: str, subject: str, group: str) -> AsyncIterator[None]:
    """FastStream reading `subject` as the durable pull consumer `group`, started for the
    block: fetches of BATCH waiting up to BLOCK seconds, each message acked once handled."""
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(
        subject,
        stream=JStream(STREAM, declare=False),
        durable=group,
        config=_consumer_config(),
        pull_sub=PullSub(batch_size=BATCH, timeout=BLOCK),
        ack_policy=AckPolicy.ACK,
    )
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    async with _started(broker):
        yield


@asynccontextmanager
async def _faststream_core_running(url: str, subject: str, group: str) -> AsyncIterator[None]:
    """FastStream subscribed to `subject` in the queue group `group`, started for the block."""
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(subject, queue=group)
    async def handle(envelope: Envelope, counter: Counter = Depends(counter_dependency)) -> None:  # noqa: B008
        counter.hit(envelope.body)

    async with _started(broker):
        yield


@asynccontextmanager
async def _started(broker: NatsBroker) -> AsyncIterator[None]:
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


# -- latency -----------------------------------------------------------------------------------

LATENCY_CONFIG = {
    "nats": (
        f"durable pull consumer, batch {BATCH}, expires {BLOCK:g} s, ack_wait {ACK_WAIT:g} s, "
        f"max_ack_pending {MAX_ACK_PENDING}, each message acked; sender publish_async; "
        f"the fetch loop returns a batch once full"
    ),
    "nats-core": "queue-group subscription; sender core publish",
}
"""The configuration every implementation of a mode shares, stated in its rows."""

Running = Callable[[str, str, str], AbstractAsyncContextManager[None]]
"""A consumer of `(url, subject, group)` running for the block."""


async def latency(rate: int, seconds: float, rounds: int) -> list[LatencyRow]:
    """Both modes, the implementations in turn in every round, each on a fresh subject
    and group; the paced emitter publishes with nats-py (latency.py)."""
    server = NatsServer()
    await asyncio.to_thread(server.start)
    url = server.url
    modes: dict[str, dict[str, Running]] = {
        "nats": {
            "raw nats-py pull, handled as delivered": _raw_pull_running,
            "raw nats-py fetch loop": _raw_jetstream_running,
            "dispytch": partial(_dispytch_running, "nats"),
            "faststream 0.7 (ack_policy=ACK)": _faststream_jetstream_running,
        },
        "nats-core": {
            "raw nats-py": _raw_core_running,
            "dispytch": partial(_dispytch_running, "nats-core"),
            "faststream 0.7": _faststream_core_running,
        },
    }
    rows = []
    try:
        client = await nats.connect(url)
        await client.jetstream().add_stream(name=STREAM, subjects=[STREAM, f"{STREAM}.>"])
        await client.close()
        for backend, implementations in modes.items():
            results: dict[str, list[dict[str, float]]] = {name: [] for name in implementations}
            for _ in range(rounds):
                for name, running in implementations.items():
                    subject = _subject(backend, "latency")
                    group = fresh("group").replace(".", "-")
                    results[name].append(
                        await paced.measure(
                            backend,
                            url,
                            subject,
                            rate,
                            seconds,
                            partial(running, url, subject, group),
                        )
                    )
            config = LATENCY_CONFIG[backend]
            rows += [LatencyRow(backend, rate, name, r, config) for name, r in results.items()]
    finally:
        await asyncio.to_thread(server.close)
    return rows


@asynccontextmanager
async def _raw_jetstream_running(url: str, subject: str, group: str) -> AsyncIterator[None]:
    client = await nats.connect(url)
    try:
        subscription = await _raw_pull_subscription(client, subject, group)
        async with in_background(_raw_jetstream_loop(subscription, 2**62)):
            yield
    finally:
        await client.close()


@asynccontextmanager
async def _raw_core_running(url: str, subject: str, group: str) -> AsyncIterator[None]:
    client = await nats.connect(url)
    try:
        subscription = await client.subscribe(subject, queue=group)
        await client.flush()
        async with in_background(_raw_core_loop(subscription, 2**62)):
            yield
    finally:
        await client.close()


@asynccontextmanager
async def _raw_pull_running(url: str, subject: str, group: str) -> AsyncIterator[None]:
    client = await nats.connect(url)
    try:
        config = _consumer_config()
        config.durable_name, config.filter_subject = group, subject
        await client.jetstream().add_consumer(STREAM, config)
        async with in_background(_raw_pull_loop(client, group)):
            yield
    finally:
        await client.close()


async def _raw_pull_loop(client: Client, group: str) -> None:
    """The pull consumer as Dispytch drives it, by hand: one pull request at a time for
    BATCH messages, open up to BLOCK seconds, each message handled and acked as it is
    delivered (by the inbox's callback); the next request once this one is done (filled,
    expired, or ended by a status). nats-py's `fetch` instead returns only once its batch
    is full or expired."""
    done = asyncio.Event()
    left = BATCH

    async def receive(message: Msg) -> None:
        nonlocal left
        if message.headers and message.headers.get(api.Header.STATUS):
            done.set()  # 408 expired, 409 a limit reached ...: ask again
            return
        await _handle_raw(message)
        await message.ack()
        left -= 1
        if left == 0:
            done.set()

    inbox = client.new_inbox()
    await client.subscribe(inbox, cb=receive)
    request = json.dumps({"batch": BATCH, "expires": int(BLOCK * 1e9)}).encode()
    next_messages = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{group}"
    while True:
        left = BATCH
        done.clear()
        await client.publish(next_messages, request, reply=inbox)
        with suppress(asyncio.TimeoutError):  # the request or its status was lost: ask again
            await asyncio.wait_for(done.wait(), BLOCK + 1)
