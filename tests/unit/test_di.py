"""Point 5: FastAPI-style dependency injection, checked when a handler is registered."""

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from seed_fakes import SyncAckConsumer, Wire, WireProducer
from support import WAIT, eventually

from dispytch import (
    Context,
    Dependency,
    DependencyError,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
    TopicSegment,
)
from dispytch.testing import Probe, running


class Paid(EventBase):
    __topic__ = "invoices.{invoice_id}"
    __event_type__ = "paid"

    invoice_id: int
    amount: int


class Payment(BaseModel):
    invoice_id: int
    amount: int


async def emit_paid(wire: Wire, *invoice_ids: int) -> None:
    emitter = EventEmitter(WireProducer(wire))
    for invoice_id in invoice_ids:
        await emitter.emit(Paid(invoice_id=invoice_id, amount=100))


# -- providers of every kind ---------------------------------------------------------------


def sync_function() -> str:
    return "sync function"


async def async_function() -> str:
    return "async function"


def generator() -> Iterator[str]:
    yield "generator"


async def async_generator() -> AsyncIterator[str]:
    yield "async generator"


@contextlib.contextmanager
def context_manager() -> Iterator[str]:
    yield "context manager"


@contextlib.asynccontextmanager
async def async_context_manager() -> AsyncIterator[str]:
    yield "async context manager"


class ManagerClass:
    def __enter__(self) -> str:
        return "context manager class"

    def __exit__(self, *exc_info: object) -> None:
        return None


class AsyncManagerClass:
    async def __aenter__(self) -> str:
        return "async context manager class"

    async def __aexit__(self, *exc_info: object) -> None:
        return None


PROVIDERS: dict[str, Callable[..., Any]] = {
    "sync function": sync_function,
    "async function": async_function,
    "generator": generator,
    "async generator": async_generator,
    "context manager": context_manager,
    "async context manager": async_context_manager,
    "context manager class": ManagerClass,
    "async context manager class": AsyncManagerClass,
}


@pytest.mark.parametrize(("expected", "provider"), PROVIDERS.items(), ids=PROVIDERS.keys())
async def test_every_kind_of_provider_is_injected(
    wire: Wire, expected: str, provider: Callable[..., Any]
) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(value: Annotated[str, Dependency(provider)]) -> None:
        probe.add(value)

    async with running(listener):
        await emit_paid(wire, 1)
        assert await probe.wait_for(1, WAIT) == [expected]


async def test_a_dependency_can_be_the_parameters_default(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(value: str = Dependency(async_function)) -> None:  # type: ignore[assignment]
        probe.add(value)

    async with running(listener):
        await emit_paid(wire, 1)
        assert await probe.wait_for(1, WAIT) == ["async function"]


async def test_plain_defaults_are_passed_through(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(event: Event[Payment], currency: str = "EUR") -> None:
        probe.add(currency)

    async with running(listener):
        await emit_paid(wire, 1)
        assert await probe.wait_for(1, WAIT) == ["EUR"]


async def test_nested_dependencies_see_event_segments_and_context(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    def invoice_id(value: Annotated[int, TopicSegment(alias="invoice_id")]) -> int:
        return value

    async def amount(event: Event[Payment]) -> int:
        return event.body.amount

    def summary(
        number: Annotated[int, Dependency(invoice_id)],
        total: Annotated[int, Dependency(amount)],
        ctx: Context,
    ) -> str:
        return f"#{number}: {total} ({ctx.event.type})"

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(text: Annotated[str, Dependency(summary)]) -> None:
        probe.add(text)

    async with running(listener):
        await emit_paid(wire, 12)
        assert await probe.wait_for(1, WAIT) == ["#12: 100 (paid)"]


# -- caching -------------------------------------------------------------------------------


async def test_a_dependency_is_resolved_once_per_event(wire: Wire) -> None:
    listener, probe, calls = EventListener(SyncAckConsumer(wire)), Probe(), []

    def connection(event: Event[Payment]) -> int:
        calls.append(event.body.invoice_id)
        return event.body.invoice_id

    def repository(conn: Annotated[int, Dependency(connection)]) -> int:
        return conn

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(
        conn: Annotated[int, Dependency(connection)], repo: Annotated[int, Dependency(repository)]
    ) -> None:
        probe.add((conn, repo))

    async with running(listener):
        await emit_paid(wire, 1, 2)
        await probe.wait_for(2, WAIT)

    assert sorted(calls) == [1, 2], "shared within an event, fresh for the next one"


async def test_a_plain_dependency_asked_for_twice_is_called_once(wire: Wire) -> None:
    listener, probe, calls = EventListener(SyncAckConsumer(wire)), Probe(), []

    def session() -> object:
        calls.append(1)
        return object()

    def fresh() -> object:
        return object()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(
        first: Annotated[object, Dependency(session)],
        second: Annotated[object, Dependency(session)],
        other: Annotated[object, Dependency(fresh, use_cache=False)],
        again: Annotated[object, Dependency(fresh, use_cache=False)],
    ) -> None:
        probe.add((first is second, other is again))

    async with running(listener):
        await emit_paid(wire, 1, 2)
        assert await probe.wait_for(2, WAIT) == [(True, False), (True, False)]
    assert calls == [1, 1], "once per event"


async def test_use_cache_false_resolves_at_every_use(wire: Wire) -> None:
    listener, probe, calls = EventListener(SyncAckConsumer(wire)), Probe(), []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    def twice(value: Annotated[int, Dependency(counter, use_cache=False)]) -> int:
        return value

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(
        first: Annotated[int, Dependency(counter, use_cache=False)],
        second: Annotated[int, Dependency(twice)],
    ) -> None:
        probe.add({first, second})

    async with running(listener):
        await emit_paid(wire, 1)
        assert await probe.wait_for(1, WAIT) == [{1, 2}]


async def test_an_event_and_a_plain_dependency_are_injected_together(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(
        event: Event[Payment], value: Annotated[str, Dependency(sync_function)]
    ) -> None:
        probe.add((event.body, event.topic, value))

    async with running(listener):
        await emit_paid(wire, 7)
        assert await probe.wait_for(1, WAIT) == [
            (Payment(invoice_id=7, amount=100), "invoices.7", "sync function")
        ]


async def test_keyword_only_parameters_are_passed_by_name(wire: Wire) -> None:
    """Handlers are called by position when they can be; keyword-only parameters are
    passed by name, with or without a per-event scope (a segment needs one)."""
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def without_scope(
        event: Event[Payment], *, value: Annotated[str, Dependency(sync_function)]
    ) -> None:
        probe.add(("without scope", event.body.amount, value))

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def with_scope(
        value: Annotated[str, Dependency(sync_function)],
        *,
        invoice_id: Annotated[int, TopicSegment()],
        event: Event[Payment],
    ) -> None:
        probe.add(("with scope", invoice_id, event.body.amount, value))

    async with running(listener):
        await emit_paid(wire, 7)
        assert sorted(await probe.wait_for(2, WAIT)) == [
            ("with scope", 7, 100, "sync function"),
            ("without scope", 100, "sync function"),
        ]


class Amount(BaseModel):
    amount: int


async def test_several_event_parameters_each_get_their_body(wire: Wire) -> None:
    listener, probe = EventListener(SyncAckConsumer(wire)), Probe()

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(
        first: Event[Payment],
        second: Event[Payment],
        other: Event[Amount],
        value: Annotated[str, Dependency(sync_function)],
    ) -> None:
        probe.add((first.body, second.body, other.body, value))

    async with running(listener):
        await emit_paid(wire, 1)
        payment = Payment(invoice_id=1, amount=100)
        assert await probe.wait_for(1, WAIT) == [
            (payment, payment, Amount(amount=100), "sync function")
        ]


# -- errors reported at registration -------------------------------------------------------


def chicken(egg: "Annotated[int, Dependency(lay)]") -> int:
    return egg


def lay(hen: Annotated[int, Dependency(chicken)]) -> int:
    return hen


def narcissus(me: "Annotated[int, Dependency(narcissus)]") -> int:
    return me


def unresolvable(value: "Annotated[int, Dependency(nowhere)]") -> int:  # noqa: F821
    return value


@pytest.mark.parametrize(
    ("dependency", "message"),
    [
        (chicken, r"dependency cycle: .*chicken -> .*lay -> .*chicken"),
        (narcissus, r"dependency cycle: .*narcissus -> .*narcissus"),
        (unresolvable, "nowhere"),
    ],
)
def test_cycles_and_unresolvable_annotations_fail_at_registration(
    dependency: Callable[..., int], message: str
) -> None:
    listener = EventListener()

    async def handle(value: Annotated[int, Dependency(dependency)]) -> None: ...

    with pytest.raises(DependencyError, match=message):
        listener.handler(topic="invoices.{invoice_id}", event="paid")(handle)


def test_a_cycle_in_a_group_handler_fails_when_declared() -> None:
    group = HandlerGroup(default_topic="invoices", default_event="paid")

    async def handle(value: Annotated[int, Dependency(chicken)]) -> None: ...

    with pytest.raises(DependencyError, match="dependency cycle"):
        group.handler()(handle)


async def star_args(*values: int) -> None: ...


async def star_kwargs(**values: int) -> None: ...


async def positional_only(event: Event[Payment], /) -> None: ...


async def unannotated(mystery) -> None:  # type: ignore[no-untyped-def]
    ...


async def unknown_type(mystery: int) -> None: ...


def needs_mystery(mystery: int) -> int:
    return mystery


async def bad_dependency(value: Annotated[int, Dependency(needs_mystery)]) -> None: ...


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (star_args, "'values'"),
        (star_kwargs, "'values'"),
        (positional_only, "'event' is positional-only"),
        (unannotated, "'mystery' has no source"),
        (unknown_type, "'mystery' has no source"),
        (bad_dependency, r"needs_mystery: parameter 'mystery' has no source"),
    ],
    ids=lambda value: getattr(value, "__name__", "message"),
)
def test_bad_signatures_fail_at_registration(handler: Callable[..., Any], message: str) -> None:
    listener = EventListener()

    with pytest.raises(DependencyError, match=message):
        listener.handler(topic="invoices.{invoice_id}", event="paid")(handler)
    assert listener.handlers == []


# -- teardown ------------------------------------------------------------------------------


async def test_teardown_runs_after_the_handler_newest_first(wire: Wire) -> None:
    listener, log = EventListener(SyncAckConsumer(wire)), Probe()

    def session() -> Iterator[str]:
        log.add("session open")
        yield "session"
        log.add("session closed")

    async def transaction(s: Annotated[str, Dependency(session)]) -> AsyncIterator[str]:
        log.add("transaction begin")
        yield "tx"
        log.add("transaction end")

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(tx: Annotated[str, Dependency(transaction)]) -> None:
        log.add("handler")

    async with running(listener):
        await emit_paid(wire, 1)
        await log.wait_for(5, WAIT)

    assert log.items == [
        "session open",
        "transaction begin",
        "handler",
        "transaction end",
        "session closed",
    ]


async def test_teardown_sees_the_handlers_exception(wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener, seen = EventListener(consumer), Probe()

    async def transaction() -> AsyncIterator[str]:
        try:
            yield "tx"
        except LookupError as exc:
            seen.add(exc)
            raise

    @listener.handler(topic="invoices.{invoice_id}", event="paid")
    async def handle(tx: Annotated[str, Dependency(transaction)]) -> None:
        raise LookupError("invoice not found")

    async with running(listener):
        await emit_paid(wire, 1)
        [error] = await seen.wait_for(1, WAIT)
        await eventually(lambda: len(consumer.acked) == 1)

    assert str(error) == "invoice not found"
