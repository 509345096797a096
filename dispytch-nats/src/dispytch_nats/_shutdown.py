"""Ending a consumer's background tasks and connection without hanging."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable

from nats.aio.client import Client
from nats.errors import Error as NatsError

logger = logging.getLogger("dispytch.nats")


async def close(client: Client, timeout: float) -> None:
    """Write out what is buffered (waiting up to `timeout` seconds), then close."""
    if client.is_closed:
        return
    try:
        await client.flush(math.ceil(timeout))
    except (NatsError, asyncio.TimeoutError) as exc:
        logger.warning("could not flush to NATS before closing: %r", exc)
    await client.close()


_RECANCEL_AFTER = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until they ended, cancelling again any that carried on:
    before Python 3.12, `asyncio.wait_for` (which nats-py uses too) drops a cancellation
    that arrives together with the result it waited for."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_AFTER)
