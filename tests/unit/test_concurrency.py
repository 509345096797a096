"""Point 7: a bound on in-flight messages (backpressure) and ordering per key."""

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel
from seed_fakes import SyncAckConsumer, Wire
from support import WAIT, eventually, let_run

from dispytch import Event, EventListener
from dispytch.testing import Probe, running


class Step(BaseModel):
    name: str


def put_step(wire: Wire, name: str, key: str | None = None) -> None:
    payload = f'{{"id": "{name}", "type": "step", "body": {{"name": "{name}"}}, "timestamp": 1}}'
    wire.put("steps", payload.encode(), key=key)


class Gates:
    """One gate per message name; a handler waits at its gate until the test opens it."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = {}
        self._all_open = False

    def __getitem__(self, name: str) -> asyncio.Event:
        gate = self._gates.setdefault(name, asyncio.Event())
        if self._all_open:
            gate.set()
        return gate

    def open_all(self) -> None:
        """Open every gate, including those of messages not yet handled."""
        self._all_open = True
        for gate in self._gates.values():
            gate.set()


def gated_listener(
    consumer: SyncAckConsumer, gates: Gates, log: Probe, **options: Any
) -> EventListener:
    listener = EventListener(consumer, **options)

    @listener.handler(topic="steps", event="step")
    async def step(event: Event[Step]) -> None:
        log.add(f"start {event.body.name}")
        await gates[event.body.name].wait()
        log.add(f"end {event.body.name}")

    return listener


async def test_the_listener_stops_pulling_at_max_in_flight(wire: Wire) -> None:
    consumer, gates, log = SyncAckConsumer(wire), Gates(), Probe()
    listener = gated_listener(consumer, gates, log, max_in_flight=2)
    for n in range(6):
        put_step(wire, f"m{n}")

    async with running(listener):
        await log.wait_for(2, WAIT)
        await let_run()
        assert log.items == ["start m0", "start m1"]
        assert wire.queue.qsize() == 4, "nothing pulled beyond the two in flight"

        gates["m0"].set()
        await log.wait_for(4, WAIT)
        await let_run()
        assert log.items[2:] == ["end m0", "start m2"]
        assert wire.queue.qsize() == 3

        gates.open_all()
        await eventually(lambda: len(consumer.acked) == 6)


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
        EventListener(max_in_flight=0)


async def test_messages_sharing_a_key_run_one_after_another(wire: Wire) -> None:
    consumer, gates, log = SyncAckConsumer(wire), Gates(), Probe()
    listener = gated_listener(consumer, gates, log)
    put_step(wire, "a1", key="a")
    put_step(wire, "a2", key="a")
    put_step(wire, "b1", key="b")

    async with running(listener):
        gates["b1"].set()
        await log.wait_for(3, WAIT)
        await let_run()
        assert log.items == ["start a1", "start b1", "end b1"], "a2 waits for a1; b1 does not"

        gates.open_all()
        await log.wait_for(6, WAIT)

    assert log.items[3:] == ["end a1", "start a2", "end a2"]


async def test_keys_that_come_back_after_their_lane_emptied_keep_their_order(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, gates, log = SyncAckConsumer(wire), Gates(), Probe()
    listener = gated_listener(consumer, gates, log)

    async with running(listener, stop_timeout=5.0):
        for n in range(3):  # every lane empties before its key comes back
            put_step(wire, f"a{n}", key="a")
            put_step(wire, f"b{n}", key="b")
            gates[f"a{n}"].set()
            gates[f"b{n}"].set()
            await log.wait_for(4 * (n + 1), WAIT)
            await let_run()
        put_step(wire, "a3", key="a")
        put_step(wire, "a4", key="a")
        put_step(wire, "b3", key="b")
        gates["b3"].set()
        await log.wait_for(15, WAIT)
        await let_run()
        assert log.items[12:] == ["start a3", "start b3", "end b3"], "a4 waits for a3"

        gates.open_all()
        await eventually(lambda: len(consumer.acked) == 9)

    assert log.items[15:] == ["end a3", "start a4", "end a4"]
    assert "did not finish" not in caplog.text, "idle lanes do not hold up stopping"


async def test_ordering_per_key_can_be_turned_off(wire: Wire) -> None:
    consumer, gates, log = SyncAckConsumer(wire), Gates(), Probe()
    listener = gated_listener(consumer, gates, log, ordered=False)
    put_step(wire, "a1", key="a")
    put_step(wire, "a2", key="a")

    async with running(listener):
        await log.wait_for(2, WAIT)
        assert log.items == ["start a1", "start a2"], "a2 runs while a1 is still in flight"
        gates.open_all()
        await eventually(lambda: len(consumer.acked) == 2)


async def test_order_holds_per_key_under_load(wire: Wire) -> None:
    consumer, seen = SyncAckConsumer(wire), Probe()
    listener = EventListener(consumer, max_in_flight=8)

    @listener.handler(topic="steps", event="step")
    async def step(event: Event[Step]) -> None:
        for _ in range(int(event.body.name.split("-")[1]) % 3):
            await asyncio.sleep(0)
        seen.add(event.body.name)

    names = [f"{key}-{n}" for n in range(40) for key in "abcd"]
    for name in names:
        put_step(wire, name, key=name.split("-")[0])

    async with running(listener):
        await seen.wait_for(len(names), WAIT)

    for key in "abcd":
        mine = [name for name in seen.items if name.startswith(key)]
        assert mine == [f"{key}-{n}" for n in range(40)]


@pytest.mark.parametrize("burst", [True, False], ids=["queued-at-once", "one-by-one"])
async def test_messages_without_a_key_run_concurrently_up_to_the_bound(
    wire: Wire, burst: bool
) -> None:
    gates, log = Gates(), Probe()
    consumer = SyncAckConsumer(wire)
    listener = gated_listener(consumer, gates, log, max_in_flight=8)
    async with running(listener):
        for n in range(12):
            put_step(wire, f"m{n}")
            if not burst:
                await let_run()
        started = await log.wait_for(8, WAIT)
        await let_run()
        assert len(log.items) == 8, "eight handlers in flight at once, and no more"
        assert all(item.startswith("start") for item in started)
        gates.open_all()
        await log.wait_for(24, WAIT)
    assert len(consumer.acked) == 12


async def test_a_handler_keeps_one_task_of_its_own_across_its_awaits(wire: Wire) -> None:
    """What `asyncio.timeout`, task groups and cancel scopes (httpx's) rely on, for
    messages that start eagerly (arriving one at a time) and those of a burst alike."""
    consumer, seen = SyncAckConsumer(wire), Probe()
    listener = EventListener(consumer)

    @listener.handler(topic="steps", event="step")
    async def step(event: Event[Step]) -> None:
        first = asyncio.current_task()
        await asyncio.sleep(0)
        seen.add((first, asyncio.current_task()))

    async with running(listener):
        for n in range(3):
            put_step(wire, f"alone-{n}")
            await let_run()
        for n in range(20):
            put_step(wire, f"burst-{n}")
        handled = await seen.wait_for(23, WAIT)

    assert all(first is after for first, after in handled)


async def test_a_handler_timing_out_fails_alone_and_the_listener_goes_on(wire: Wire) -> None:
    consumer, seen = SyncAckConsumer(wire), Probe()
    listener = EventListener(consumer)

    @listener.handler(topic="steps", event="step")
    async def step(event: Event[Step]) -> None:
        if event.body.name == "slow":
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        seen.add(event.body.name)

    async with running(listener):
        put_step(wire, "slow")
        await let_run()
        await asyncio.sleep(0.05)  # the slow handler's timeout has gone off
        put_step(wire, "next")
        assert await seen.wait_for(1, WAIT) == ["next"]

    assert len(consumer.acked) == 2, "the timed-out message is dead-lettered, then acked"
