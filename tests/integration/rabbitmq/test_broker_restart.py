"""The node stops and starts again mid-stream: emitters retry or fail clearly, the listener
reconnects and resumes, and no confirmed event is lost."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel

from brokers import RabbitMQServer
from dispytch import Event, EventBase, EventEmitter, EventListener, ProducerTimeout
from dispytch.instrumentation import Instrumentation, Source
from dispytch.testing import Probe, running

pytestmark = pytest.mark.rabbitmq

EVENTS = 600
STALL_LIMIT = 5.0  # seconds the event loop may go without running a ready task


class Ping(EventBase):
    __topic__ = "{route}"
    __event_type__ = "restart.ping"

    route: str
    seq: int


class Body(BaseModel):
    seq: int


@pytest.fixture
async def own_server() -> AsyncIterator[RabbitMQServer]:
    """A node of this test's own: the session's node must never restart."""
    server = RabbitMQServer()
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="aiormq 6 (the newest for Python 3.10) can leave a publish racing a connection "
    "close waiting forever on its drain future; aiormq 7 (Python 3.11+) fixed it",
)
async def test_node_restart_mid_stream(own_server: RabbitMQServer) -> None:
    url, topic = own_server.url, f"restart.{uuid.uuid4().hex[:8]}"
    fast: dict[str, Any] = {"url": url, "reconnect_interval": 0.2}
    listener = EventListener.from_backend("rabbitmq", group="restart", **fast)
    seen, reconnects = Probe(), Reconnects()
    listener.add_instrumentation(reconnects)

    @listener.handler(topic=topic, event=Ping.__event_type__)
    async def record(event: Event[Body]) -> None:
        seen.add(event.body.seq)

    bystander = EventListener.from_backend("rabbitmq", group="bystander", **fast)

    @bystander.handler(topic=topic, event=Ping.__event_type__)
    async def ignore(event: Event[Body]) -> None: ...

    patient = EventEmitter.from_backend("rabbitmq", publish_timeout=60, **fast)
    impatient = EventEmitter.from_backend("rabbitmq", publish_timeout=0.5, **fast)
    confirmed: set[int] = set()

    async def emit_all() -> None:
        lanes = 8

        async def lane(first: int) -> None:
            for seq in range(first, EVENTS, lanes):
                await patient.emit(Ping(route=topic, seq=seq))
                confirmed.add(seq)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(lane(i) for i in range(lanes)))

    bystanding = asyncio.create_task(bystander.listen())
    async with LoopLag() as lag, running(listener), patient, impatient:
        await bystander.wait_ready()
        stream = asyncio.create_task(emit_all())
        await seen.wait_for(100, 30)

        await asyncio.to_thread(own_server.stop)
        with pytest.raises(ProducerTimeout, match="lost the connection to RabbitMQ"):
            await impatient.emit(Ping(route=topic, seq=-1))
        await asyncio.wait_for(bystander.stop(timeout=1), 10)  # stopping needs no node
        await bystanding
        assert lag.worst < STALL_LIMIT, f"the loop stalled for {lag.worst:.1f}s after the stop"
        during = asyncio.create_task(patient.emit(Ping(route=topic, seq=EVENTS)))
        await asyncio.sleep(0.5)
        assert not during.done(), "the patient emitter waits for the node instead of failing"
        await asyncio.to_thread(own_server.start)

        await asyncio.wait_for(asyncio.gather(stream, during), 90)
        await impatient.emit(Ping(route=topic, seq=EVENTS + 1))  # it reconnected as well
        confirmed |= {EVENTS, EVENTS + 1}
        await _until(lambda: set(seen.items) >= confirmed, 60)

    assert lag.worst < STALL_LIMIT, f"the event loop stalled for {lag.worst:.1f}s"
    assert confirmed == set(range(EVENTS + 2)), "every emit was confirmed, waiting out the restart"
    assert -1 not in seen.items, "the emit that failed was not delivered after all"
    assert reconnects.sources == [Source("rabbitmq", "restart")], "the reconnect was reported"


class Reconnects(Instrumentation):
    def __init__(self) -> None:
        self.sources: list[Source] = []

    def consumer_reconnected(self, source: Source) -> None:
        self.sources.append(source)


class LoopLag:
    """The longest the event loop went without running a ready task, while in the block: a
    publish retried in a loop that never yields would stall every emitter and listener, and
    the reconnect too."""

    TICK = 0.05

    def __init__(self) -> None:
        self.worst = 0.0
        self._watching: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._watching = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.TICK)
            self.worst = max(self.worst, loop.time() - before - self.TICK)


async def _until(check: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.05)
