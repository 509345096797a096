"""Small async helpers for tests: record what handlers saw, run a listener for a block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dispytch.listener.listener import EventListener


class Probe:
    """Collects items from handlers; `wait_for(n)` returns once `n` have arrived."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Any]:
        """The items, once at least `count` arrived; `AssertionError` after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._reach(count), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"expected {count} item(s) within {timeout}s, got {len(self.items)}"
            ) from None
        return self.items

    async def _reach(self, count: int) -> None:
        while len(self.items) < count:
            self._changed.clear()
            await self._changed.wait()


@asynccontextmanager
async def running(
    listener: EventListener, *, settle: float = 0.0, stop_timeout: float = 10.0
) -> AsyncIterator[EventListener]:
    """Run `listener` for the block: started (plus `settle` seconds) inside it, stopped
    gracefully after it. A listener whose pull loop crashed fails the block."""
    await listener.start()
    try:
        await asyncio.sleep(settle)
        yield listener
    finally:
        await listener.stop(timeout=stop_timeout)
