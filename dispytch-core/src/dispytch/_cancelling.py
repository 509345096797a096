"""Ending background tasks whose cancellation a client library may drop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

_RECANCEL_AFTER = 0.1
"""Seconds to wait for cancelled tasks before cancelling those still running again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until they ended, cancelling again any that carried on.

    Before Python 3.12, `asyncio.wait_for` (which redis-py and nats-py await replies
    with) drops a cancellation that arrives together with the reply: the task runs on,
    and waiting for it once would wait forever.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_AFTER)
