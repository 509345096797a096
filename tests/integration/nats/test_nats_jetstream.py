"""The backend `nats` (JetStream) against a real nats-server: subjects and wildcards,
streams found or created, durable consumers per group, delivery counts, nak with delay,
max_deliver, in-progress acks for long handlers, hand-back on stop, and core mode."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import nats
import pytest
from nats.aio.client import Client
from nats_helpers import Numbered, NumberedBody, fresh

from brokers import NatsServer
from dispytch import Event, EventEmitter, EventListener, TopicSegment
from dispytch.backends import Subscription
from dispytch.routing import TopicPattern
from dispytch.testing import Probe, running
from dispytch_nats import (
    JetStreamConsumer,
    JetStreamProducer,
    NatsJetStreamSettings,
    PayloadTooLarge,
    StreamError,
    SubjectError,
    consumer_name,
)

pytestmark = pytest.mark.nats


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


def recording(listener: EventListener, topic: str, probe: Probe) -> None:
    @listener.handler(topic=topic, event=Numbered.__event_type__)
    async def record(event: Event[NumberedBody]) -> None:
        probe.add(event)


def token() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def test_topic_parameters_are_subject_wildcards(jetstream_settings: dict[str, Any]) -> None:
    shop, seen = fresh("shop"), Probe()
    listener = EventListener.from_backend("nats", group=token(), **jetstream_settings)

    @listener.handler(topic=f"{shop}.{{region}}.orders", event=Numbered.__event_type__)
    async def record(event: Event[NumberedBody], region: Annotated[str, TopicSegment()]) -> None:
        seen.add((region, event.body.number))

    async with (
        running(listener),
        EventEmitter.from_backend("nats", **jetstream_settings) as emitter,
    ):
        for topic, number in [
            (f"{shop}.eu.returns", 1),
            (f"{shop}.eu.x.orders", 2),
            (f"{shop}.us.orders", 3),
            (f"{shop}.eu.orders", 4),
        ]:
            await emitter.emit(Numbered(route=topic, number=number))
        await seen.wait_for(2, 15)
        await asyncio.sleep(0.3)
    assert seen.items == [("us", 3), ("eu", 4)]


async def test_overlapping_topics_share_one_filter_and_each_handler_runs_once(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    base, group = fresh("overlap"), token()
    every, created = Probe(), Probe()
    listener = EventListener.from_backend("nats", group=group, **jetstream_settings)
    recording(listener, f"{base}.*", every)
    recording(listener, f"{base}.created", created)
    async with (
        running(listener),
        EventEmitter.from_backend("nats", **jetstream_settings) as emitter,
    ):
        await emitter.emit(Numbered(route=f"{base}.created", number=1))
        await emitter.emit(Numbered(route=f"{base}.deleted", number=2))
        await every.wait_for(2, 15)
        await created.wait_for(1, 15)
        await asyncio.sleep(0.3)
    assert sorted(e.body.number for e in every.items) == [1, 2]
    assert [e.body.number for e in created.items] == [1]
    info = await client.jetstream().consumer_info("nats-it", group)
    assert info.config.filter_subject == f"{base}.*"


async def test_streams_are_created_per_first_token_and_reused(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    js = client.jetstream()
    first, taken = token(), token()
    await js.add_stream(name=f"OPERATOR_{taken}", subjects=[f"{taken}.>"])
    settings = {**jetstream_settings, "stream_name": "EVENTS_{root}", "max_age": 3600}
    async with EventEmitter.from_backend("nats", **settings) as emitter:
        await emitter.emit(Numbered(route=f"{first}.a", number=1))
        await emitter.emit(Numbered(route=f"{first}.b.c", number=2))
        await emitter.emit(Numbered(route=f"{taken}.a", number=3))
    created = await js.stream_info(f"EVENTS_{first}")
    assert created.config.subjects == [first, f"{first}.>"]
    assert created.config.max_age == 3600
    assert created.state.messages == 2
    existing = await js.stream_info(f"OPERATOR_{taken}")
    assert existing.state.messages == 1, "a stream that captures the topic already is used"
    names = [s.config.name for s in await js.streams_info()]
    assert f"EVENTS_{taken}" not in names


async def test_a_stream_that_cannot_be_created_is_named(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    first = token()
    await client.jetstream().add_stream(name=f"{first}", subjects=["somewhere.else"])
    async with EventEmitter.from_backend("nats", **jetstream_settings) as emitter:
        with pytest.raises(StreamError, match=f"stream '{first}' exists but captures"):
            await emitter.emit(Numbered(route=f"{first}.a", number=1))


async def test_group_is_a_durable_consumer_with_a_valid_name(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    topic, group, probe = fresh("durable"), f"billing.{token()}", Probe()
    listener = EventListener.from_backend("nats", group=group, **jetstream_settings)
    recording(listener, topic, probe)
    async with (
        running(listener),
        EventEmitter.from_backend("nats", **jetstream_settings) as emitter,
    ):
        await emitter.emit(Numbered(route=topic, number=1))
        await probe.wait_for(1, 15)
    info = await client.jetstream().consumer_info("nats-it", consumer_name(group))
    assert info.config.durable_name == consumer_name(group)
    assert info.config.ack_wait == 30.0
    assert info.config.filter_subject == topic
    assert info.num_ack_pending == 0, "the handled message was acked"


async def test_nack_redelivers_with_delivery_counts(jetstream_settings: dict[str, Any]) -> None:
    topic, attempts = fresh("nak"), Probe()
    listener = EventListener.from_backend(
        "nats",
        group=token(),
        listener_options={"dead_letter_topic": None, "redelivery_delay": 0.2},
        **jetstream_settings,
    )

    @listener.handler(topic=topic, event=Numbered.__event_type__)
    async def fails_twice(event: Event[NumberedBody]) -> None:
        attempts.add((event.attempt, event.metadata["num_delivered"]))
        if event.attempt < 3:
            raise RuntimeError("not yet")

    async with (
        running(listener),
        EventEmitter.from_backend("nats", **jetstream_settings) as emitter,
    ):
        await emitter.emit(Numbered(route=topic, number=1))
        await attempts.wait_for(3, 15)
    assert attempts.items == [(1, 1), (2, 2), (3, 3)]


async def test_max_deliver_stops_redelivery(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    topic, group, attempts = fresh("maxdeliver"), token(), Probe()
    gave_up: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def advisory(msg: Any) -> None:
        if not gave_up.done():
            gave_up.set_result(json.loads(msg.data))

    await client.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.nats-it.{group}", cb=advisory
    )
    settings = {**jetstream_settings, "max_deliver": 2}
    listener = EventListener.from_backend(
        "nats",
        group=group,
        listener_options={"dead_letter_topic": None, "redelivery_delay": 0.1},
        **settings,
    )

    @listener.handler(topic=topic, event=Numbered.__event_type__)
    async def always_fails(event: Event[NumberedBody]) -> None:
        attempts.add(event.attempt)
        raise RuntimeError("never")

    async with running(listener), EventEmitter.from_backend("nats", **settings) as emitter:
        await emitter.emit(Numbered(route=topic, number=1))
        notice = await asyncio.wait_for(gave_up, 15)
    assert attempts.items == [1, 2]
    assert notice["deliveries"] == 2


async def test_a_long_handler_keeps_its_message(
    client: Client, jetstream_settings: dict[str, Any]
) -> None:
    topic, group, probe = fresh("long"), token(), Probe()
    settings = {**jetstream_settings, "ack_wait": 2.0}
    listener = EventListener.from_backend("nats", group=group, **settings)

    @listener.handler(topic=topic, event=Numbered.__event_type__)
    async def slow(event: Event[NumberedBody]) -> None:
        probe.add(event.attempt)
        await asyncio.sleep(5.0)

    async with running(listener), EventEmitter.from_backend("nats", **settings) as emitter:
        await emitter.emit(Numbered(route=topic, number=1))
        await probe.wait_for(1, 15)
    info = await client.jetstream().consumer_info("nats-it", group)
    assert probe.items == [1], "in-progress acks kept JetStream from delivering it again"
    assert info.num_redelivered == 0
    assert info.num_ack_pending == 0


async def test_stop_hands_unfinished_messages_back_at_once(
    jetstream_settings: dict[str, Any],
) -> None:
    topic, group, started, again = fresh("handback"), token(), Probe(), Probe()
    settings = {**jetstream_settings, "ack_wait": 60.0}
    stuck = EventListener.from_backend("nats", group=group, **settings)

    @stuck.handler(topic=topic, event=Numbered.__event_type__)
    async def never_finishes(event: Event[NumberedBody]) -> None:
        started.add(event)
        await asyncio.Event().wait()

    async with EventEmitter.from_backend("nats", **settings) as emitter:
        async with running(stuck, stop_timeout=0.2):
            await emitter.emit(Numbered(route=topic, number=1))
            await started.wait_for(1, 15)
        fresh_listener = EventListener.from_backend("nats", group=group, **settings)
        recording(fresh_listener, topic, again)
        async with running(fresh_listener):
            [event] = await again.wait_for(1, 15)  # well before ack_wait's 60 s
    assert event.attempt == 2


async def test_producer_and_consumer_answer_pings(
    nats_server: NatsServer, jetstream_settings: dict[str, Any]
) -> None:
    settings = NatsJetStreamSettings(**jetstream_settings)
    producer = JetStreamProducer(settings)
    await producer.start()
    await producer.ping()
    await producer.stop()
    with pytest.raises(RuntimeError, match="not connected"):
        await producer.ping()
    consumer = JetStreamConsumer(settings, Subscription(token(), (TopicPattern(fresh("p")),)))
    await consumer.start()
    await consumer.ping()
    await consumer.stop()


async def test_core_mode_queue_groups_and_wildcards(core_settings: dict[str, Any]) -> None:
    base, group = fresh("core"), token()
    first, second, other = Probe(), Probe(), Probe()
    members = [EventListener.from_backend("nats-core", group=group, **core_settings) for _ in "ab"]
    recording(members[0], f"{base}.*", first)
    recording(members[1], f"{base}.*", second)
    outsider = EventListener.from_backend("nats-core", group=token(), **core_settings)
    recording(outsider, f"{base}.*", other)
    async with running(members[0]), running(members[1]), running(outsider):
        async with EventEmitter.from_backend("nats-core", **core_settings) as emitter:
            for number in range(100):
                await emitter.emit(Numbered(route=f"{base}.{number % 3}", number=number))
        await other.wait_for(100, 15)
        await asyncio.sleep(0.3)
    shared = [e.body.number for e in first.items + second.items]
    assert sorted(shared) == list(range(100)), "one group shares the messages"
    assert first.items, "the first member of the group got some"
    assert second.items, "the second member of the group got some"
    assert sorted(e.body.number for e in other.items) == list(range(100))


@pytest.mark.parametrize("backend", ["nats", "nats-core"])
async def test_bad_topics_and_oversized_events_are_refused_before_sending(
    jetstream_settings: dict[str, Any], backend: str
) -> None:
    settings = jetstream_settings if backend == "nats" else {"url": jetstream_settings["url"]}
    topic, server_limit = fresh("limits"), 1_048_576
    async with EventEmitter.from_backend(backend, **settings, max_payload=2000) as emitter:
        with pytest.raises(SubjectError, match="not a NATS subject"):
            await emitter.emit(Numbered(route="nats-it.has space", number=1))
        with pytest.raises(PayloadTooLarge, match="larger than max_payload, 2000 bytes"):
            await emitter.producer.send(topic, b"x" * 2001, None)
        await emitter.producer.send(topic, b"x" * 2000, None)
    beyond_the_server = {**settings, "max_payload": 2 * server_limit}
    async with EventEmitter.from_backend(backend, **beyond_the_server) as emitter:
        client = emitter.producer.client  # type: ignore[attr-defined]
        assert client.max_payload == server_limit
        with pytest.raises(PayloadTooLarge, match=f"than the {server_limit} bytes the NATS"):
            await emitter.producer.send(topic, b"x" * (server_limit + 1), None)
        assert client.is_connected, "nothing reached the server to make it close the connection"
