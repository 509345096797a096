"""Waiting out a Redis server that went away."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger("dispytch.redis")

UNREACHABLE = (ConnectionError, TimeoutError, OSError)
"""What redis-py raises when the server cannot be reached (after its own retries)."""


class Backoff:
    """Growing pauses between attempts to reach Redis again; `reset()` once it answers."""

    def __init__(self, what: str, first: float = 0.1, most: float = 5.0) -> None:
        self.what = what
        self.first = first
        self.most = most
        self._delay = 0.0

    async def wait(self, error: BaseException) -> None:
        """Log the first failure of an outage, then sleep a little longer each time."""
        if not self._delay:
            logger.warning("%s lost Redis (%r); reconnecting", self.what, error)
        self._delay = min(self._delay * 2, self.most) if self._delay else self.first
        await asyncio.sleep(self._delay)

    def reset(self) -> None:
        """Redis answered: log the recovery and start the next outage from `first`."""
        if self._delay:
            logger.warning("%s reconnected to Redis", self.what)
            self._delay = 0.0
