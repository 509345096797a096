"""Point 11: the in-process `memory` backend, through its Producer and Consumer and through
emitters and listeners. tests/conformance/test_memory.py holds it to the shared suite; these
are the memory-specific facts beyond it."""

import asyncio
from collections.abc import AsyncIterator

from pydantic import BaseModel
from support import WAIT, fresh, let_run

from dispytch import Event, EventBase, EventEmitter, EventListener, Message, OutgoingMessage
from dispytch.backends.memory import (
    MemoryBroker,
    MemoryConsumer,
    MemoryEventConfig,
    MemoryProducer,
    get_broker,
)
from dispytch.routing import TopicPattern
from dispytch.testing import Probe, running


class OtherBackendConfig(BaseModel):
    partition: int


def consumer(broker: MemoryBroker, group: str, *patterns: str) -> MemoryConsumer:
    return MemoryConsumer(broker, group, [TopicPattern(p) for p in patterns])


async def publish(broker: MemoryBroker, topic: str, *payloads: bytes) -> None:
    producer = MemoryProducer(broker)
    for payload in payloads:
        await producer.send(topic, payload)


async def take(messages: AsyncIterator[Message], count: int) -> list[Message]:
    return [await asyncio.wait_for(anext(messages), WAIT) for _ in range(count)]


async def nothing_more(messages: AsyncIterator[Message]) -> bool:
    """True when no message arrives within a short, bounded wait."""
    try:
        await asyncio.wait_for(anext(messages), 0.05)
    except asyncio.TimeoutError:
        return True
    return False


async def test_every_group_gets_each_message_and_its_members_share_them() -> None:
    broker = MemoryBroker()
    first, second = consumer(broker, "billing", "orders"), consumer(broker, "billing", "orders")
    audit = consumer(broker, "audit", "orders")
    for member in (first, second, audit):
        await member.start()

    await publish(broker, "orders", b"1", b"2", b"3", b"4")
    shared = [*await take(first.listen(), 2), *await take(second.listen(), 2)]
    audited = await take(audit.listen(), 4)

    assert sorted(m.payload for m in shared) == [b"1", b"2", b"3", b"4"], "each once per group"
    assert [m.payload for m in audited] == [b"1", b"2", b"3", b"4"], "in publish order"


async def test_a_nacked_message_comes_back_after_its_delay() -> None:
    broker = MemoryBroker()
    member = consumer(broker, "g", "orders")
    await member.start()
    messages = member.listen()
    await publish(broker, "orders", b"once")

    [first] = await take(messages, 1)
    await member.nack(first, delay=0.01)
    [again] = await take(messages, 1)

    assert (again.payload, first.attempt, again.attempt) == (b"once", 1, 2)
    assert again.metadata["delivery_id"] == first.metadata["delivery_id"]


async def test_unacked_messages_return_to_the_group_in_order_on_stop() -> None:
    broker = MemoryBroker()
    leaving = consumer(broker, "g", "orders")
    await leaving.start()
    await publish(broker, "orders", b"1", b"2", b"3")

    _, two, _ = await take(leaving.listen(), 3)
    leaving.ack(two)
    await leaving.stop()
    joining = consumer(broker, "g", "orders")
    redelivered = joining.listen()

    assert [(m.payload, m.attempt) for m in await take(redelivered, 2)] == [(b"1", 2), (b"3", 2)]
    assert await nothing_more(redelivered), "the acked message is gone"


async def test_a_group_sees_only_what_is_published_after_it_joined() -> None:
    broker = MemoryBroker()
    await publish(broker, "orders", b"before")
    late = consumer(broker, "late", "orders")
    await late.start()
    await publish(broker, "orders", b"after")

    messages = late.listen()
    assert [m.payload for m in await take(messages, 1)] == [b"after"]
    assert await nothing_more(messages)


async def test_a_group_keeps_messages_while_none_of_its_consumers_runs() -> None:
    broker = MemoryBroker()
    gone = consumer(broker, "g", "orders")
    await gone.start()
    await gone.stop()

    await publish(broker, "orders", b"while away")

    assert [m.payload for m in await take(consumer(broker, "g", "orders").listen(), 1)] == [
        b"while away"
    ]


async def test_subscriptions_take_segments_and_wildcards() -> None:
    broker = MemoryBroker()
    member = consumer(broker, "g", "users.{user_id}.*")
    await member.start()

    for topic in ("users.1", "orders.1.created", "users.1.created.extra", "users.1.created"):
        await publish(broker, topic, topic.encode())

    messages = member.listen()
    assert [m.topic for m in await take(messages, 1)] == ["users.1.created"]
    assert await nothing_more(messages)


async def test_key_and_headers_travel_with_the_message() -> None:
    broker = MemoryBroker()
    member = consumer(broker, "g", "orders")
    await member.start()
    producer = MemoryProducer(broker)

    config = MemoryEventConfig(key="customer-7")
    await producer.publish(OutgoingMessage("orders", b"x", config, headers={"trace": "t-1"}))
    await producer.send("orders", b"y", config=OtherBackendConfig(partition=3))

    keyed, plain = await take(member.listen(), 2)
    assert (keyed.key, keyed.headers) == ("customer-7", {"trace": "t-1"})
    assert (plain.key, plain.headers) == (None, {}), "another backend's config carries no key"


def test_a_memory_url_names_the_broker() -> None:
    name = fresh("broker")

    named = EventEmitter.from_url(f"memory://{name}").producer
    default = EventEmitter.from_url("memory://").producer

    assert isinstance(named, MemoryProducer)
    assert isinstance(default, MemoryProducer)
    assert (named.broker, default.broker) == (get_broker(name), get_broker())


class Note(EventBase):
    __topic__ = "notes"
    __event_type__ = "note"

    text: str


class NoteBody(BaseModel):
    text: str


async def test_brokers_with_different_names_do_not_share_events() -> None:
    mine, other = f"memory://{fresh('broker')}", f"memory://{fresh('broker')}"
    listener, probe = EventListener.from_url(mine, group="g"), Probe()

    @listener.handler(topic="notes", event="note")
    async def record(event: Event[NoteBody]) -> None:
        probe.add(event.body.text)

    async with running(listener):
        async with EventEmitter.from_url(other) as elsewhere:
            await elsewhere.emit(Note(text="elsewhere"))
        async with EventEmitter.from_url(mine) as here:
            await here.emit(Note(text="here"))
        await probe.wait_for(1, WAIT)
        await let_run()

    assert probe.items == ["here"]


async def test_a_listener_stopped_mid_handler_leaves_the_message_for_its_group(
    memory_url: str,
) -> None:
    stuck, again = EventListener.from_url(memory_url, group="g"), Probe()
    started = Probe()

    @stuck.handler(topic="notes", event="note")
    async def never_finishes(event: Event[NoteBody]) -> None:
        started.add(event)
        await asyncio.Event().wait()

    async with EventEmitter.from_url(memory_url) as emitter, running(stuck, stop_timeout=0.1):
        await emitter.emit(Note(text="unfinished"))
        await started.wait_for(1, WAIT)

    fresh_listener = EventListener.from_url(memory_url, group="g")

    @fresh_listener.handler(topic="notes", event="note")
    async def record(event: Event[NoteBody]) -> None:
        again.add((event.body.text, event.attempt))

    async with running(fresh_listener):
        assert await again.wait_for(1, WAIT) == [("unfinished", 2)]
