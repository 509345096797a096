"""Kafka: an emitter's replies topic is deleted when the emitter stops."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener

pytestmark = pytest.mark.kafka


class Ask(EventBase):
    __topic__ = "kafka.asks"
    __event_type__ = "ask"

    n: int


class Answer(BaseModel):
    n: int


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.asyncio
async def test_the_replies_topic_is_deleted_when_the_emitter_stops(
    kafka_settings: dict[str, Any],
) -> None:
    listener = EventListener.from_backend("kafka", group="answers", **kafka_settings)

    @listener.handler(topic="kafka.asks", event="ask")
    async def answer(event: Event[Ask]) -> Answer:
        return Answer(n=event.body.n + 1)

    async with listener, EventEmitter.from_backend("kafka", **kafka_settings) as emitter:
        assert await emitter.request(Ask(n=1), reply=Answer, timeout=30) == Answer(n=2)
        topic = emitter.replies_topic
        assert topic is not None
        assert topic in await _topics(kafka_settings["bootstrap_servers"])
    assert topic not in await _topics(kafka_settings["bootstrap_servers"])
