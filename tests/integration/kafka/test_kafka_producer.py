"""The Kafka producer against a real broker: record fields, client ownership, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from kafka_helpers import Numbered, fresh
from pydantic import BaseModel

from brokers import KafkaServer
from dispytch import EventEmitter, OutgoingMessage, ProducerTimeout
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


async def test_a_missing_template_field_is_named() -> None:
    config = KafkaEventConfig(partition_key="{tenant}")
    with pytest.raises(ValueError, match=r"'tenant'.*fields are \['seq'\]"):
        config.render({"seq": 1})
