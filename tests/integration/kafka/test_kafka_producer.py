"""The Kafka producer against a real broker: record fields, client ownership, errors."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from kafka_helpers import Numbered, fresh
from pydantic import BaseModel

from brokers import KafkaServer
from dispytch import EventBase, EventEmitter, OutgoingMessage, ProducerTimeout
from dispytch_kafka import KafkaEventConfig, KafkaProducer, KafkaPublishError, KafkaSettings

pytestmark = pytest.mark.kafka

SOME_TIME = 1_600_000_000_000


async def read(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    """The first `count` records of `topic`, read without a group."""
    client = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await client.start()
    records: list[ConsumerRecord] = []

    async def fill() -> None:
        while len(records) < count:
            for batch in (await client.getmany(timeout_ms=500)).values():
                records.extend(batch)

    try:
        await asyncio.wait_for(fill(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{len(records)} of {count} records within {timeout}s") from None
    finally:
        await client.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def seq_of(record: Any) -> int:
    """The `seq` of the `Numbered` event a record carries."""
    seq: int = json.loads(record.value)["body"]["seq"]
    return seq


async def test_records_carry_key_partition_headers_and_timestamp(kafka_server: KafkaServer) -> None:
    topic = fresh("fields")
    config = KafkaEventConfig(
        partition_key="k1",
        partition=2,
        timestamp_ms=1_600_000_000_000,
        headers={"a": "1", "b": b"2"},
    )
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=kafka_server.bootstrap))
    async with EventEmitter(producer) as emitter:
        await producer.publish(OutgoingMessage(topic, b"raw", config, {"b": "3", "c": "4"}))
        await emitter.emit(Numbered(route=topic, seq=1, __backend_config__=config))

    first, second = await read(kafka_server.bootstrap, topic, 2)
    assert (first.value, first.key, first.partition, first.timestamp) == (
        b"raw",
        b"k1",
        2,
        SOME_TIME,
    )
    assert list(first.headers) == [("a", b"1"), ("b", b"3"), ("c", b"4")], "message headers win"
    assert b'"seq":1' in second.value.replace(b" ", b"")


async def test_partition_key_template_is_formatted_from_the_event(
    kafka_server: KafkaServer,
) -> None:
    class Order(Numbered):
        customer: str
        __backend_config__ = KafkaEventConfig(partition_key="customer-{customer}")

    topic, customers = fresh("template"), ["acme", "globex", "initech"]
    async with EventEmitter.from_url(kafka_server.url) as emitter:
        await asyncio.gather(
            *(emitter.emit(Order(route=topic, seq=i, customer=customers[i % 3])) for i in range(30))
        )
    records = await read(kafka_server.bootstrap, topic, 30)
    keys = {r.key for r in records}
    assert keys == {f"customer-{c}".encode() for c in customers}
    for key in keys:
        assert len({r.partition for r in records if r.key == key}) == 1, "one key, one partition"


async def test_wrapping_a_started_aiokafka_producer_leaves_it_running(
    kafka_server: KafkaServer,
) -> None:
    topic = fresh("wrapped")
    client = AIOKafkaProducer(bootstrap_servers=kafka_server.bootstrap)
    await client.start()
    try:
        async with EventEmitter(KafkaProducer(client)) as emitter:
            await emitter.emit(Numbered(route=topic, seq=1))
        await client.send_and_wait(topic, b"still usable")
    finally:
        await client.stop()
    assert b"still usable" in {r.value for r in await read(kafka_server.bootstrap, topic, 2)}


async def test_an_unstarted_aiokafka_producer_is_started_and_stopped(
    kafka_server: KafkaServer,
) -> None:
    topic = fresh("unstarted")
    client = AIOKafkaProducer(bootstrap_servers=kafka_server.bootstrap)
    async with EventEmitter(KafkaProducer(client)) as emitter:
        await emitter.emit(Numbered(route=topic, seq=1))
    assert client._closed, "the producer that started it stopped it"
    assert len(await read(kafka_server.bootstrap, topic, 1)) == 1


async def test_a_broker_that_stops_answering_raises_producer_timeout() -> None:
    with KafkaServer() as broker:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap, request_timeout_ms=1000)
        producer = KafkaProducer.from_settings(settings)
        await producer.start()
        topic = fresh("timeout")
        try:
            await producer.send(topic, b"before")
            broker.kill()
            with pytest.raises(ProducerTimeout, match="did not confirm"):
                await producer.send(topic, b"after")
            with pytest.raises(KafkaPublishError, match="unknown to the broker"):
                await producer.send(fresh("never-seen"), b"needs metadata")
        finally:
            await producer.stop()


async def test_broker_and_config_errors_are_clear(kafka_server: KafkaServer) -> None:
    topic = fresh("errors")
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=kafka_server.bootstrap))
    async with EventEmitter(producer):
        await producer.send(topic, b"creates the topic")
        with pytest.raises(KafkaPublishError, match="has no partition 9"):
            await producer.send(topic, b"x", KafkaEventConfig(partition=9))
        with pytest.raises(KafkaPublishError, match="MessageSizeTooLarge"):
            await producer.send(topic, b"x" * 2_000_000)

        class Other(BaseModel):
            priority: int = 1

        with pytest.raises(TypeError, match=r"takes a KafkaEventConfig.*got Other"):
            await producer.send(topic, b"x", Other())


async def test_emit_many_delivers_a_burst_complete_and_in_order(kafka_server: KafkaServer) -> None:
    topic, one_key = fresh("many"), KafkaEventConfig(partition_key="one partition")
    events = [Numbered(route=topic, seq=seq, __backend_config__=one_key) for seq in range(500)]

    async with EventEmitter.from_url(kafka_server.url) as emitter:
        await emitter.emit_many(events)

    records = await read(kafka_server.bootstrap, topic, 500)
    assert len({r.partition for r in records}) == 1
    assert [seq_of(r) for r in records] == list(range(500)), "in emit order within the partition"


async def test_an_emitter_restarts_a_producer_a_listener_stopped(kafka_server: KafkaServer) -> None:
    topic = fresh("restarted")
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=kafka_server.bootstrap))
    async with EventEmitter(producer) as emitter:
        await producer.stop()  # a listener sharing the producer stops it when it stops
        await emitter.emit(Numbered(route=topic, seq=1))
        await emitter.emit_many([Numbered(route=topic, seq=2)])

    assert sorted(map(seq_of, await read(kafka_server.bootstrap, topic, 2))) == [1, 2]


async def test_enqueue_before_start_says_to_start_the_producer(kafka_server: KafkaServer) -> None:
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=kafka_server.bootstrap))
    message = OutgoingMessage(fresh("unstarted"), b"x")

    with pytest.raises(RuntimeError, match=r"not started: await producer\.start\(\)"):
        producer.enqueue(message)
    await producer.start()
    try:
        await producer.enqueue(message)
    finally:
        await producer.stop()
    with pytest.raises(RuntimeError, match="not started"):
        producer.enqueue(message)


async def test_a_message_cancelled_before_it_was_appended_is_not_sent(
    kafka_server: KafkaServer,
) -> None:
    topic, one_key = fresh("cancelled"), KafkaEventConfig(partition_key="k")
    producer = KafkaProducer.from_settings(KafkaSettings(bootstrap_servers=kafka_server.bootstrap))
    await producer.start()
    try:

        async def emit(value: bytes) -> None:
            await producer.enqueue(OutgoingMessage(topic, value, one_key))

        first, second, third = (asyncio.create_task(emit(v)) for v in (b"one", b"two", b"three"))
        await asyncio.sleep(0)  # all three are queued; the appender has not run yet
        second.cancel()
        await asyncio.gather(first, third)
    finally:
        await producer.stop()

    assert [r.value for r in await read(kafka_server.bootstrap, topic, 2)] == [b"one", b"three"]


async def test_emit_many_raises_the_first_error_once_every_event_settled(
    kafka_server: KafkaServer, caplog: pytest.LogCaptureFixture
) -> None:
    topic = fresh("many-errors")
    events = [
        Numbered(route=topic, seq=1),
        Numbered(route=topic, seq=2, __backend_config__=KafkaEventConfig(partition=9)),
        Numbered(route=topic, seq=3),
        Numbered(route=topic, seq=4, __backend_config__=KafkaEventConfig(partition=8)),
        Numbered(route=topic, seq=5),
    ]
    async with EventEmitter.from_url(kafka_server.url) as emitter:
        await emitter.emit(Numbered(route=topic, seq=0))  # creates the topic
        with (
            caplog.at_level(logging.ERROR, logger="dispytch.emitter"),
            pytest.raises(KafkaPublishError, match="has no partition 9"),
        ):
            await emitter.emit_many(events)

    records = await read(kafka_server.bootstrap, topic, 4)
    assert sorted(map(seq_of, records)) == [0, 1, 3, 5], "the others were delivered"
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.getMessage() == f"emit of numbered to {topic} failed"
    assert "has no partition 8" in str(logged.exc_info[1])  # type: ignore[index]


async def test_emit_many_gives_timeouts_to_the_on_timeout_callback() -> None:
    with KafkaServer() as broker:
        emitter = EventEmitter.from_backend(
            "kafka", bootstrap_servers=broker.bootstrap, request_timeout_ms=1000
        )
        timed_out: list[EventBase] = []
        emitter.on_timeout(timed_out.append)
        topic = fresh("many-timeout")
        async with emitter:
            await emitter.emit(Numbered(route=topic, seq=0))
            broker.kill()
            events = [Numbered(route=topic, seq=seq) for seq in (1, 2, 3)]
            await emitter.emit_many(events)

    assert timed_out == events


async def test_a_missing_template_field_is_named() -> None:
    config = KafkaEventConfig(partition_key="{tenant}")
    with pytest.raises(ValueError, match=r"'tenant'.*fields are \['seq'\]"):
        config.render({"seq": 1})
