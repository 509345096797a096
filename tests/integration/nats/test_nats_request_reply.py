"""NATS JetStream: an emitter's replies consumer is deleted, and its replies purged, when
the emitter stops."""

from __future__ import annotations

from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch_nats.jetstream import consumer_name

pytestmark = pytest.mark.nats


class Ask(EventBase):
    __topic__ = "natsasks.ask"
    __event_type__ = "ask"

    n: int


class Answer(BaseModel):
    n: int


@pytest.mark.asyncio
async def test_the_replies_consumer_goes_when_the_emitter_stops(
    jetstream_settings: dict[str, Any],
) -> None:
    listener = EventListener.from_backend("nats", group="answers", **jetstream_settings)

    @listener.handler(topic="natsasks.ask", event="ask")
    async def answer(event: Event[Ask]) -> Answer:
        return Answer(n=event.body.n + 1)

    client = await nats.connect(jetstream_settings["url"])
    js = client.jetstream()
    try:
        async with listener, EventEmitter.from_backend("nats", **jetstream_settings) as emitter:
            assert await emitter.request(Ask(n=1), reply=Answer, timeout=15) == Answer(n=2)
            topic = emitter.replies_topic
            assert topic is not None
            stream = await js.find_stream_name_by_subject(topic)
            assert (await js.consumer_info(stream, consumer_name(topic))).name
        with pytest.raises(NotFoundError):
            await js.consumer_info(stream, consumer_name(topic))
        info = await js.stream_info(stream, subjects_filter=topic)
        assert not info.state.subjects, "the replies are purged"
    finally:
        await client.close()
