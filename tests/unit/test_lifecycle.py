"""Point 8: `async with`, listen() until stop(timeout=...), graceful stop, and start()/stop()
of producers and consumers."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from seed_fakes import AsyncAckConsumer, SyncAckConsumer, Wire, WireProducer
from support import WAIT, eventually, let_run

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.listener.consumer import Message
from dispytch.testing import Probe, running


class Tick(EventBase):
    __topic__ = "ticks"
    __event_type__ = "tick"

    n: int


class TickBody(BaseModel):
    n: int


class StartStopProducer(WireProducer):
    """A user's producer with a connection to open and close."""

    def __init__(self, wire: Wire, log: list[str]) -> None:
        super().__init__(wire)
        self.log = log

    async def start(self) -> None:
        self.log.append("producer started")

    def stop(self) -> None:
        self.log.append("producer stopped")


class StartStopConsumer(AsyncAckConsumer):
    """A user's consumer with a connection to open and close."""

    def __init__(self, wire: Wire, log: list[str]) -> None:
        super().__init__(wire)
        self.log = log
        self.release = asyncio.Event()
        self.release.set()

    async def start(self) -> None:
        self.log.append("consumer starting")
        await self.release.wait()
        self.log.append("consumer started")

    async def stop(self) -> None:
        self.log.append("consumer stopped")


def ticking_listener(consumer: SyncAckConsumer | AsyncAckConsumer, **options: Any) -> EventListener:
    listener = EventListener(consumer, **options)

    @listener.handler(topic="ticks", event="tick")
    async def tick(event: Event[TickBody]) -> None: ...

    return listener


def put_tick(wire: Wire, n: int) -> None:
    payload = f'{{"id": "{n}", "type": "tick", "body": {{"n": {n}}}, "timestamp": 1}}'
    wire.put("ticks", payload.encode())


def acked_ticks(consumer: SyncAckConsumer | AsyncAckConsumer) -> list[int]:
    return [json.loads(msg.payload)["body"]["n"] for msg in consumer.acked]


# -- emitter ---------------------------------------------------------------------------------


async def test_the_emitter_starts_and_stops_its_producer(wire: Wire) -> None:
    log: list[str] = []

    async with EventEmitter(StartStopProducer(wire, log)) as emitter:
        assert log == ["producer started"]
        await emitter.emit(Tick(n=1))

    assert log == ["producer started", "producer stopped"]
    assert len(wire.sent) == 1


# -- listener start and stop of parts ------------------------------------------------------


async def test_the_listener_starts_and_stops_consumer_and_producer(wire: Wire) -> None:
    log: list[str] = []
    consumer = StartStopConsumer(wire, log)
    listener = ticking_listener(consumer, producer=StartStopProducer(Wire(), log))

    async with running(listener):
        assert log == ["producer started", "consumer starting", "consumer started"]

    assert log[3:] == ["consumer stopped", "producer stopped"]


async def test_parts_already_started_are_stopped_when_the_consumer_fails_to_start(
    wire: Wire,
) -> None:
    log: list[str] = []

    class Unreachable(StartStopConsumer):
        async def start(self) -> None:
            raise ConnectionRefusedError("broker down")

    listener = ticking_listener(Unreachable(wire, log), producer=StartStopProducer(Wire(), log))

    with pytest.raises(ConnectionRefusedError, match="broker down"):
        await listener.listen()
    assert log == ["producer started", "producer stopped"]


async def test_a_listener_needs_a_consumer_or_a_backend() -> None:
    with pytest.raises(TypeError, match="needs a consumer"):
        await EventListener().listen()


async def test_a_backend_listener_without_handlers_refuses_to_listen(memory_url: str) -> None:
    listener = EventListener.from_url(memory_url, group="g")

    with pytest.raises(RuntimeError, match="no handlers"):
        await listener.listen()


def test_a_listener_with_a_consumer_cannot_also_use_a_backend(wire: Wire) -> None:
    with pytest.raises(TypeError, match="cannot also use a backend"):
        EventListener(SyncAckConsumer(wire)).use_backend("memory://", group="g")


def test_a_backend_listener_needs_a_group() -> None:
    with pytest.raises(ValueError, match="non-empty consumer group"):
        EventListener.from_url("memory://", group="")


# -- listen until stop -----------------------------------------------------------------------


async def test_listen_runs_until_stop(wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener = ticking_listener(consumer)
    listening = asyncio.create_task(listener.listen())
    await listener.wait_ready()

    put_tick(wire, 1)
    await eventually(lambda: len(consumer.acked) == 1)
    assert not listening.done()

    await listener.stop(timeout=WAIT)
    assert listening.done()
    await listening


async def test_stop_lets_in_flight_handlers_finish_and_acks_them(wire: Wire) -> None:
    consumer, release, started = SyncAckConsumer(wire), asyncio.Event(), Probe()
    listener = EventListener(consumer)

    @listener.handler(topic="ticks", event="tick")
    async def slow(event: Event[TickBody]) -> None:
        started.add(event.body.n)
        await release.wait()

    listening = asyncio.create_task(listener.listen())
    await listener.wait_ready()
    put_tick(wire, 1)
    await started.wait_for(1, WAIT)

    stopping = asyncio.create_task(listener.stop(timeout=WAIT))
    await let_run()
    put_tick(wire, 2)
    await let_run()
    release.set()
    await stopping
    await listening

    assert acked_ticks(consumer) == [1]
    assert started.items == [1], "nothing pulled after stop()"
    assert wire.queue.qsize() == 1


async def test_stop_does_not_ack_what_did_not_finish_in_time(wire: Wire) -> None:
    consumer, started, cancelled = SyncAckConsumer(wire), Probe(), Probe()
    listener = EventListener(consumer)

    @listener.handler(topic="ticks", event="tick")
    async def maybe_stuck(event: Event[TickBody]) -> None:
        started.add(event.body.n)
        if event.body.n == 2:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.add(event.body.n)
                raise

    async with running(listener, stop_timeout=0.2):
        put_tick(wire, 1)
        put_tick(wire, 2)
        await started.wait_for(2, WAIT)
        await eventually(lambda: len(consumer.acked) == 1)

    assert acked_ticks(consumer) == [1], "only the one that finished"
    assert cancelled.items == [2]


async def test_listen_returns_when_the_consumer_runs_out_after_finishing_its_work(
    wire: Wire,
) -> None:
    consumer = SyncAckConsumer(wire)
    listener = ticking_listener(consumer)
    for n in range(3):
        put_tick(wire, n)
    wire.close()

    await asyncio.wait_for(listener.listen(), WAIT)

    assert sorted(acked_ticks(consumer)) == [0, 1, 2]


async def test_async_with_starts_and_stops_the_listener(wire: Wire) -> None:
    log: list[str] = []
    consumer = StartStopConsumer(wire, log)
    listener = ticking_listener(consumer)

    async with listener:
        assert log == ["consumer starting", "consumer started"]
        put_tick(wire, 1)
        await eventually(lambda: len(consumer.acked) == 1)

    assert log[-1] == "consumer stopped"
    assert acked_ticks(consumer) == [1]


async def test_start_returns_consuming_and_stop_ends_it(wire: Wire) -> None:
    log: list[str] = []
    consumer = StartStopConsumer(wire, log)
    listener = ticking_listener(consumer, producer=StartStopProducer(Wire(), log))

    await listener.start()
    assert log == ["producer started", "consumer starting", "consumer started"]
    put_tick(wire, 1)
    await eventually(lambda: len(consumer.acked) == 1)
    await listener.stop(timeout=WAIT)

    assert log[3:] == ["consumer stopped", "producer stopped"]
    await listener.start()
    with pytest.raises(RuntimeError, match="cannot start while the listener is running"):
        await listener.start()
    await listener.stop(timeout=WAIT)


async def test_stop_raises_what_crashed_the_pull_loop(wire: Wire) -> None:
    log: list[str] = []

    class Broken(StartStopConsumer):
        async def listen(self) -> AsyncIterator[Message]:
            raise ConnectionResetError("connection lost")
            yield  # an async generator

    listener = ticking_listener(Broken(wire, log))
    await listener.start()
    await eventually(lambda: log[-1:] == ["consumer stopped"])

    with pytest.raises(ConnectionResetError, match="connection lost"):
        await listener.stop(timeout=WAIT)
    await listener.stop(timeout=WAIT)  # raised once only


async def test_listen_raises_what_crashed_the_pull_loop_and_stop_then_does_not(
    wire: Wire,
) -> None:
    class Broken(SyncAckConsumer):
        async def listen(self) -> AsyncIterator[Message]:
            raise ConnectionResetError("connection lost")
            yield  # an async generator

    listener = ticking_listener(Broken(wire))

    with pytest.raises(ConnectionResetError, match="connection lost"):
        await listener.listen()
    await listener.stop(timeout=WAIT)


async def test_cancelling_listen_stops_the_listener(wire: Wire) -> None:
    log: list[str] = []
    listener = ticking_listener(StartStopConsumer(wire, log))
    listening = asyncio.create_task(listener.listen())
    await listener.wait_ready()

    listening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listening

    assert log[-1] == "consumer stopped"
    async with listener:  # idle again
        pass


async def test_stop_while_the_consumer_is_starting_ends_listen(wire: Wire) -> None:
    log: list[str] = []
    consumer = StartStopConsumer(wire, log)
    consumer.release.clear()
    listener = ticking_listener(consumer)
    put_tick(wire, 1)

    listening = asyncio.create_task(listener.listen())
    await eventually(lambda: log == ["consumer starting"])
    stopping = asyncio.create_task(listener.stop(timeout=WAIT))
    await let_run()
    consumer.release.set()

    await asyncio.wait_for(asyncio.gather(listening, stopping), WAIT)
    assert consumer.acked == []
    assert log[-1] == "consumer stopped"


async def test_a_running_listener_refuses_changes_and_a_second_listen(wire: Wire) -> None:
    listener = ticking_listener(SyncAckConsumer(wire))

    async def handle() -> None: ...

    async def middleware(ctx: object, call_next: object) -> None: ...

    async with running(listener):
        with pytest.raises(RuntimeError, match="cannot add handlers while the listener is running"):
            listener.handler(topic="other", event="tick")(handle)
        with pytest.raises(RuntimeError, match="cannot add middleware"):
            listener.add_middleware(middleware)
        with pytest.raises(RuntimeError, match="cannot listen"):
            await listener.listen()


async def test_a_stopped_listener_can_listen_again(wire: Wire) -> None:
    consumer = SyncAckConsumer(wire)
    listener = ticking_listener(consumer)

    for n in range(2):
        async with running(listener):
            put_tick(wire, n)
            await eventually(lambda: len(consumer.acked) == n + 1)  # noqa: B023

    assert len(consumer.acked) == 2
