"""SQS: Dispytch next to a hand-written aiobotocore loop, on moto's server (SQS and SNS).

The server (moto; tools/brokers.py) is started here; both implementations use it in the
same run and do the same work per event. moto, a Python emulator whose SQS scans a queue on
every call, sets the pace: the rows compare the two clients on it and say nothing about AWS.
So that a run ends in reasonable time, every scenario handles at most `LIMIT` events.

- emit: build the JSON envelope and publish it to the SNS topic, which fans it out to one
  subscribed group queue; all events at once. The hand-written loop sends PublishBatch
  requests of ten, all at once (`gather`); Dispytch gathers over `emit()` (its producer
  batches concurrent emits ten at a time) and, in its own row, hands them to `emit_many`.
- consume: the events are pre-loaded into a group's queue (through its SNS topic); read
  them: ReceiveMessage (ten per call, long polling), decode the envelope, validate `Payload`
  with pydantic, resolve one dependency, call a trivial handler, delete. The hand-written
  loop receives, handles and deletes each batch of ten (DeleteMessageBatch) in turn;
  Dispytch runs with its default settings (two receivers, deletes batched in the
  background), and in its own row with one receiver, as the hand-written loop. Timed from
  the moment the listener is ready until the last event was handled, and until the queue
  shows no message left (the time to the last ack).
- latency: see latency.py; the emitter publishes each due burst to the SNS topic in
  PublishBatch requests of ten, as Dispytch does. Only at `LATENCY_RATES`: moto's server
  handles a few hundred events a second, so at 2,000 a second every consumer would only
  show how far a backlog grows. The hand-written loop runs `RECEIVERS` receive-handle-
  delete loops at once, as Dispytch keeps `RECEIVERS` long polls going, both with the same
  `WaitTimeSeconds` and `MaxNumberOfMessages`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from aiobotocore.session import get_session

import latency as paced
from brokers import SQSServer
from dispytch import EventEmitter, EventListener
from dispytch_sqs import SQSSettings
from dispytch_sqs.naming import queue_name, topic_name
from dispytch_sqs.topology import group_queue
from harness import (
    COUNTER,
    LatencyRow,
    Payload,
    Row,
    bench_events,
    best_of,
    count_until,
    counter_dependency,
    encoded,
    fresh,
    handler,
    in_background,
    listening,
    until,
)

LIMIT = 2_000
"""Events per scenario at most: moto handles a few hundred requests a second."""
BATCH = 10
WAIT_TIME = 1
RECEIVERS = 2
"""Receive loops of the latency scenario, hand-written and Dispytch (its default)."""
LATENCY_RATES = (100,)
"""The offered rates (events/s) the latency scenario runs at unless `--rate` says: moto's
server, not SQS, sets the limit (run.py consults this instead of its own rates)."""


async def throughput(n: int) -> list[Row]:
    n = min(n, LIMIT)
    server = SQSServer()
    await asyncio.to_thread(server.start)
    try:
        settings = SQSSettings(**server.settings, wait_time=WAIT_TIME)
        one = settings.model_copy(update={"receivers": 1})
        return await best_of(
            [
                lambda: _emit(settings, n, "raw aiobotocore (PublishBatch, gather)", _emit_raw),
                lambda: _emit(settings, n, "dispytch", _emit_dispytch),
                lambda: _emit(settings, n, "dispytch emit_many", _emit_many_dispytch),
                lambda: _consume(settings, n, "raw aiobotocore", _consume_raw),
                lambda: _consume(settings, n, "dispytch", _consume_dispytch),
                lambda: _consume(one, n, "dispytch, receivers=1", _consume_dispytch),
            ]
        )
    finally:
        await asyncio.to_thread(server.close)


def _client(settings: SQSSettings, service: str) -> Any:
    return get_session().create_client(service, **settings.client_options())


def _entries(topic: str, first: int, last: int) -> list[dict[str, Any]]:
    """PublishBatch entries of events `first` to `last` (excluded), as Dispytch sends them."""
    attributes = {"dispytch.topic": {"DataType": "String", "StringValue": topic}}
    return [
        {"Id": str(i), "Message": encoded(i).decode(), "MessageAttributes": attributes}
        for i in range(first, last)
    ]


async def _publish_all(sns: Any, arn: str, topic: str, n: int, first: int = 0) -> None:
    """Publish events `first` to `n` (excluded) in PublishBatch requests of ten, all at once."""
    await asyncio.gather(
        *(
            sns.publish_batch(
                TopicArn=arn, PublishBatchRequestEntries=_entries(topic, i, min(i + BATCH, n))
            )
            for i in range(first, n, BATCH)
        )
    )


async def _subscribed(settings: SQSSettings, topic: str) -> str:
    """A fresh group's queue subscribed to `topic`; its URL."""
    async with _client(settings, "sqs") as sqs, _client(settings, "sns") as sns:
        queue = await group_queue(settings, sqs, sns, fresh("group"), [topic])
    return queue.url


async def _left(settings: SQSSettings, url: str) -> int:
    """Messages in the queue at `url`, visible or not."""
    async with _client(settings, "sqs") as sqs:
        reply = await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    return sum(int(value) for value in reply["Attributes"].values())


# -- emit --------------------------------------------------------------------------------------

Emit = Callable[[SQSSettings, int, str], Awaitable[float]]


async def _emit(settings: SQSSettings, n: int, implementation: str, emit: Emit) -> Row:
    topic = fresh("emit")
    url = await _subscribed(settings, topic)
    seconds = await emit(settings, n, topic)
    left = await _left(settings, url)
    assert left == n, f"{implementation}: {left} of {n} events reached the queue"
    return Row("sqs", "emit", implementation, n - 1, seconds)


# Each emit row sends its first event before timing (which creates the SNS topic) and times
# the other n - 1.


async def _emit_raw(settings: SQSSettings, n: int, topic: str) -> float:
    async with _client(settings, "sns") as sns:
        arn = (await sns.create_topic(Name=topic_name(topic)))["TopicArn"]
        await _publish_all(sns, arn, topic, 1)
        start = time.perf_counter()
        await _publish_all(sns, arn, topic, n, first=1)
        return time.perf_counter() - start


async def _emit_dispytch(settings: SQSSettings, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    async with EventEmitter.from_backend("sqs", **settings.model_dump()) as emitter:
        await emitter.emit(events[0])
        start = time.perf_counter()
        await asyncio.gather(*(emitter.emit(e) for e in events[1:]))
        return time.perf_counter() - start


async def _emit_many_dispytch(settings: SQSSettings, n: int, topic: str) -> float:
    events = bench_events(topic, n)
    async with EventEmitter.from_backend("sqs", **settings.model_dump()) as emitter:
        await emitter.emit(events[0])
        start = time.perf_counter()
        await emitter.emit_many(events[1:])
        return time.perf_counter() - start


# -- consume -----------------------------------------------------------------------------------

Consume = Callable[[SQSSettings, int, str, str], Awaitable[float]]


async def _consume(settings: SQSSettings, n: int, implementation: str, consume: Consume) -> Row:
    """Pre-load `n` events into a fresh group's queue, then time one implementation."""
    topic, group = fresh("consume"), fresh("group")
    async with _client(settings, "sqs") as sqs, _client(settings, "sns") as sns:
        queue = await group_queue(settings, sqs, sns, group, [topic])
        arn = (await sns.create_topic(Name=topic_name(topic)))["TopicArn"]
        await _publish_all(sns, arn, topic, n)
    COUNTER.reset(n)
    seconds = await consume(settings, n, topic, group)
    assert COUNTER.count >= n, f"{implementation} handled {COUNTER.count} of {n}"
    started = time.perf_counter() - seconds

    async def empty() -> bool:
        return await _left(settings, queue.url) == 0

    acked = await until(empty, f"{implementation}: deletion of all {n} messages")
    return Row("sqs", "consume", implementation, n, seconds, ack=acked - started)


async def _consume_raw(settings: SQSSettings, n: int, topic: str, group: str) -> float:
    async with _client(settings, "sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName=queue_name(group)))["QueueUrl"]
        start = time.perf_counter()
        await _raw_loop(sqs, url, n)
        return time.perf_counter() - start


async def _raw_loop(sqs: Any, url: str, n: int, wait_time: int = WAIT_TIME) -> None:
    """The hand-written loop, until `n` events were counted: ReceiveMessage (ten per call,
    long polling), handle each message, DeleteMessageBatch what was received."""
    while COUNTER.count < n:
        reply = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=wait_time
        )
        received = reply.get("Messages", [])
        for message in received:
            data = json.loads(message["Body"])
            await handler(Payload.model_validate(data["body"]), counter_dependency())
        if received:
            await sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(received)
                ],
            )


async def _consume_dispytch(settings: SQSSettings, n: int, topic: str, group: str) -> float:
    listener = EventListener.from_backend("sqs", group=group, **settings.model_dump())
    done = count_until(listener, topic)
    task = asyncio.create_task(listener.listen())
    await listener.wait_ready()
    start = time.perf_counter()
    await asyncio.wait_for(done.wait(), 300)
    seconds = time.perf_counter() - start
    await listener.stop()
    await task
    return seconds


# -- latency -----------------------------------------------------------------------------------

Running = Callable[[SQSSettings, str], AbstractAsyncContextManager[object]]


async def latency(rate: int, seconds: float, rounds: int) -> list[LatencyRow]:
    """The hand-written loop and Dispytch configured alike: `RECEIVERS` receivers, ten
    messages per ReceiveMessage, `WAIT_TIME` seconds of long polling."""
    server = SQSServer()
    await asyncio.to_thread(server.start)
    settings = SQSSettings(
        **server.settings, wait_time=WAIT_TIME, batch_size=BATCH, receivers=RECEIVERS
    )
    implementations: dict[str, Running] = {
        "raw aiobotocore": _raw_running,
        "dispytch": _dispytch_running,
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in implementations}
    try:
        for _ in range(rounds):
            for name, running in implementations.items():
                topic = fresh("latency")
                results[name].append(
                    await paced.measure(
                        "sqs", server.url, topic, rate, seconds, partial(running, settings, topic)
                    )
                )
    finally:
        await asyncio.to_thread(server.close)
    config = (
        f"{RECEIVERS} receivers, ReceiveMessage of {BATCH}, WaitTimeSeconds={WAIT_TIME}; "
        "moto, not AWS"
    )
    return [LatencyRow("sqs", rate, name, r, config) for name, r in results.items()]


@asynccontextmanager
async def _raw_running(settings: SQSSettings, topic: str) -> AsyncIterator[None]:
    url = await _subscribed(settings, topic)
    async with _client(settings, "sqs") as sqs, in_background(_raw_receivers(settings, sqs, url)):
        yield


async def _raw_receivers(settings: SQSSettings, sqs: Any, url: str) -> None:
    """`settings.receivers` hand-written loops on the queue at `url`, until cancelled."""
    await asyncio.gather(
        *(_raw_loop(sqs, url, 2**62, settings.wait_time) for _ in range(settings.receivers))
    )


@asynccontextmanager
async def _dispytch_running(settings: SQSSettings, topic: str) -> AsyncIterator[None]:
    listener = EventListener.from_backend("sqs", group=fresh("group"), **settings.model_dump())
    async with listening(listener, topic):
        yield
