"""Ending a consumer's background tasks and connection without hanging."""

from __future__ import annotations

import asyncio
import logging
import math

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
