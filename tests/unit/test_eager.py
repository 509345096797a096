"""Starting handlers eagerly: the first step runs at once, a task carries on only if it
waits, and the whole coroutine sees one context of its own."""

import asyncio
import contextvars
import sys

import pytest

from dispytch.listener import eager

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="3.10 starts the coroutine in a task as usual"
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_a_coroutine_that_does_not_wait_finishes_in_the_call() -> None:
    steps: list[str] = []

    async def handle() -> int:
        steps.append("ran")
        return 7

    results: list[int] = []
    task = eager.start(handle(), results.append)

    assert task is None
    assert steps == ["ran"], "ran before start() returned"
    assert results == [7]


async def test_a_coroutine_that_waits_is_carried_on_by_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.Event()

    async def handle() -> str:
        steps.append("first step")
        await gate.wait()
        steps.append("second step")
        return "done"

    task = eager.start(handle(), pytest.fail)

    assert steps == ["first step"]
    assert task is not None
    gate.set()
    assert await task == "done"
    assert steps == ["first step", "second step"]


async def test_what_the_first_step_raises_is_raised() -> None:
    async def handle() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        eager.start(handle(), pytest.fail)


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def handle() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally")

    task = eager.start(handle(), pytest.fail)
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_the_coroutine_keeps_one_context_of_its_own_across_its_steps() -> None:
    async def handle() -> str:
        token = request_id.set("abc")
        await asyncio.sleep(0)
        seen = request_id.get()
        request_id.reset(token)  # a token from the first step resets in a later one
        return seen

    task = eager.start(handle(), pytest.fail)

    assert request_id.get() == "-", "the caller's context is untouched"
    assert task is not None
    assert await task == "abc"


async def test_a_coroutine_finishing_at_once_leaves_the_callers_context_untouched() -> None:
    async def handle() -> None:
        request_id.set("leaked?")

    eager.start(handle(), lambda _: None)

    assert request_id.get() == "-"
