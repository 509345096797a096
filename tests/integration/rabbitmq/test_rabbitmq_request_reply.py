"""RabbitMQ: an emitter's replies queue is exclusive to its connection and goes with it."""

from __future__ import annotations

import aio_pika
import pytest
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity
from pydantic import BaseModel

from brokers import RabbitMQServer
from dispytch import Event, EventBase, EventEmitter, EventListener

pytestmark = pytest.mark.rabbitmq


class Ask(EventBase):
    __topic__ = "rabbit.asks"
    __event_type__ = "ask"

    n: int


class Answer(BaseModel):
    n: int


async def _queue_exists(url: str, name: str) -> bool:
    """Whether queue `name` exists (an exclusive queue of another connection does, locked)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except ChannelLockedResource:
            return True
        except ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_the_replies_queue_goes_when_the_emitter_stops(
    rabbitmq_server: RabbitMQServer,
) -> None:
    url = rabbitmq_server.url
    listener = EventListener.from_backend("rabbitmq", group="answers", url=url)

    @listener.handler(topic="rabbit.asks", event="ask")
    async def answer(event: Event[Ask]) -> Answer:
        return Answer(n=event.body.n + 1)

    async with listener, EventEmitter.from_backend("rabbitmq", url=url) as emitter:
        assert await emitter.request(Ask(n=1), reply=Answer, timeout=15) == Answer(n=2)
        topic = emitter.replies_topic
        assert topic is not None
        assert await _queue_exists(url, topic)
    assert not await _queue_exists(url, topic), "the exclusive replies queue is deleted"
