"""The RabbitMQ backend against a real node: topology, routing, publishing, consuming,
dead-lettering, metadata, and construction from aio-pika objects as in Dispytch 0.10."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import BaseModel
from rabbitmq_events import Body, Ping

from brokers import RabbitMQServer
from dispytch import DeadLetter, EmitContext, Event, EventEmitter, EventListener, ProducerTimeout
from dispytch.dead_letter import DEAD_LETTER_EVENT
from dispytch.testing import Probe, running
from dispytch_rabbitmq import (
    RabbitMQConnectionError,
    RabbitMQConsumer,
    RabbitMQEventConfig,
    RabbitMQProducer,
    TopologyError,
    UnroutableMessage,
)

pytestmark = pytest.mark.rabbitmq


def fresh(kind: str) -> str:
    return f"{kind}.{uuid.uuid4().hex[:10]}"


def listener_on(
    url: str, exchange: str, options: dict[str, Any] | None = None, **settings: Any
) -> EventListener:
    """A listener in a fresh group; `options` go to the listener, `settings` to the backend."""
    return EventListener.from_backend(
        "rabbitmq",
        group=fresh("group"),
        url=url,
        exchange=exchange,
        listener_options=options,
        **settings,
    )


async def drain(channel: AbstractChannel, queue: str, count: int) -> list[AbstractIncomingMessage]:
    """`count` messages got from `queue` (acked), waiting up to 10 s for them."""
    got: list[AbstractIncomingMessage] = []
    source = await channel.get_queue(queue, ensure=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(got) < count:
        message = await source.get(fail=False)
        if message is None:
            assert loop.time() < deadline, f"{queue!r} held {len(got)} of {count} messages"
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        got.append(message)
    return got


# -- topology and routing --------------------------------------------------------------------


async def test_params_and_wildcards_bind_as_amqp_wildcards(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    listener, probe = listener_on(rabbitmq_url, exchange_name), Probe()

    @listener.handler(topic="orders.{region}.*", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        probe.add((event.topic, event.body.seq))

    async with (
        running(listener),
        EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name) as emitter,
    ):
        await emitter.emit(Ping(route="orders.eu.created", seq=0))
        for seq, route in [(1, "orders.eu"), (2, "orders.us.paid.late")]:
            with pytest.raises(UnroutableMessage):  # one segment too few, one too many
                await emitter.emit(Ping(route=route, seq=seq))
        await emitter.emit(Ping(route="orders.us.paid", seq=3))
        got = await probe.wait_for(2, 10)
    assert got == [("orders.eu.created", 0), ("orders.us.paid", 3)]
    bound = await amqp.get_queue(f"{exchange_name}.{listener.group}", ensure=True)
    await bound.unbind(exchange_name, "orders.*.*")  # raises if that binding did not exist


async def test_topic_delimiter_maps_to_dots(rabbitmq_url: str, exchange_name: str) -> None:
    listener = listener_on(
        rabbitmq_url, exchange_name, {"topic_delimiter": "/"}, topic_delimiter="/"
    )
    probe = Probe()

    @listener.handler(topic="users/{user_id}/created", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        probe.add((event.topic, event.metadata["routing_key"]))

    async with (
        running(listener),
        EventEmitter.from_backend(
            "rabbitmq", url=rabbitmq_url, exchange=exchange_name, topic_delimiter="/"
        ) as emitter,
    ):
        await emitter.emit(Ping(route="users/42/created", seq=1))
        [got] = await probe.wait_for(1, 10)
    assert got == ("users/42/created", "users.42.created")


async def test_declaring_twice_is_idempotent(rabbitmq_url: str, exchange_name: str) -> None:
    group, probe = fresh("group"), Probe()
    listeners = [
        EventListener.from_backend(
            "rabbitmq", group=group, url=rabbitmq_url, exchange=exchange_name
        )
        for _ in range(2)
    ]
    for listener in listeners:

        @listener.handler(topic="idem.*", event=Ping.__event_type__)
        async def record(event: Event[Body]) -> None:
            probe.add(event.body.seq)

    async with (
        running(listeners[0]),
        running(listeners[1]),
        EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name) as emitter,
    ):
        await asyncio.gather(*(emitter.emit(Ping(route="idem.x", seq=i)) for i in range(20)))
        await probe.wait_for(20, 10)
    assert sorted(probe.items) == list(range(20))


async def test_declare_false_uses_existing_topology(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    group = fresh("group")
    exchange = await amqp.declare_exchange(exchange_name, "topic", durable=True)
    queue = await amqp.declare_queue(f"{exchange_name}.{group}", durable=True)
    await queue.bind(exchange, "made.by.hand")
    listener = EventListener.from_backend(
        "rabbitmq", group=group, url=rabbitmq_url, exchange=exchange_name, declare=False
    )
    probe = Probe()

    @listener.handler(topic="made.by.{who}", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        probe.add(event.body.seq)

    async with (
        running(listener),
        EventEmitter.from_backend(
            "rabbitmq", url=rabbitmq_url, exchange=exchange_name, declare=False
        ) as emitter,
    ):
        await emitter.emit(Ping(route="made.by.hand", seq=1))
        with pytest.raises(UnroutableMessage):  # declare=False binds nothing for made.by.{who}
            await emitter.emit(Ping(route="made.by.machine", seq=2))
        assert await probe.wait_for(1, 10) == [1]


async def test_declare_false_reports_a_missing_queue(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    await amqp.declare_exchange(exchange_name, "topic", durable=True)
    listener = EventListener.from_backend(
        "rabbitmq", group="nobody", url=rabbitmq_url, exchange=exchange_name, declare=False
    )

    @listener.handler(topic="missing", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None: ...

    with pytest.raises(TopologyError, match=rf"queue '{exchange_name}.nobody' does not exist"):
        async with running(listener):
            pass


async def test_mismatched_exchange_is_reported(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    await amqp.declare_exchange(exchange_name, "fanout", durable=True)
    with pytest.raises(TopologyError, match=rf"exchange '{exchange_name}' already exists"):
        async with EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name):
            pass


async def test_unreachable_broker_is_reported_without_the_password() -> None:
    emitter = EventEmitter.from_backend("rabbitmq", url="amqp://guest:s3cret@127.0.0.1:1/")
    with pytest.raises(RabbitMQConnectionError, match="cannot connect to RabbitMQ") as caught:
        await emitter.start()
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


# -- producer --------------------------------------------------------------------------------


async def test_messages_are_persistent_with_config_properties(
    rabbitmq_url: str, exchange_name: str
) -> None:
    listener, probe = listener_on(rabbitmq_url, exchange_name), Probe()

    @listener.handler(topic="props", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        probe.add(event)

    async def trace(ctx: EmitContext, call_next: Any) -> None:
        ctx.message.headers["traceparent"] = "00-abc-def-01"
        await call_next(ctx)

    config = RabbitMQEventConfig(
        priority=3, correlation_id="c-1", app_id="billing", headers={"tenant": "acme", "n": 5}
    )
    async with (
        running(listener),
        EventEmitter.from_backend(
            "rabbitmq",
            url=rabbitmq_url,
            exchange=exchange_name,
            emitter_options={"middleware": [trace]},
        ) as emitter,
    ):
        await emitter.emit(Ping(route="props", seq=1, __backend_config__=config))
        [event] = await probe.wait_for(1, 10)

    meta = event.metadata
    assert (meta["exchange"], meta["routing_key"]) == (exchange_name, "props")
    assert meta["queue"] == f"{exchange_name}.{listener.group}"
    assert isinstance(meta["delivery_tag"], int)
    assert meta["redelivered"] is False
    assert meta["headers"] == {"tenant": "acme", "n": 5, "traceparent": "00-abc-def-01"}
    assert event.headers == {"tenant": "acme", "traceparent": "00-abc-def-01"}, "str headers only"
    props = meta["properties"]
    assert props["delivery_mode"] == aio_pika.DeliveryMode.PERSISTENT
    assert (props["priority"], props["correlation_id"], props["app_id"]) == (3, "c-1", "billing")


async def test_config_of_another_backend_is_refused(rabbitmq_url: str, exchange_name: str) -> None:
    class OtherConfig(BaseModel):
        key: str = "k"

    async with EventEmitter.from_backend(
        "rabbitmq", url=rabbitmq_url, exchange=exchange_name
    ) as emitter:
        with pytest.raises(TypeError, match="RabbitMQEventConfig"):
            await emitter.emit(Ping(route="x", seq=1, __backend_config__=OtherConfig()))


async def test_a_publish_left_unconfirmed_times_out(
    rabbitmq_server: RabbitMQServer, exchange_name: str
) -> None:
    url, topic = rabbitmq_server.url, fresh("topic")
    listener = listener_on(url, exchange_name)

    @listener.handler(topic=topic, event=Ping.__event_type__)
    async def ignore(event: Event[Body]) -> None: ...

    emitter = EventEmitter.from_backend(
        "rabbitmq", url=url, exchange=exchange_name, publish_timeout=0.5
    )
    async with running(listener), emitter:
        await emitter.emit(Ping(route=topic, seq=1))
        # A memory alarm blocks every publishing connection: no confirm comes.
        await asyncio.to_thread(rabbitmq_server.rabbitmqctl, "set_vm_memory_high_watermark", "0")
        try:
            with pytest.raises(ProducerTimeout, match="did not confirm a message") as caught:
                await asyncio.wait_for(emitter.emit(Ping(route=topic, seq=2)), 10)
        finally:
            await asyncio.to_thread(
                rabbitmq_server.rabbitmqctl, "set_vm_memory_high_watermark", "0.4"
            )
        await emitter.emit(Ping(route=topic, seq=3))
    assert f"routing key {topic!r} within 0.5s" in str(caught.value)


# -- consumer --------------------------------------------------------------------------------


async def test_redelivered_flag_reaches_the_handler(rabbitmq_url: str, exchange_name: str) -> None:
    group, started, again = fresh("group"), Probe(), Probe()
    stuck = EventListener.from_backend(
        "rabbitmq", group=group, url=rabbitmq_url, exchange=exchange_name
    )

    @stuck.handler(topic="stuck", event=Ping.__event_type__)
    async def never_finishes(event: Event[Body]) -> None:
        started.add(event)
        await asyncio.Event().wait()

    fresh_listener = EventListener.from_backend(
        "rabbitmq", group=group, url=rabbitmq_url, exchange=exchange_name
    )

    @fresh_listener.handler(topic="stuck", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        again.add(event)

    async with EventEmitter.from_backend(
        "rabbitmq", url=rabbitmq_url, exchange=exchange_name
    ) as emitter:
        async with running(stuck, stop_timeout=0.1):
            await emitter.emit(Ping(route="stuck", seq=1))
            [first] = await started.wait_for(1, 10)
        async with running(fresh_listener):
            [second] = await again.wait_for(1, 10)
    assert (first.metadata["redelivered"], first.attempt) == (False, 1)
    assert (second.metadata["redelivered"], second.attempt) == (True, 2)


async def test_nack_redelivers_after_a_delay_without_a_hot_loop(
    rabbitmq_url: str, exchange_name: str
) -> None:
    options = {"dead_letter_topic": None, "redelivery_delay": 0.4}
    listener = listener_on(rabbitmq_url, exchange_name, options)
    failing, passing = Probe(), Probe()

    @listener.handler(topic="nack", event=Ping.__event_type__)
    async def fails_for_one(event: Event[Body]) -> None:
        if event.body.seq == 1:
            failing.add(event.metadata["redelivered"])
            raise RuntimeError("always fails")
        passing.add(event.body.seq)

    async with (
        running(listener),
        EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name) as emitter,
    ):
        await emitter.emit(Ping(route="nack", seq=1))
        await failing.wait_for(1, 10)
        for seq in range(2, 12):
            await emitter.emit(Ping(route="nack", seq=seq))
        await passing.wait_for(10, 10)  # the held message does not block the queue
        await failing.wait_for(2, 10)
        await asyncio.sleep(1.0)
    assert failing.items[:2] == [False, True]
    assert len(failing.items) <= 5, f"{len(failing.items)} deliveries: redelivery must wait 0.4 s"


async def test_poison_message_dead_lettered_while_the_queue_flows(
    rabbitmq_url: str, exchange_name: str
) -> None:
    listener, handled, letters = listener_on(rabbitmq_url, exchange_name), Probe(), Probe()
    watcher = listener_on(rabbitmq_url, exchange_name)

    @listener.handler(topic="flow", event=Ping.__event_type__, retries=1, retry_interval=0.01)
    async def poisoned_by_13(event: Event[Body]) -> None:
        if event.body.seq == 13:
            raise ValueError("13 is poison")
        handled.add(event.body.seq)

    @watcher.handler(topic="flow.dlq", event=DEAD_LETTER_EVENT)
    async def collect(event: Event[DeadLetter]) -> None:
        letters.add(event.body)

    async with (
        running(watcher),
        running(listener),
        EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name) as emitter,
    ):
        for seq in range(50):
            await emitter.emit(Ping(route="flow", seq=seq))
        await handled.wait_for(49, 15)
        [letter] = await letters.wait_for(1, 15)
    assert sorted(handled.items) == [s for s in range(50) if s != 13]
    assert (letter.reason, letter.error_message, letter.attempts) == (
        "handler_failed",
        "13 is poison",
        2,
    )


async def test_dead_letters_are_kept_when_nobody_listens_for_them(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    listener, handled = listener_on(rabbitmq_url, exchange_name), Probe()

    @listener.handler(topic="lonely", event=Ping.__event_type__)
    async def poisoned_by_1(event: Event[Body]) -> None:
        if event.body.seq == 1:
            raise ValueError("1 is poison")
        handled.add(event.body.seq)

    async with (
        running(listener),
        EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name) as emitter,
    ):
        for seq in (1, 2):
            await emitter.emit(Ping(route="lonely", seq=seq))
        await handled.wait_for(1, 10)
        [kept] = await drain(amqp, f"{exchange_name}.dlq", 1)
    assert kept.routing_key == "lonely.dlq"
    letter = json.loads(kept.body)
    assert (letter["type"], letter["body"]["error_message"]) == (DEAD_LETTER_EVENT, "1 is poison")


async def test_native_dead_lettering_through_a_dlx(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    listener = listener_on(
        rabbitmq_url,
        exchange_name,
        {"native_dead_letter": True},
        dead_letter_exchange=f"{exchange_name}.dlx",
    )
    handled = Probe()

    @listener.handler(topic="native", event=Ping.__event_type__)
    async def poisoned_by_3(event: Event[Body]) -> None:
        if event.body.seq == 3:
            raise ValueError("3 is poison")
        handled.add(event.body.seq)

    async with (
        running(listener),
        EventEmitter.from_backend("rabbitmq", url=rabbitmq_url, exchange=exchange_name) as emitter,
    ):
        for seq in range(10):
            await emitter.emit(Ping(route="native", seq=seq))
        await handled.wait_for(9, 10)
        [dead] = await drain(amqp, f"{exchange_name}.{listener.group}.dlq", 1)
    assert json.loads(dead.body)["body"]["seq"] == 3, "the original message, as published"
    deaths: Any = dead.headers["x-death"]
    assert deaths[0]["reason"] == "rejected", "RabbitMQ records why it dead-lettered"
    assert sorted(handled.items) == [s for s in range(10) if s != 3]


# -- aio-pika objects, as in Dispytch 0.10 ---------------------------------------------------


async def test_producer_and_consumer_from_aio_pika_objects(
    rabbitmq_url: str, exchange_name: str
) -> None:
    connection = await aio_pika.connect_robust(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        main = await channel.declare_exchange(exchange_name, "topic", durable=True)
        audit = await channel.declare_exchange(f"{exchange_name}.audit", "fanout", durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(main, "legacy.*")
        await queue.bind(audit)

        emitter = EventEmitter(RabbitMQProducer([main, audit], timeout=5))
        listener = EventListener(RabbitMQConsumer(queue))
        probe = Probe()

        @listener.handler(topic="legacy.{kind}", event=Ping.__event_type__)
        async def record(event: Event[Body]) -> None:
            probe.add((event.metadata["exchange"], event.body.seq))

        to_audit = RabbitMQEventConfig(exchange=f"{exchange_name}.audit")
        async with running(listener), emitter:
            await emitter.emit(Ping(route="legacy.a", seq=1))
            await emitter.emit(Ping(route="legacy.b", seq=2, __backend_config__=to_audit))
            got = await probe.wait_for(2, 10)
    assert sorted(got) == [(exchange_name, 1), (f"{exchange_name}.audit", 2)]
