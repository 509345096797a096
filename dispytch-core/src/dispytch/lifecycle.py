"""Starting and stopping the seam objects that have `start()`/`stop()`."""

from __future__ import annotations

import inspect
from typing import Any


async def start_if_possible(part: Any) -> None:
    """Call `part.start()` when it has one (sync or async)."""
    await _call(part, "start")


async def stop_if_possible(part: Any) -> None:
    """Call `part.stop()` when it has one (sync or async)."""
    await _call(part, "stop")


async def _call(part: Any, name: str) -> None:
    method = getattr(part, name, None)
    if callable(method):
        result = method()
        if inspect.isawaitable(result):
            await result
