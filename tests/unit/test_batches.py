"""Batch handlers on the memory backend: what registration refuses, dependencies resolved
once per batch, instrumentation per message, a message matched by a single-event handler
and a batch handler, a graceful stop running open batches, and the test client."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from support import WAIT, fresh, let_run

from dispytch import (
    Batch,
    BatchFailed,
    Context,
    Dependency,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    TopicSegment,
)
from dispytch.backends.memory import get_broker
from dispytch.instrumentation import Delivery, HandlerCall, Instrumentation
from dispytch.routing import TopicPattern
from dispytch.testing import Probe, TestClient, running


class Row(EventBase):
    __topic__ = "rows.{table}"
    __event_type__ = "row"

    table: str
    n: int


class RowBody(BaseModel):
    table: str
    n: int


def memory_listener(**options: Any) -> tuple[EventListener, str]:
    url = f"memory://{fresh('broker')}"
    return EventListener.from_url(url, group=fresh("group"), listener_options=options), url


# -- registration ------------------------------------------------------------------------


def test_a_batch_handler_needs_a_list_of_events() -> None:
    listener, _ = memory_listener()
    with pytest.raises(TypeError, match=r"needs a parameter annotated list\[Event\[Body\]\]"):

        @listener.handler(topic="rows", event="row", batch=Batch())
        async def one(event: Event[RowBody]) -> None: ...


def test_a_single_event_handler_cannot_take_a_list_of_events() -> None:
    listener, _ = memory_listener()
    with pytest.raises(TypeError, match=r"only a batch handler gets: pass batch=Batch"):

        @listener.handler(topic="rows", event="row")
        async def many(events: list[Event[RowBody]]) -> None: ...


def table_of(table: Annotated[str, TopicSegment()]) -> str:
    return table


def test_a_batch_handler_cannot_ask_for_one_events_values() -> None:
    listener, _ = memory_listener()
    with pytest.raises(TypeError, match="asks for one event's value"):

        @listener.handler(topic="rows.{table}", event="row", batch=Batch())
        async def by_table(
            events: list[Event[RowBody]], table: Annotated[str, Dependency(table_of)]
        ) -> None: ...

    with pytest.raises(TypeError, match="asks for one event's value"):

        @listener.handler(topic="rows", event="row", batch=Batch())
        async def with_context(events: list[Event[RowBody]], ctx: Context) -> None: ...


def test_a_batch_handler_takes_no_middleware() -> None:
    listener, _ = memory_listener()

    async def mw(ctx: Context, call_next: Any) -> Any:
        return await call_next(ctx)

    with pytest.raises(TypeError, match="middleware wraps single-event calls"):

        @listener.handler(topic="rows", event="row", batch=Batch(), middleware=[mw])
        async def store(events: list[Event[RowBody]]) -> None: ...


def test_batches_larger_than_max_in_flight_are_refused() -> None:
    listener, _ = memory_listener(max_in_flight=100)
    with pytest.raises(ValueError, match=r"max_in_flight=100 .* could never fill"):

        @listener.handler(topic="rows", event="row", batch=Batch(max_size=500))
        async def store(events: list[Event[RowBody]]) -> None: ...


@pytest.mark.parametrize(("size", "wait"), [(0, 0.1), (10, -1.0)])
def test_batch_settings_are_checked(size: int, wait: float) -> None:
    with pytest.raises(ValueError, match="Batch max_"):
        Batch(max_size=size, max_wait=wait)


# -- running -----------------------------------------------------------------------------


made: list[int] = []


def connection() -> int:
    made.append(len(made))
    return made[-1]


@pytest.mark.asyncio
async def test_dependencies_are_resolved_once_per_batch() -> None:
    listener, url = memory_listener()
    made.clear()
    calls = Probe()

    @listener.handler(topic="rows.{table}", event="row", batch=Batch(max_size=10, max_wait=30))
    async def store(
        events: list[Event[RowBody]], conn: Annotated[int, Dependency(connection)]
    ) -> None:
        calls.add((conn, [e.body.n for e in events]))

    async with running(listener), EventEmitter.from_url(url) as emitter:
        for n in range(20):
            await emitter.emit(Row(table="t", n=n))
        await calls.wait_for(2, WAIT)
    assert calls.items == [(0, list(range(10))), (1, list(range(10, 20)))]
    assert made == [0, 1]


class Reported(Instrumentation):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def message_received(self, delivery: Delivery) -> None:
        self.seen.append(("received", None))

    def handler_started(self, call: HandlerCall) -> None:
        self.seen.append(("started", call.attempt))

    def handler_finished(self, call: HandlerCall) -> None:
        self.seen.append(("finished", type(call.error).__name__ if call.error else None))

    def retry_scheduled(self, call: HandlerCall, delay: float) -> None:
        self.seen.append(("retry", call.attempt))

    def message_settled(self, delivery: Delivery) -> None:
        self.seen.append(("settled", (delivery.outcome, delivery.reason)))


@pytest.mark.asyncio
async def test_instrumentation_hears_of_every_message_of_a_batch() -> None:
    listener, url = memory_listener()
    reported = Reported()
    listener.add_instrumentation(reported)
    settled = Probe()

    @listener.handler(
        topic="rows.{table}",
        event="row",
        batch=Batch(max_size=3, max_wait=30),
        retries=1,
        retry_interval=0.01,
    )
    async def store(events: list[Event[RowBody]]) -> None:
        failed = [e for e in events if e.body.n == 1]
        if failed:
            raise BatchFailed(failed=failed, error=KeyError("n"))

    class Settled(Instrumentation):
        def message_settled(self, delivery: Delivery) -> None:
            settled.add(delivery)

    listener.add_instrumentation(Settled())
    async with running(listener), EventEmitter.from_url(url) as emitter:
        for n in range(3):
            await emitter.emit(Row(table="t", n=n))
        await settled.wait_for(3, WAIT)
    kinds = [kind for kind, _ in reported.seen]
    assert kinds.count("received") == 3
    assert kinds.count("started") == 3 + 1, "three events, then the failed one again"
    assert ("retry", 1) in reported.seen
    finished = [value for kind, value in reported.seen if kind == "finished"]
    assert sorted(finished, key=str) == sorted([None, None, "KeyError", "KeyError"], key=str)
    outcomes = sorted(str(value) for kind, value in reported.seen if kind == "settled")
    assert outcomes == sorted(
        [str(("ack", None)), str(("ack", None)), str(("dead_letter", "handler_failed"))]
    )


@pytest.mark.asyncio
async def test_a_message_for_a_single_and_a_batch_handler_settles_once_after_both() -> None:
    listener, url = memory_listener()
    singles, batches, settled = Probe(), Probe(), Probe()

    @listener.handler(topic="rows.{table}", event="row")
    async def one(event: Event[RowBody]) -> None:
        singles.add(event.body.n)

    @listener.handler(topic="rows.{table}", event="row", batch=Batch(max_size=4, max_wait=30))
    async def many(events: list[Event[RowBody]]) -> None:
        batches.add([e.body.n for e in events])

    class Settled(Instrumentation):
        def message_settled(self, delivery: Delivery) -> None:
            settled.add(delivery.outcome)

    listener.add_instrumentation(Settled())
    async with running(listener), EventEmitter.from_url(url) as emitter:
        for n in range(4):
            await emitter.emit(Row(table="t", n=n))
        await settled.wait_for(4, WAIT)
        await asyncio.sleep(0.05)
    assert singles.items == [0, 1, 2, 3]
    assert batches.items == [[0, 1, 2, 3]]
    assert settled.items == ["ack"] * 4


@pytest.mark.asyncio
async def test_stop_runs_open_batches_without_waiting_for_max_wait() -> None:
    listener, url = memory_listener()
    handled = Probe()

    @listener.handler(topic="rows.{table}", event="row", batch=Batch(max_size=100, max_wait=600))
    async def store(events: list[Event[RowBody]]) -> None:
        handled.add([e.body.n for e in events])

    async with EventEmitter.from_url(url) as emitter:
        await listener.start()
        for n in range(3):
            await emitter.emit(Row(table="t", n=n))
        await asyncio.sleep(0.05)
        assert handled.items == [], "the batch waits for more events"
        await listener.stop(timeout=WAIT)
    assert handled.items == [[0, 1, 2]], "stop() ran the open batch"


@pytest.mark.asyncio
async def test_batch_handlers_run_under_the_test_client() -> None:
    listener = EventListener.from_url("kafka://localhost:1", group="rows")
    stored = Probe()

    @listener.handler(topic="rows.{table}", event="row", batch=Batch(max_size=10, max_wait=0.01))
    async def store(events: list[Event[RowBody]]) -> None:
        if any(e.body.n < 0 for e in events):
            raise BatchFailed(failed=[e for e in events if e.body.n < 0])
        stored.add([e.body.n for e in events])

    async with TestClient(listener, raise_errors=False) as client:
        await client.emit(Row(table="t", n=1))
        await client.emit(Row(table="t", n=-1))
    assert stored.items == [[1]]
    with pytest.raises(ValueError, match="is a batch handler: the test client does not record"):
        client.calls(store)
    [letter] = client.dead_letters
    assert (letter.reason, letter.attempts) == ("handler_failed", 1)
    assert letter.handler is not None
    assert letter.handler.endswith("store")


@pytest.mark.asyncio
async def test_max_in_flight_counts_the_messages_of_batches() -> None:
    name, group = fresh("broker"), fresh("group")
    get_broker(name).join(group, [TopicPattern("rows.{table}")])
    async with EventEmitter.from_url(f"memory://{name}") as emitter:
        for n in range(25):
            await emitter.emit(Row(table="t", n=n))
    listener = EventListener.from_url(
        f"memory://{name}", group=group, listener_options={"max_in_flight": 10}
    )
    release, calls = asyncio.Event(), Probe()

    @listener.handler(topic="rows.{table}", event="row", batch=Batch(max_size=10, max_wait=0.05))
    async def store(events: list[Event[RowBody]]) -> None:
        calls.add([e.body.n for e in events])
        await release.wait()

    async with running(listener):
        await calls.wait_for(1, WAIT)
        await let_run()
        assert (await listener.health()).in_flight == 10, "no message pulled past the bound"
        assert calls.items == [list(range(10))]
        release.set()
        await calls.wait_for(3, WAIT)
    assert calls.items == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
