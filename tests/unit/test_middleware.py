"""Point 9: `async def mw(ctx, call_next)` at listener, group and handler level, in the
documented order (listener outermost), and emitter middleware that adds headers."""

import logging
from typing import Any

import pytest
from pydantic import BaseModel
from seed_fakes import SyncAckConsumer, Wire, WireProducer
from support import WAIT, dead_letters, eventually

from dispytch import (
    Context,
    EmitContext,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
)
from dispytch.middleware import CallNext, Middleware
from dispytch.testing import Probe, running


class Signed(EventBase):
    __topic__ = "docs.{doc}"
    __event_type__ = "signed"

    doc: str


class Doc(BaseModel):
    doc: str


def tracing(name: str, log: Probe) -> Middleware[Context]:
    async def middleware(ctx: Context, call_next: CallNext[Context]) -> Any:
        log.add(f"{name} in")
        try:
            return await call_next(ctx)
        finally:
            log.add(f"{name} out")

    return middleware


async def emit_signed(wire: Wire, doc: str = "d1") -> None:
    await EventEmitter(WireProducer(wire)).emit(Signed(doc=doc))


async def test_listener_then_group_then_handler_middleware(wire: Wire) -> None:
    log = Probe()
    listener = EventListener(SyncAckConsumer(wire), middleware=[tracing("listener 1", log)])
    listener.add_middleware(tracing("listener 2", log))
    group = HandlerGroup(middleware=[tracing("group", log)])

    @group.handler(topic="docs.{doc}", event="signed", middleware=[tracing("handler", log)])
    async def handle(event: Event[Doc]) -> None:
        log.add("handler body")

    listener.add_handler_group(group)
    async with running(listener):
        await emit_signed(wire)
        await log.wait_for(9, WAIT)

    assert log.items == [
        "listener 1 in",
        "listener 2 in",
        "group in",
        "handler in",
        "handler body",
        "handler out",
        "group out",
        "listener 2 out",
        "listener 1 out",
    ]


async def test_middleware_sees_the_call_and_shares_state_with_the_handler(wire: Wire) -> None:
    seen = Probe()

    async def auth(ctx: Context, call_next: CallNext[Context]) -> Any:
        seen.add((ctx.event.type, ctx.event.body, ctx.message.topic, ctx.handler.name))
        ctx.state["user"] = "ada"
        return await call_next(ctx)

    listener = EventListener(SyncAckConsumer(wire), middleware=[auth])

    @listener.handler(topic="docs.{doc}", event="signed")
    async def handle(event: Event[Doc], ctx: Context) -> None:
        seen.add(ctx.state["user"])

    async with running(listener):
        await emit_signed(wire, "contract")
        first, second = await seen.wait_for(2, WAIT)

    assert first[:3] == ("signed", Doc(doc="contract"), "docs.contract"), "the handler's body type"
    assert first[3].endswith("handle")
    assert second == "ada"


async def test_middleware_can_skip_the_handler(wire: Wire) -> None:
    consumer, called = SyncAckConsumer(wire), Probe()

    async def drop_drafts(ctx: Context, call_next: CallNext[Context]) -> Any:
        if ctx.event.topic.startswith("docs.draft"):
            return None
        return await call_next(ctx)

    listener = EventListener(consumer, middleware=[drop_drafts])

    @listener.handler(topic="docs.{doc}", event="signed")
    async def handle(event: Event[Doc]) -> None:
        called.add(event.body.doc)

    async with running(listener):
        await emit_signed(wire, "draft-1")
        await emit_signed(wire, "final")
        await eventually(lambda: len(consumer.acked) == 2)

    assert called.items == ["final"], "the skipped message is acked without running the handler"


async def test_every_retry_passes_through_the_middleware(wire: Wire) -> None:
    attempts = Probe()

    async def count(ctx: Context, call_next: CallNext[Context]) -> Any:
        attempts.add(ctx.attempt)
        return await call_next(ctx)

    listener = EventListener(SyncAckConsumer(wire))

    @listener.handler(
        topic="docs.{doc}", event="signed", retries=2, retry_interval=0, middleware=[count]
    )
    async def fail(event: Event[Doc]) -> None:
        raise RuntimeError("signature invalid")

    async with running(listener):
        await emit_signed(wire)
        await attempts.wait_for(3, WAIT)

    assert attempts.items == [1, 2, 3]


async def test_a_middleware_error_counts_as_a_handler_failure(wire: Wire, dlq_wire: Wire) -> None:
    async def broken(ctx: Context, call_next: CallNext[Context]) -> Any:
        raise PermissionError("not allowed")

    listener = EventListener(
        SyncAckConsumer(wire), producer=WireProducer(dlq_wire), middleware=[broken]
    )

    @listener.handler(topic="docs.{doc}", event="signed")
    async def handle(event: Event[Doc]) -> None: ...

    async with running(listener):
        await emit_signed(wire)
        await eventually(lambda: len(dlq_wire.sent) == 1)

    [(_, letter)] = dead_letters(dlq_wire)
    assert (letter.error_type, letter.error_message) == ("builtins.PermissionError", "not allowed")


async def test_a_middleware_can_handle_the_handlers_error(wire: Wire, dlq_wire: Wire) -> None:
    consumer, caught = SyncAckConsumer(wire), Probe()

    async def swallow(ctx: Context, call_next: CallNext[Context]) -> Any:
        try:
            return await call_next(ctx)
        except LookupError as exc:
            caught.add(str(exc))
            return None

    listener = EventListener(consumer, producer=WireProducer(dlq_wire), middleware=[swallow])

    @listener.handler(topic="docs.{doc}", event="signed")
    async def handle(event: Event[Doc]) -> None:
        raise LookupError("already signed")

    async with running(listener):
        await emit_signed(wire)
        await eventually(lambda: len(consumer.acked) == 1)

    assert (caught.items, dlq_wire.sent) == (["already signed"], [])


# -- emitter middleware ----------------------------------------------------------------------


async def test_emitter_middleware_adds_headers_in_order(memory_url: str) -> None:
    listener, received = EventListener.from_url(memory_url, group="g"), Probe()

    async def trace(ctx: EmitContext, call_next: CallNext[EmitContext]) -> None:
        ctx.message.headers["traceparent"] = "00-trace-01"
        ctx.message.headers["order"] = "trace"
        await call_next(ctx)

    async def tenant(ctx: EmitContext, call_next: CallNext[EmitContext]) -> None:
        assert isinstance(ctx.event, Signed)
        ctx.message.headers["tenant"] = ctx.event.doc
        ctx.message.headers["order"] += ",tenant"
        await call_next(ctx)

    @listener.handler(topic="docs.{doc}", event="signed")
    async def handle(event: Event[Doc]) -> None:
        received.add(event.headers)

    emitter = EventEmitter.from_url(memory_url, emitter_options={"middleware": [trace, tenant]})
    async with running(listener), emitter:
        await emitter.emit(Signed(doc="acme"))
        [headers] = await received.wait_for(1, WAIT)

    assert headers == {"traceparent": "00-trace-01", "tenant": "acme", "order": "trace,tenant"}


async def test_emitter_middleware_can_hold_an_event_back(wire: Wire) -> None:
    async def only_final(ctx: EmitContext, call_next: CallNext[EmitContext]) -> None:
        if ctx.message.topic != "docs.draft":
            await call_next(ctx)

    emitter = EventEmitter(WireProducer(wire), middleware=[only_final])
    await emitter.emit(Signed(doc="draft"))
    await emitter.emit(Signed(doc="final"))

    assert [r.topic for r in wire.sent] == ["docs.final"]


async def test_headers_a_send_only_producer_cannot_carry_are_reported_once(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    async def trace(ctx: EmitContext, call_next: CallNext[EmitContext]) -> None:
        ctx.message.headers["traceparent"] = "00-trace-01"
        await call_next(ctx)

    emitter = EventEmitter(WireProducer(wire), middleware=[trace])
    with caplog.at_level(logging.WARNING, logger="dispytch.emitter"):
        await emitter.emit(Signed(doc="a"))
        await emitter.emit(Signed(doc="b"))

    assert len(wire.sent) == 2, "the events are still sent"
    warnings = [r.getMessage() for r in caplog.records if "cannot carry headers" in r.getMessage()]
    assert warnings == [
        "WireProducer cannot carry headers; headers set by emitter middleware are dropped"
    ]
