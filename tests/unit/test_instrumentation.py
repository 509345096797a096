"""The instrumentation hook: what core reports for each message and each emit, on the memory
backend, including the outcomes decided before any middleware runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel
from support import WAIT, eventually, fresh

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.app import App
from dispytch.instrumentation import Delivery, Emission, HandlerCall, Instrumentation, Source
from dispytch.testing import Probe, running


class Ordered(EventBase):
    __topic__ = "orders.{shop}"
    __event_type__ = "ordered"

    shop: str
    n: int


class OrderBody(BaseModel):
    shop: str
    n: int


class Flaky(Exception):
    """Retried by the handlers below."""


class Recorder(Instrumentation):
    """Writes down every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.settled: list[Delivery] = []
        self.finished: list[tuple[str, int, str | None, float]] = []
        self.emitted: list[Emission] = []

    def consumer_started(self, source: Source) -> None:
        self.calls.append(("started", source))

    def consumer_stopped(self, source: Source) -> None:
        self.calls.append(("stopped", source))

    def message_received(self, delivery: Delivery) -> None:
        self.calls.append(("received", delivery.message.topic))

    def handler_started(self, call: HandlerCall) -> None:
        self.calls.append(("handler_started", call.attempt))

    def handler_finished(self, call: HandlerCall) -> None:
        error = type(call.error).__name__ if call.error else None
        self.calls.append(("handler_finished", call.attempt, error))
        self.finished.append((call.pattern, call.attempt, error, call.duration))

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        self.calls.append(("retry", call.attempt, delay))

    def message_settled(self, delivery: Delivery) -> None:
        self.calls.append(("settled", delivery.outcome, delivery.reason))
        self.settled.append(delivery)

    def emit_started(self, emission: Emission) -> None:
        emission.message.headers["x-recorded"] = "yes"

    def event_emitted(self, emission: Emission) -> None:
        self.emitted.append(emission)


def listener_on(broker: str, recorder: Recorder, **options: Any) -> EventListener:
    listener = EventListener.from_url(f"memory://{broker}", group="shop", listener_options=options)
    listener.add_instrumentation(recorder)
    return listener


async def test_a_message_that_fails_once_then_succeeds() -> None:
    broker, recorder, seen = fresh("broker"), Recorder(), Probe()
    listener = listener_on(broker, recorder)

    @listener.handler(topic="orders.{shop}", event="ordered", retries=2, retry_interval=0)
    async def take(event: Event[OrderBody]) -> None:
        seen.add(event.headers)
        if len(seen.items) == 1:
            raise Flaky("once")

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        emitter.add_instrumentation(recorder)
        await emitter.emit(Ordered(shop="acme", n=1))
        await eventually(lambda: bool(recorder.settled))

    assert recorder.calls == [
        ("started", Source("memory", "shop")),
        ("received", "orders.acme"),
        ("handler_started", 1),
        ("handler_finished", 1, "Flaky"),
        ("retry", 1, 0),
        ("handler_started", 2),
        ("handler_finished", 2, None),
        ("settled", "ack", None),
        ("stopped", Source("memory", "shop")),
    ]
    [delivery] = recorder.settled
    assert (delivery.event_type, delivery.pattern) == ("ordered", "orders.{shop}")
    assert delivery.event_id
    assert all(duration >= 0 for *_, duration in recorder.finished)
    assert seen.items[0]["x-recorded"] == "yes", "headers added by emit_started travel"


async def test_outcomes_decided_before_any_middleware_are_reported() -> None:
    broker, recorder, letters = fresh("broker"), Recorder(), Probe()
    listener = listener_on(broker, recorder, on_unmatched="ack")
    middleware_saw: list[str] = []

    async def count(ctx: Any, call_next: Any) -> Any:
        middleware_saw.append(ctx.event.type)
        return await call_next(ctx)

    listener.add_middleware(count)

    @listener.handler(topic="orders.{shop}", event="ordered")
    async def take(event: Event[OrderBody]) -> None:
        if event.body.n < 0:
            raise ValueError("negative")

    @listener.handler(topic="orders.{shop}.dlq", event="dispytch.dead_letter")
    async def collect(event: Event[dict[str, Any]]) -> None:
        letters.add(event.body["reason"])

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        await emitter.producer.send("orders.acme", b"\xff not an event")
        await emitter.producer.send("orders.acme", b'{"id": "1", "type": "x"}')
        await emitter.emit(Ordered(shop="acme", n=-1))
        await emitter.emit(Ordered(shop="acme", n=1))
        await letters.wait_for(3, WAIT)
        await eventually(lambda: len(recorder.settled) == 7)

    by_reason = sorted(
        (d.outcome or "", d.reason or "")
        for d in recorder.settled
        if d.message.topic == "orders.acme"
    )
    assert by_reason == [
        ("ack", ""),
        ("dead_letter", "handler_failed"),
        ("dead_letter", "undecodable"),
        ("dead_letter", "undecodable"),
    ]
    assert sorted(middleware_saw) == ["dispytch.dead_letter"] * 3 + ["ordered"] * 2
    assert sorted(letters.items) == ["handler_failed", "undecodable", "undecodable"]


async def test_unmatched_events_are_settled_with_their_reason() -> None:
    broker, recorder = fresh("broker"), Recorder()
    listener = listener_on(broker, recorder, on_unmatched="ack")

    @listener.handler(topic="orders.{shop}", event="cancelled")
    async def cancel(event: Event[OrderBody]) -> None: ...

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        await emitter.emit(Ordered(shop="acme", n=1))
        await eventually(lambda: bool(recorder.settled))

    [delivery] = recorder.settled
    assert (delivery.outcome, delivery.reason, delivery.pattern) == ("ack", "unmatched", None)
    assert delivery.event_type == "ordered"


async def test_the_emitter_reports_each_emit_with_its_backend_and_template() -> None:
    recorder = Recorder()
    async with EventEmitter.from_url(f"memory://{fresh('broker')}") as emitter:
        emitter.add_instrumentation(recorder)
        await emitter.emit(Ordered(shop="acme", n=1))
        await emitter.emit_many([Ordered(shop="b", n=2), Ordered(shop="c", n=3)])
    assert [e.message.topic for e in recorder.emitted] == ["orders.acme", "orders.b", "orders.c"]
    assert {e.pattern for e in recorder.emitted} == {"orders.{shop}"}
    assert {e.source for e in recorder.emitted} == {Source("memory")}
    assert all(e.duration >= 0 for e in recorder.emitted)


async def test_an_instrumentation_that_raises_does_not_break_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Instrumentation):
        def message_received(self, delivery: Delivery) -> None:
            raise RuntimeError("instrumentation bug")

    broker, recorder, seen = fresh("broker"), Recorder(), Probe()
    listener = EventListener.from_url(f"memory://{broker}", group="shop")
    listener.add_instrumentation(Broken())
    listener.add_instrumentation(recorder)

    @listener.handler(topic="orders.{shop}", event="ordered")
    async def take(event: Event[OrderBody]) -> None:
        seen.add(event.body.n)

    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        await emitter.emit(Ordered(shop="acme", n=1))
        await seen.wait_for(1, WAIT)
        await eventually(lambda: bool(recorder.settled))
    assert recorder.settled[0].outcome == "ack"
    assert "instrumentation bug" in caplog.text


def test_only_instrumentations_are_accepted() -> None:
    listener = EventListener.from_url("memory://", group="shop")
    with pytest.raises(TypeError, match=r"subclass dispytch\.instrumentation\.Instrumentation"):
        listener.add_instrumentation(object())  # type: ignore[arg-type]


async def test_log_lines_about_a_message_carry_its_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = fresh("broker")
    listener = EventListener.from_url(f"memory://{broker}", group="shop")

    @listener.handler(topic="orders.{shop}", event="ordered", retries=1, retry_interval=0)
    async def take(event: Event[OrderBody]) -> None:
        raise ValueError("no")

    caplog.set_level(logging.INFO, logger="dispytch")
    async with running(listener), EventEmitter.from_url(f"memory://{broker}") as emitter:
        await emitter.emit(Ordered(shop="acme", n=1))
        await eventually(lambda: any("dead-lettered" in r.getMessage() for r in caplog.records))

    about_message = [r for r in caplog.records if r.name == "dispytch.listener"]
    assert len(about_message) == 3  # retry, final failure, dead-lettered
    for record in about_message:
        assert record.topic == "orders.acme"  # type: ignore[attr-defined]
        assert record.event_type == "ordered"  # type: ignore[attr-defined]
        assert record.event_id  # type: ignore[attr-defined]
        assert record.handler.endswith("take")  # type: ignore[attr-defined]
        assert (record.group, record.backend) == ("shop", "memory")  # type: ignore[attr-defined]
    assert [r.attempt for r in about_message] == [1, 2, 2]  # type: ignore[attr-defined]
    assert about_message[-1].outcome == "dead_letter"  # type: ignore[attr-defined]
    assert about_message[-1].reason == "handler_failed"  # type: ignore[attr-defined]


async def test_an_app_attaches_an_instrumentation_to_its_listeners_and_emitters() -> None:
    broker, recorder = fresh("broker"), Recorder()
    listener = EventListener.from_url(f"memory://{broker}", group="shop")
    emitter = EventEmitter.from_url(f"memory://{broker}")

    @listener.handler(topic="orders.{shop}", event="ordered")
    async def take(event: Event[OrderBody]) -> None: ...

    app = App([listener], [emitter])
    app.add_instrumentation(recorder)
    async with app:
        await emitter.emit(Ordered(shop="acme", n=1))
        await eventually(lambda: bool(recorder.settled))
    assert [e.message.topic for e in recorder.emitted] == ["orders.acme"]
    assert recorder.settled[0].outcome == "ack"


async def test_a_message_cut_off_by_stop_is_reported_unsettled() -> None:
    broker, recorder, started = fresh("broker"), Recorder(), Probe()
    listener = listener_on(broker, recorder)

    @listener.handler(topic="orders.{shop}", event="ordered")
    async def stuck(event: Event[OrderBody]) -> None:
        started.add(event.body.n)
        await asyncio.Event().wait()

    async with (
        running(listener, stop_timeout=0.1),
        EventEmitter.from_url(f"memory://{broker}") as emitter,
    ):
        await emitter.emit(Ordered(shop="acme", n=1))
        await started.wait_for(1, WAIT)

    [delivery] = recorder.settled
    assert (delivery.outcome, delivery.reason) == ("unsettled", "stopped")
    assert recorder.calls[-3:] == [
        ("handler_finished", 1, "CancelledError"),
        ("settled", "unsettled", "stopped"),
        ("stopped", Source("memory", "shop")),
    ]


async def test_a_stop_while_waiting_to_retry_reports_the_attempt_once() -> None:
    """The failed attempt was reported finished; the cut-off wait for the next one adds
    no second report of it, only the message left unsettled."""
    broker, recorder, tried = fresh("broker"), Recorder(), Probe()
    listener = listener_on(broker, recorder)

    @listener.handler(topic="orders.{shop}", event="ordered", retries=2, retry_interval=60)
    async def flaky(event: Event[OrderBody]) -> None:
        tried.add(event.body.n)
        raise Flaky("always")

    async with (
        running(listener, stop_timeout=0.1),
        EventEmitter.from_url(f"memory://{broker}") as emitter,
    ):
        await emitter.emit(Ordered(shop="acme", n=1))
        await tried.wait_for(1, WAIT)
        await eventually(lambda: any(call[0] == "retry" for call in recorder.calls))

    retry = recorder.calls[4]
    assert recorder.calls[2:] == [
        ("handler_started", 1),
        ("handler_finished", 1, "Flaky"),
        retry,
        ("settled", "unsettled", "stopped"),
        ("stopped", Source("memory", "shop")),
    ]
    assert retry[:2] == ("retry", 1)
    assert retry[2] > 0
