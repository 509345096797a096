"""Deadlines in order (`dispytch._deadlines`): one timer times out every operation left open
past the timeout, whether its target is the task awaiting it (the RabbitMQ producer) or the
future it completes (JetStream acknowledgements); a cancellation of the caller's stays a
cancellation.

Nothing here depends on how fast the machine is: operations that are to finish do so at
once, with timeouts far longer than that takes, and times are only bounded from below."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

import pytest

from dispytch._deadlines import Deadlines

TIMEOUT = 0.3
WAIT = 30.0
"""Seconds to wait for what must happen in any case: far beyond any timeout here."""


async def operation(deadlines: Deadlines, until: asyncio.Event, begun: asyncio.Event) -> str:
    """An operation as the RabbitMQ producer awaits a publish: it takes until `until` is set,
    and its deadline cancels this task."""
    task = asyncio.current_task()
    assert task is not None
    deadline = deadlines.begin(task)
    begun.set()
    try:
        await until.wait()
    except asyncio.CancelledError:
        if deadline.timed_out():
            return "timed out"
        raise
    finally:
        deadline.end()
    return "done"


def start(deadlines: Deadlines, until: asyncio.Event) -> tuple[asyncio.Task[str], asyncio.Event]:
    begun = asyncio.Event()
    return asyncio.create_task(operation(deadlines, until, begun)), begun


async def test_tasks_past_their_deadline_time_out_and_the_others_finish() -> None:
    deadlines = Deadlines(1.0)  # the others finish a loop iteration after they began
    finish, never = asyncio.Event(), asyncio.Event()
    first, _ = start(deadlines, finish)
    stuck, _ = start(deadlines, never)
    last, _ = start(deadlines, finish)
    await asyncio.sleep(0)
    finish.set()
    outcomes = await asyncio.wait_for(asyncio.gather(first, stuck, last), WAIT)
    assert list(outcomes) == ["done", "timed out", "done"]
    assert deadlines.pending() == []


async def test_a_deadline_begun_later_runs_from_its_own_start() -> None:
    deadlines = Deadlines(TIMEOUT)
    loop = asyncio.get_running_loop()
    finish, never = asyncio.Event(), asyncio.Event()
    first, _ = start(deadlines, finish)
    await asyncio.sleep(0)
    finish.set()
    assert await first == "done"
    await asyncio.sleep(TIMEOUT / 2)  # the timer is still set for the first deadline
    began = loop.time()
    second, _ = start(deadlines, never)
    assert await asyncio.wait_for(second, WAIT) == "timed out"
    assert loop.time() - began >= TIMEOUT


async def test_deadlines_time_out_in_the_order_they_began() -> None:
    deadlines = Deadlines(TIMEOUT)
    never = asyncio.Event()
    finished: list[int] = []

    async def numbered(n: int, begun: asyncio.Event) -> None:
        assert await operation(deadlines, never, begun) == "timed out"
        finished.append(n)

    tasks = []
    for n in range(4):
        begun = asyncio.Event()
        tasks.append(asyncio.create_task(numbered(n, begun)))
        await begun.wait()
        await asyncio.sleep(0.02)
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert finished == [0, 1, 2, 3]


async def test_the_callers_cancellation_is_not_a_timeout() -> None:
    deadlines = Deadlines(WAIT)
    task, begun = start(deadlines, asyncio.Event())
    await begun.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.pending() == []


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel is new in Python 3.11")
async def test_the_callers_cancellation_stays_one_when_the_deadline_passes_too() -> None:
    deadlines = Deadlines(WAIT)
    task, begun = start(deadlines, asyncio.Event())
    await begun.wait()
    deadlines.expire_all()  # the deadline cancels the task ...
    task.cancel()  # ... and so does the caller, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_open_future_is_cancelled_at_its_deadline() -> None:
    deadlines = Deadlines(TIMEOUT)
    loop = asyncio.get_running_loop()
    began = loop.time()
    acked: asyncio.Future[str] = loop.create_future()
    deadline = deadlines.begin(acked)
    assert deadlines.pending() == [acked]
    await asyncio.wait([acked], timeout=WAIT)
    assert acked.cancelled()
    assert deadline.timed_out()
    assert loop.time() - began >= TIMEOUT
    assert deadlines.pending() == []


async def test_a_future_done_before_its_deadline_is_skipped() -> None:
    deadlines = Deadlines(TIMEOUT)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()
    silent: asyncio.Future[str] = loop.create_future()
    answered_deadline = deadlines.begin(answered)
    silent_deadline = deadlines.begin(silent)
    answered.set_result("ack")
    assert deadlines.pending() == [silent]
    await asyncio.wait([silent], timeout=WAIT)
    assert answered.result() == "ack"
    assert not answered_deadline.timed_out()
    assert silent.cancelled()
    assert silent_deadline.timed_out()


async def test_expire_all_cancels_what_is_open_and_later_deadlines_still_run() -> None:
    deadlines = Deadlines(WAIT)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()
    silent: asyncio.Future[str] = loop.create_future()
    deadlines.begin(answered)
    deadlines.begin(silent)
    answered.set_result("ack")
    deadlines.expire_all()
    assert answered.result() == "ack"
    assert silent.cancelled()
    assert deadlines.pending() == []
    deadlines.timeout = TIMEOUT  # a deadline begun after gets a timer of its own
    later: asyncio.Future[str] = loop.create_future()
    deadlines.begin(later)
    await asyncio.wait([later], timeout=WAIT)
    assert later.cancelled()


async def test_a_done_futures_deadline_is_let_go_once_the_next_begins() -> None:
    deadlines = Deadlines(WAIT)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()
    deadlines.begin(answered)
    answered.set_result("ack")
    answered_ref = weakref.ref(answered)
    del answered
    deadlines.begin(loop.create_future())
    gc.collect()
    assert answered_ref() is None  # a burst of acks is not held until the first deadline
    deadlines.expire_all()


def test_deadlines_carried_over_to_a_new_event_loop_still_time_out() -> None:
    """A producer outliving its event loop (a second `asyncio.run`): the timer of the old
    loop, which never fired, does not keep the new loop's operations from timing out."""
    deadlines = Deadlines(TIMEOUT)

    async def left_open() -> None:
        deadlines.begin(asyncio.get_running_loop().create_future())

    async def timed_out() -> bool:
        acked = asyncio.get_running_loop().create_future()
        deadlines.begin(acked)
        await asyncio.wait([acked], timeout=WAIT)
        return acked.cancelled()

    asyncio.run(left_open())
    assert asyncio.run(timed_out())
