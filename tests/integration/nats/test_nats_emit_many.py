"""`emit_many` on both NATS backends against a real nats-server: the producers `enqueue` a
burst, sent in order with no task per event; JetStream settles each event from its
acknowledgement (a stream created when none captures the topic, a timeout when none
comes), and `stop()` sends what is still queued."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats_helpers import Numbered, eventually, fresh

from brokers import NatsServer
from dispytch import EventEmitter, OutgoingMessage, ProducerTimeout
from dispytch.emitter.producer import SupportsEnqueue
from dispytch_nats import CoreProducer, JetStreamProducer, NatsJetStreamSettings, NatsSettings

pytestmark = pytest.mark.nats

BURST = 500


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


async def _stored_numbers(client: Client, stream: str, subject: str, count: int) -> list[int]:
    """The `number` of the first `count` events stored on `subject` in `stream`, in stream
    order; then check that no more are stored."""
    js = client.jetstream()
    pull = await js.pull_subscribe(subject, stream=stream)
    numbers: list[int] = []
    while len(numbers) < count:
        batch = await pull.fetch(count - len(numbers), timeout=10)
        numbers += [json.loads(m.data)["body"]["number"] for m in batch]
    info = await js.stream_info(stream, subjects_filter=subject)
    assert info.state.subjects == {subject: count}, "as many stored as expected"
    return numbers


class _TaskCount:
    """The most tasks seen at once while running, sampled on every turn of the loop."""

    def __init__(self) -> None:
        self.most = 0
        self._sampling: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _TaskCount:
        self._sampling = asyncio.create_task(self._sample())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._sampling is not None
        self._sampling.cancel()

    async def _sample(self) -> None:
        while True:
            self.most = max(self.most, len(asyncio.all_tasks()))
            await asyncio.sleep(0)


def test_both_producers_can_enqueue() -> None:
    assert isinstance(JetStreamProducer(NatsJetStreamSettings()), SupportsEnqueue)
    assert isinstance(CoreProducer(NatsSettings(mode="core")), SupportsEnqueue)


async def test_jetstream_emit_many_stores_a_burst_in_order_without_a_task_per_event(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    subject = fresh("burst")
    async with EventEmitter.from_backend("nats", **jetstream_settings) as emitter:
        await emitter.emit(Numbered(route=subject, number=-1))  # the stream exists
        tasks_before = len(asyncio.all_tasks())
        async with _TaskCount() as tasks:
            await emitter.emit_many(Numbered(route=subject, number=n) for n in range(BURST))
    assert tasks.most <= tasks_before + 5, f"{tasks.most} tasks for {BURST} events"
    assert await _stored_numbers(client, "nats-it", subject, BURST + 1) == [-1, *range(BURST)]


async def test_core_emit_many_publishes_a_burst_in_order_without_a_task_per_event(
    client: Client, core_settings: dict[str, Any]
) -> None:
    subject, received = fresh("core-burst"), []

    async def receive(msg: Msg) -> None:
        received.append(json.loads(msg.data)["body"]["number"])

    await client.subscribe(subject, cb=receive)
    await client.flush()
    async with EventEmitter.from_backend("nats-core", **core_settings) as emitter:
        tasks_before = len(asyncio.all_tasks())
        async with _TaskCount() as tasks:
            await emitter.emit_many(Numbered(route=subject, number=n) for n in range(BURST))
    assert tasks.most <= tasks_before + 5, f"{tasks.most} tasks for {BURST} events"
    await eventually(lambda: len(received) == BURST, f"all {BURST} events arrived")
    assert received == list(range(BURST))


async def test_jetstream_emit_many_creates_the_stream_none_captures(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    first = f"t{uuid.uuid4().hex[:10]}"
    subject = f"{first}.created"
    async with EventEmitter.from_backend("nats", **jetstream_settings) as emitter:
        await emitter.emit_many(Numbered(route=subject, number=n) for n in range(20))
    assert sorted(await _stored_numbers(client, first, subject, 20)) == list(range(20))


async def test_jetstream_emit_many_times_out_where_nothing_acknowledges(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    """A plain subscriber on a subject no stream captures takes the messages and never
    answers: no acknowledgement comes, so every event times out."""
    subject, timed_out = f"silent{uuid.uuid4().hex[:10]}", []

    async def ignore(msg: Msg) -> None:
        pass

    await client.subscribe(subject, cb=ignore)
    await client.flush()
    settings = {**jetstream_settings, "timeout": 0.3}
    async with EventEmitter.from_backend("nats", **settings) as emitter:
        emitter.on_timeout(timed_out.append)
        await emitter.emit_many(Numbered(route=subject, number=n) for n in range(3))
        assert [e.number for e in timed_out] == [0, 1, 2]  # type: ignore[attr-defined]
        emitter.raise_on_timeout = True
        with pytest.raises(ProducerTimeout, match=f"acknowledge a message to '{subject}'"):
            await emitter.emit_many([Numbered(route=subject, number=3)])


@pytest.mark.parametrize("backend", ["nats", "nats-core"])
async def test_enqueue_refuses_before_start_and_what_the_server_would_refuse(
    jetstream_settings: dict[str, Any], backend: str
) -> None:
    producer: JetStreamProducer | CoreProducer
    if backend == "nats":
        producer = JetStreamProducer(NatsJetStreamSettings(**jetstream_settings))
    else:
        producer = CoreProducer(NatsSettings(url=jetstream_settings["url"], mode="core"))
    with pytest.raises(RuntimeError, match="not started"):
        producer.enqueue(OutgoingMessage(fresh("early"), b"{}"))
    await producer.start()
    try:
        with pytest.raises(ValueError, match="not a NATS subject"):
            producer.enqueue(OutgoingMessage("nats-it.has space", b"{}"))
        with pytest.raises(TypeError, match="takes no __backend_config__"):
            producer.enqueue(OutgoingMessage(fresh("config"), b"{}", NatsSettings()))
    finally:
        await producer.stop()


async def test_jetstream_stop_sends_what_is_queued_and_waits_for_its_acks(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    subject = fresh("queued")
    producer = JetStreamProducer(NatsJetStreamSettings(**jetstream_settings))
    await producer.start()
    await producer.publish(OutgoingMessage(subject, b'{"body": {"number": -1}}'))
    stored = [
        producer.enqueue(OutgoingMessage(subject, json.dumps({"body": {"number": n}}).encode()))
        for n in range(50)
    ]
    await producer.stop()
    assert all(asyncio.ensure_future(s).done() for s in stored), "stop() settled every one"
    await asyncio.gather(*stored)
    assert await _stored_numbers(client, "nats-it", subject, 51) == [-1, *range(50)]
