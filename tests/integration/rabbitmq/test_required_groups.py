"""`required_groups`: the emitting side declares the queues of named consumer groups, so that
events are kept before any listener of those groups ever ran."""

from __future__ import annotations

from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from rabbitmq_events import Body, Ping

from dispytch import Event, EventEmitter, EventListener
from dispytch.testing import Probe
from dispytch_rabbitmq import TopologyError, UnroutableMessage

pytestmark = pytest.mark.rabbitmq


def recording(listener: EventListener, probe: Probe, *topics: str) -> None:
    for topic in topics:

        @listener.handler(topic=topic, event=Ping.__event_type__)
        async def record(event: Event[Body]) -> None:
            probe.add(event.body.seq)


async def test_events_wait_for_a_required_group_that_never_ran(
    rabbitmq_url: str, exchange_name: str
) -> None:
    async with EventEmitter.from_backend(
        "rabbitmq",
        url=rabbitmq_url,
        exchange=exchange_name,
        required_groups={"billing": ["orders.{region}.placed"]},
    ) as emitter:
        for seq in range(3):
            await emitter.emit(Ping(route="orders.eu.placed", seq=seq))
        with pytest.raises(UnroutableMessage):  # only the group's topics are bound
            await emitter.emit(Ping(route="orders.eu.paid", seq=9))

    listener, probe = (
        EventListener.from_backend(
            "rabbitmq", group="billing", url=rabbitmq_url, exchange=exchange_name
        ),
        Probe(),
    )
    recording(listener, probe, "orders.{region}.placed")
    async with listener:
        assert await probe.wait_for(3, 10) == [0, 1, 2]


async def test_required_queues_are_declared_as_their_listeners_declare_them(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    # Quorum queues with a native dead-letter exchange: the listener that starts later
    # declares its queue with the same arguments, which RabbitMQ accepts only if they match.
    shared: dict[str, Any] = {
        "url": rabbitmq_url,
        "exchange": exchange_name,
        "quorum": True,
        "dead_letter_exchange": f"{exchange_name}.dlx",
    }
    async with EventEmitter.from_backend(
        "rabbitmq", required_groups={"billing": ["a.*", "b.*"]}, **shared
    ) as emitter:
        await emitter.emit(Ping(route="a.x", seq=1))
        await emitter.emit(Ping(route="b.y", seq=2))
    await amqp.get_queue(f"{exchange_name}.billing.dlq", ensure=True)

    listener = EventListener.from_backend(
        "rabbitmq", group="billing", listener_options={"native_dead_letter": True}, **shared
    )
    probe = Probe()
    recording(listener, probe, "a.*", "b.*")
    async with listener:
        assert sorted(await probe.wait_for(2, 10)) == [1, 2]


async def test_a_required_group_on_a_fanout_exchange_needs_no_topics(
    rabbitmq_url: str, exchange_name: str
) -> None:
    shared: dict[str, Any] = {
        "url": rabbitmq_url,
        "exchange": exchange_name,
        "exchange_type": "fanout",
    }
    async with EventEmitter.from_backend(
        "rabbitmq", required_groups={"audit": []}, **shared
    ) as emitter:
        await emitter.emit(Ping(route="anything", seq=7))
    listener, probe = EventListener.from_backend("rabbitmq", group="audit", **shared), Probe()
    recording(listener, probe, "anything")
    async with listener:
        assert await probe.wait_for(1, 10) == [7]


async def test_a_required_queue_declared_otherwise_fails_the_emitter_start(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    await amqp.declare_queue(
        f"{exchange_name}.billing", durable=True, arguments={"x-queue-type": "quorum"}
    )
    emitter = EventEmitter.from_backend(
        "rabbitmq", url=rabbitmq_url, exchange=exchange_name, required_groups={"billing": ["a"]}
    )
    with pytest.raises(TopologyError, match=rf"queue '{exchange_name}\.billing' already exists"):
        await emitter.start()
