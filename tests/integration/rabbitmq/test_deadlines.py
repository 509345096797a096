"""Publish deadlines: one timer times out every publish left open past the producer's timeout,
and a cancellation of the caller's stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from dispytch_rabbitmq.deadlines import Deadlines


async def publish(deadlines: Deadlines, seconds: float) -> str:
    """A publish that takes `seconds`, as the producer awaits one."""
    deadline = deadlines.begin()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if deadline.timed_out():
            return "timed out"
        raise
    finally:
        deadlines.end(deadline)
    return "done"


async def test_publishes_past_their_deadline_time_out_and_the_others_finish() -> None:
    deadlines = Deadlines(0.2)
    outcomes = await asyncio.gather(
        publish(deadlines, 0.05), publish(deadlines, 5), publish(deadlines, 0.1)
    )
    assert outcomes == ["done", "timed out", "done"]


async def test_a_deadline_begun_later_runs_from_its_own_start() -> None:
    deadlines = Deadlines(0.3)
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(publish(deadlines, 0.05))
    await asyncio.sleep(0.2)
    began = loop.time()
    second = asyncio.create_task(publish(deadlines, 5))
    assert await first == "done"
    assert await second == "timed out"
    assert loop.time() - began >= 0.3


async def test_deadlines_time_out_in_the_order_they_began() -> None:
    deadlines = Deadlines(0.1)
    finished: list[int] = []

    async def numbered(n: int) -> None:
        await asyncio.sleep(n * 0.02)
        assert await publish(deadlines, 5) == "timed out"
        finished.append(n)

    await asyncio.gather(*(numbered(n) for n in (3, 0, 2, 1)))
    assert finished == [0, 1, 2, 3]


async def test_the_callers_cancellation_is_not_a_timeout() -> None:
    deadlines = Deadlines(5)
    task = asyncio.create_task(publish(deadlines, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
