"""A RabbitMQ listener is ready on the broker once `start()` returned (`async with listener:`):
an event emitted right then is routed to its group's queue and delivered, never unroutable,
however often it is tried."""

from __future__ import annotations

import pytest
from aio_pika.abc import AbstractChannel
from rabbitmq_events import Body, Ping

from dispytch import Event, EventEmitter, EventListener
from dispytch.testing import Probe

pytestmark = pytest.mark.rabbitmq

TRIALS = 100
"""Listeners started, each sent events the moment its start returned."""


def recording(listener: EventListener, probe: Probe, *topics: str) -> None:
    for topic in topics:

        @listener.handler(topic=topic, event=Ping.__event_type__)
        async def record(event: Event[Body]) -> None:
            probe.add((event.body.seq, event.topic))


async def test_an_emit_right_after_start_is_delivered_every_time(
    rabbitmq_url: str, exchange_name: str, amqp: AbstractChannel
) -> None:
    delivered: list[tuple[int, str]] = []
    async with EventEmitter.from_backend(
        "rabbitmq", url=rabbitmq_url, exchange=exchange_name
    ) as emitter:
        for trial in range(TRIALS):
            group, probe = f"trial{trial}", Probe()
            listener = EventListener.from_backend(
                "rabbitmq", group=group, url=rabbitmq_url, exchange=exchange_name
            )
            recording(listener, probe, f"t{trial}.placed", f"t{trial}.{{region}}.paid")
            async with listener:
                # start() returned: publishes are mandatory, a missing binding would raise
                await emitter.emit(Ping(route=f"t{trial}.placed", seq=trial))
                await emitter.emit(Ping(route=f"t{trial}.eu.paid", seq=trial))
                queue = await amqp.declare_queue(f"{exchange_name}.{group}", passive=True)
                assert queue.declaration_result.consumer_count == 1
                delivered.extend(sorted(await probe.wait_for(2, 10)))
    expected = [(t, topic) for t in range(TRIALS) for topic in (f"t{t}.eu.paid", f"t{t}.placed")]
    assert delivered == expected
