"""What becomes of an event no queue is bound for: its emit raises `UnroutableMessage` (the
default), or the exchange's alternate exchange keeps it in a queue (`unroutable="keep"`)."""

from __future__ import annotations

import json

import pytest
from aio_pika.abc import AbstractChannel
from rabbitmq_events import Body, Ping

from dispytch import Event, EventEmitter, EventListener
from dispytch.testing import Probe
from dispytch_rabbitmq import TopologyError, UnroutableMessage

pytestmark = pytest.mark.rabbitmq


async def test_an_unroutable_event_raises_by_default(rabbitmq_url: str, exchange_name: str) -> None:
    async with EventEmitter.from_backend(
        "rabbitmq", url=rabbitmq_url, exchange=exchange_name
    ) as emitter:
        with pytest.raises(UnroutableMessage, match=r"routing key 'nobody\.listens'") as caught:
            await emitter.emit(Ping(route="nobody.listens", seq=1))
    assert "required_groups" in str(caught.value)
    assert "unroutable='keep'" in str(caught.value)


async def test_kept_events_wait_in_the_unroutable_queue(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    listener = EventListener.from_backend(
        "rabbitmq", group="billing", url=rabbitmq_url, exchange=exchange_name, unroutable="keep"
    )
    probe = Probe()

    @listener.handler(topic="orders.*", event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        probe.add(event.body.seq)

    async with (
        EventEmitter.from_backend(
            "rabbitmq", url=rabbitmq_url, exchange=exchange_name, unroutable="keep"
        ) as emitter,
        listener,
    ):
        await emitter.emit(Ping(route="nobody.listens", seq=1))
        await emitter.emit(Ping(route="orders.placed", seq=2))
        assert await probe.wait_for(1, 10) == [2]
    kept = await amqp.get_queue(f"{exchange_name}.unroutable", ensure=True)
    message = await kept.get(fail=False)
    assert message is not None
    await message.ack()
    assert (message.routing_key, message.exchange) == ("nobody.listens", exchange_name)
    assert json.loads(message.body)["body"] == {"route": "nobody.listens", "seq": 1}
    assert await kept.get(fail=False) is None  # the routed event was not kept as well


async def test_keep_on_an_exchange_without_an_alternate_exchange_is_refused(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    await amqp.declare_exchange(exchange_name, "topic", durable=True)
    emitter = EventEmitter.from_backend(
        "rabbitmq", url=rabbitmq_url, exchange=exchange_name, unroutable="keep"
    )
    with pytest.raises(TopologyError, match=rf"exchange '{exchange_name}' already exists") as err:
        await emitter.start()
    assert "`unroutable` alike on every service" in str(err.value)
