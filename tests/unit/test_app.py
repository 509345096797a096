"""App: lifespan order, app-scoped dependencies, dependency overrides, health."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from support import eventually, fresh

from dispytch import (
    App,
    Consumer,
    Dependency,
    DependencyError,
    Event,
    EventBase,
    EventEmitter,
    EventListener,
    HandlerGroup,
    Message,
)


class Ping(EventBase):
    __topic__ = "pings"
    __event_type__ = "ping"

    n: int


def memory_listener(url: str, group: str = "g") -> EventListener:
    return EventListener.from_url(url, group=group)


async def test_lifespan_dependencies_and_listeners_start_and_stop_in_order() -> None:
    url, log = f"memory://{fresh('app')}", []

    async def pool() -> AsyncIterator[str]:
        log.append("pool entered")
        yield "pool"
        log.append("pool exited")

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        log.append("lifespan entered")
        yield
        log.append("lifespan exited")

    listener = memory_listener(url)

    @listener.handler(topic="pings", event="ping")
    async def handle(event: Event[Any], db: Annotated[str, Dependency(pool, scope="app")]) -> None:
        log.append(f"handled {event.body['n']} with {db}")

    emitter = EventEmitter.from_url(url)
    async with App([listener], [emitter], lifespan=lifespan) as app:
        assert (await app.health()).ready
        await emitter.emit(Ping(n=1))
        await eventually(lambda: "handled 1 with pool" in log)
    assert log == [
        "lifespan entered",
        "pool entered",
        "handled 1 with pool",
        "pool exited",
        "lifespan exited",
    ]
    assert not (await app.health()).ready


async def test_overrides_replace_nested_dependencies_app_and_listener_level() -> None:
    url, seen = f"memory://{fresh('app')}", []

    def settings() -> str:
        return "production"

    def client(config: Annotated[str, Dependency(settings)]) -> str:
        return f"client({config})"

    first, second = memory_listener(url, "a"), memory_listener(url, "b")
    for name, listener in (("first", first), ("second", second)):

        @listener.handler(topic="pings", event="ping")
        async def handle(c: Annotated[str, Dependency(client)], who: str = name) -> None:
            seen.append((who, c))

    app = App([first, second])
    app.dependency_overrides[settings] = lambda: "test"
    second.dependency_overrides[client] = lambda: "fake client"
    async with app, EventEmitter.from_url(url) as emitter:
        await emitter.emit(Ping(n=1))
        await eventually(lambda: len(seen) == 2)
    assert sorted(seen) == [("first", "client(test)"), ("second", "fake client")]


async def test_an_app_scoped_dependency_cannot_take_per_event_values() -> None:
    def per_event(event: Event[Any]) -> int:
        return 1

    listener = memory_listener(f"memory://{fresh('app')}")
    with pytest.raises(DependencyError, match=r"app-scoped.*'event'"):

        @listener.handler(topic="pings", event="ping")
        async def handle(x: Annotated[int, Dependency(per_event, scope="app")]) -> None: ...


async def test_a_failing_lifespan_starts_no_listener() -> None:
    listener = memory_listener(f"memory://{fresh('app')}")

    @listener.handler(topic="pings", event="ping")
    async def handle(event: Event[Any]) -> None: ...

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        raise RuntimeError("database down")
        yield

    with pytest.raises(RuntimeError, match="database down"):
        await App([listener], lifespan=lifespan).start()
    assert not (await listener.health()).consuming


async def test_a_listener_alone_enters_its_app_scoped_dependencies_itself() -> None:
    url, log = f"memory://{fresh('app')}", []

    def counter() -> Iterator[list[int]]:
        log.append("entered")
        yield []
        log.append("exited")

    listener = memory_listener(url)

    @listener.handler(topic="pings", event="ping")
    async def handle(
        event: Event[Any], seen: Annotated[list[int], Dependency(counter, scope="app")]
    ) -> None:
        seen.append(event.body["n"])
        log.append(f"seen {seen}")

    await listener.start()
    async with EventEmitter.from_url(url) as emitter:
        await emitter.emit(Ping(n=1))
        await emitter.emit(Ping(n=2))
        await eventually(lambda: "seen [1, 2]" in log)
    await listener.stop()
    assert log == ["entered", "seen [1]", "seen [1, 2]", "exited"]


async def test_a_listener_whose_handlers_are_all_stuck_is_not_ready() -> None:
    url, release = f"memory://{fresh('app')}", asyncio.Event()
    listener = EventListener.from_url(
        url, group="g", listener_options={"max_in_flight": 1, "ordered": False}
    )

    @listener.handler(topic="pings", event="ping")
    async def stuck(event: Event[Any]) -> None:
        await release.wait()

    async with App([listener]) as app, EventEmitter.from_url(url) as emitter:
        await emitter.emit_many(Ping(n=n) for n in range(2))
        await asyncio.sleep(0.05)  # the listener waits for room: it does not poll meanwhile
        health = await app.health(stale_after=0.01)
        release.set()
    assert not health.ready
    [stale] = health.listeners
    assert stale.consuming
    assert stale.in_flight == 1
    assert "no poll for" in str(stale.reason)


class BrokenConsumer(Consumer):
    """A consumer whose connection breaks after its start."""

    async def listen(self) -> AsyncIterator[Message]:
        raise ConnectionError("connection lost")
        yield

    def ack(self, msg: Message) -> None: ...


async def test_a_listener_that_fails_stops_the_app_and_run_raises_its_error() -> None:
    url, log = f"memory://{fresh('app')}", []

    async def pool() -> AsyncIterator[None]:
        yield
        log.append("pool exited")

    healthy = memory_listener(url)

    @healthy.handler(topic="pings", event="ping")
    async def handle(
        event: Event[Any], p: Annotated[None, Dependency(pool, scope="app")]
    ) -> None: ...

    broken = EventListener(BrokenConsumer())
    broken.add_handler_group(HandlerGroup())
    with pytest.raises(ConnectionError, match="connection lost"):
        await App([healthy, broken]).run()
    assert log == ["pool exited"]
    assert not (await healthy.health()).consuming
