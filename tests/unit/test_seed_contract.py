"""Point 1: classes written from the seed page plug into EventEmitter and EventListener."""

import inspect
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel
from seed_fakes import (
    AsyncAckConsumer,
    KeyConfig,
    NackingConsumer,
    SyncAckConsumer,
    Wire,
    WireProducer,
)
from support import WAIT

import dispytch
from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.emitter.producer import Producer, ProducerTimeout
from dispytch.listener.consumer import Consumer, Message
from dispytch.testing import Probe, running


class OrderPlaced(EventBase):
    __topic__ = "orders"
    __event_type__ = "order_placed"

    order_id: int


class Order(BaseModel):
    order_id: int


def test_seed_imports_are_the_public_classes() -> None:
    assert (dispytch.Producer, dispytch.ProducerTimeout) == (Producer, ProducerTimeout)
    assert (dispytch.Consumer, dispytch.Message) == (Consumer, Message)
    assert issubclass(ProducerTimeout, Exception)


def test_message_takes_topic_and_payload_only() -> None:
    msg = Message(topic="orders", payload=b"{}")

    assert (msg.topic, msg.payload) == ("orders", b"{}")
    assert (msg.key, msg.headers, msg.attempt) == (None, {}, 1)


def test_seed_classes_implement_exactly_the_abstract_methods() -> None:
    assert Producer.__abstractmethods__ == {"send"}
    assert Consumer.__abstractmethods__ == {"listen", "ack"}
    assert inspect.isasyncgenfunction(SyncAckConsumer.listen)


def test_a_producer_without_send_cannot_be_made() -> None:
    class Incomplete(Producer):
        pass

    with pytest.raises(TypeError, match="send"):
        Incomplete()  # type: ignore[abstract]


def test_a_consumer_without_ack_cannot_be_made() -> None:
    class Incomplete(Consumer):
        async def listen(self) -> AsyncIterator[Message]:
            yield Message(topic="t", payload=b"")

    with pytest.raises(TypeError, match="ack"):
        Incomplete()  # type: ignore[abstract]


@pytest.mark.parametrize("consumer_class", [SyncAckConsumer, AsyncAckConsumer])
async def test_seed_classes_work_end_to_end(
    wire: Wire, consumer_class: type[SyncAckConsumer | AsyncAckConsumer]
) -> None:
    consumer = consumer_class(wire)
    listener, probe = EventListener(consumer), Probe()

    @listener.handler(topic="orders", event="order_placed")
    async def record(event: Event[Order]) -> None:
        probe.add(event)

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(OrderPlaced(order_id=7))
        [event] = await probe.wait_for(1, WAIT)

    assert event.body == Order(order_id=7)
    assert (event.topic, event.type) == ("orders", "order_placed")
    assert [m.topic for m in consumer.acked] == ["orders"], "acked once, sync or async ack"


async def test_producer_gets_topic_payload_bytes_and_config(wire: Wire) -> None:
    config = KeyConfig(key="customer-1")

    await EventEmitter(WireProducer(wire)).emit(OrderPlaced(order_id=1, __backend_config__=config))

    [record] = wire.sent
    assert record.topic == "orders"
    assert isinstance(record.payload, bytes)
    assert b'"order_id": 1' in record.payload
    assert record.config is config


async def test_key_set_by_the_users_consumer_reaches_the_handler(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="orders", event="order_placed")
    async def record(event: Event[Order]) -> None:
        probe.add(event.key)

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(OrderPlaced(order_id=1, __backend_config__=KeyConfig(key="k-1")))
        assert await probe.wait_for(1, WAIT) == ["k-1"]


async def test_a_consumer_with_nack_gets_failures_when_nothing_dead_letters(wire: Wire) -> None:
    consumer = NackingConsumer(wire)
    listener = EventListener(consumer, redelivery_delay=0.5)
    probe = Probe()

    @listener.handler(topic="orders", event="order_placed")
    async def fail(event: Event[Order]) -> None:
        probe.add(event)
        raise RuntimeError("database down")

    async with running(listener), EventEmitter(WireProducer(wire)) as emitter:
        await emitter.emit(OrderPlaced(order_id=3))
        await probe.wait_for(1, WAIT)

    assert [m.topic for m in consumer.nacked] == ["orders"]
    assert consumer.acked == []
