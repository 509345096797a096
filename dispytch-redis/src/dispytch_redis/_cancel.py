"""Keeping task cancellation intact around redis-py calls."""

from __future__ import annotations

import asyncio


def reraise_cancellation() -> None:
    """Raise `CancelledError` if the current task was cancelled and carried on anyway.

    Before Python 3.12, `asyncio.wait_for` (which redis-py awaits replies with) drops a
    cancellation that arrives together with the reply: the command returns normally
    and the task would run on, so a stopping listener would wait for it forever.
    `Task.cancelling()` still counts the request, so it is raised again here.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError
