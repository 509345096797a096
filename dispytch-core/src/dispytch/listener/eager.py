"""Starting a coroutine eagerly: its first step runs at once, in the caller's turn of the
event loop, and a task carries on only if it suspends.

A message handed to its handler this way starts as soon as it is pulled, not one turn of
the event loop later, and a handler that never waits (acking synchronously, say) finishes
without a task at all. Each coroutine runs in a context of its own from its first step to
its last, as in a task of its own (a `contextvars` token set in one step resets in
another). Python 3.12's eager tasks do the same; this works from 3.11 on and creates no task
for a coroutine that finishes in its first step.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start(
    coroutine: Coroutine[Any, Any, T], finished: Callable[[T], None]
) -> asyncio.Task[T] | None:
    """Run `coroutine` up to its first suspension and return the task that carries on from
    there; or, when it finished in that step, call `finished(result)` and return None.

    What the first step raises, this raises. On Python 3.10, whose tasks cannot be given
    a context, the coroutine starts in a task as usual.
    """
    if sys.version_info < (3, 11):
        return asyncio.get_running_loop().create_task(coroutine)
    context = contextvars.copy_context()
    try:
        step = context.run(coroutine.send, None)
    except StopIteration as done:
        finished(done.value)
        return None
    return asyncio.get_running_loop().create_task(_carry_on(coroutine, step), context=context)


async def _carry_on(coroutine: Coroutine[Any, Any, T], step: Any) -> T:
    return await _resume(coroutine, step)  # tasks take coroutines, not generators (3.12+)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, T], step: Any) -> Generator[Any, Any, T]:
    """Await `coroutine`, whose first step already ran and yielded `step`."""
    while True:
        try:
            sent = yield step
        except BaseException as error:  # cancelled, or closed: the coroutine hears it
            try:
                step = coroutine.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                step = coroutine.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
