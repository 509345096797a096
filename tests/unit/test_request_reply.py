"""Request-reply beyond the conformance kit: under the TestClient, a handler answering
None, requests waiting when the emitter stops, an emitter that cannot know where replies
come from."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

from dispytch import (
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    OutgoingMessage,
    RequestFailed,
)
from dispytch.backends.memory import MemoryProducer, get_broker
from dispytch.serialization import Envelope, JSONSerializer
from dispytch.testing import Probe, TestClient, running


class GetQuote(EventBase):
    __topic__ = "quotes"
    __event_type__ = "quote.requested"

    symbol: str


class Quote(BaseModel):
    symbol: str
    price: float


@pytest.mark.asyncio
async def test_a_request_is_answered_under_the_test_client() -> None:
    listener = EventListener.from_url("kafka://localhost:1", group="quotes")

    @listener.handler(topic="quotes", event="quote.requested")
    async def quote(event: Event[GetQuote]) -> Quote:
        return Quote(symbol=event.body.symbol, price=1.5)

    emitter = EventEmitter.from_url("kafka://localhost:1")
    async with TestClient(listener, emitters=[emitter]) as client:
        reply = await emitter.request(GetQuote(symbol="ACME"), reply=Quote, timeout=5)
        await client.wait_settled()
    assert reply == Quote(symbol="ACME", price=1.5)
    assert emitter.reply_consumers is None, "the emitter's own reply source is back"


@pytest.mark.asyncio
async def test_a_handler_answering_none_fails_the_request() -> None:
    listener = EventListener.from_url("memory://none-answer", group="quotes")

    @listener.handler(topic="quotes", event="quote.requested")
    async def forgets_to_return(event: Event[GetQuote]) -> None:
        pass

    async with listener, EventEmitter.from_url("memory://none-answer") as emitter:
        with pytest.raises(RequestFailed, match="returned None") as failed:
            await emitter.request(GetQuote(symbol="ACME"), reply=Quote, timeout=5)
    assert failed.value.reason == "no_reply"


@pytest.mark.asyncio
async def test_stopping_the_emitter_fails_the_requests_waiting() -> None:
    listener = EventListener.from_url("memory://never-answers", group="quotes")
    received = Probe()

    @listener.handler(topic="quotes", event="quote.requested")
    async def never_answers(event: Event[GetQuote]) -> Quote:
        received.add(event)
        await asyncio.Event().wait()
        raise AssertionError("never reached")

    async with (
        running(listener, stop_timeout=0.1),
        EventEmitter.from_url("memory://never-answers") as emitter,
    ):
        waiting = asyncio.create_task(
            emitter.request(GetQuote(symbol="ACME"), reply=Quote, timeout=30)
        )
        await received.wait_for(1, 10)
    with pytest.raises(RequestFailed) as failed:
        await waiting
    assert failed.value.reason == "emitter_stopped"


@pytest.mark.asyncio
async def test_an_emitter_given_a_producer_needs_a_reply_source() -> None:
    emitter = EventEmitter(MemoryProducer(get_broker()))
    with pytest.raises(TypeError, match="receive_replies_with"):
        await emitter.request(GetQuote(symbol="ACME"), reply=Quote)


class _Seen(logging.Handler):
    """Sets `seen` once a record saying `text` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.mark.asyncio
async def test_a_request_naming_another_topic_for_its_reply_gets_none() -> None:
    listener = EventListener.from_url("memory://hijack", group="quotes")
    elsewhere = EventListener.from_url("memory://hijack", group="orders")
    hijacked = Probe()

    @listener.handler(topic="quotes", event="quote.requested")
    async def quote(event: Event[GetQuote]) -> Quote:
        return Quote(symbol=event.body.symbol, price=1.0)

    @elsewhere.handler(topic="orders", event="*")
    async def order(event: Event[dict[str, object]]) -> None:
        hijacked.add(event)

    request = Envelope("req-1", "quote.requested", {"symbol": "ACME"}, 1)
    headers = {"dispytch-reply-to": "orders", "dispytch-correlation-id": "req-1"}
    refused = _Seen("is no replies topic")
    logging.getLogger("dispytch.listener").addHandler(refused)
    try:
        async with running(listener), running(elsewhere):
            await MemoryProducer(get_broker("hijack")).publish(
                OutgoingMessage("quotes", JSONSerializer().dumps(request), headers=headers)
            )
            await asyncio.wait_for(refused.seen.wait(), 10)
    finally:
        logging.getLogger("dispytch.listener").removeHandler(refused)
    assert hijacked.items == [], "the listener sent nothing to a topic that is no replies topic"
