"""Redis Streams: an emitter's replies stream is deleted when the emitter stops."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from dispytch import Event, EventBase, EventEmitter, EventListener

pytestmark = pytest.mark.redis


class Ask(EventBase):
    __topic__ = "redis.asks"
    __event_type__ = "ask"

    n: int


class Answer(BaseModel):
    n: int


@pytest.mark.asyncio
async def test_the_replies_stream_is_deleted_when_the_emitter_stops(
    streams_settings: dict[str, Any],
) -> None:
    listener = EventListener.from_backend("redis", group="answers", **streams_settings)

    @listener.handler(topic="redis.asks", event="ask")
    async def answer(event: Event[Ask]) -> Answer:
        return Answer(n=event.body.n + 1)

    redis = Redis.from_url(streams_settings["url"])
    try:
        async with listener, EventEmitter.from_backend("redis", **streams_settings) as emitter:
            assert await emitter.request(Ask(n=1), reply=Answer, timeout=15) == Answer(n=2)
            topic = emitter.replies_topic
            assert topic is not None
            assert await redis.exists(topic) == 1
        assert emitter.replies_topic is None
        assert await redis.exists(topic) == 0, "the replies stream is gone with its emitter"
    finally:
        await redis.aclose()
