"""Waiting for an event, for at most so long."""

from __future__ import annotations

import asyncio


async def wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set, setting it after `seconds` if nothing else did.

    A timer beside the event, not `asyncio.wait_for`: before Python 3.12, `wait_for`
    swallows a cancellation that comes in the turn the event is set, and a task that
    stops only when cancelled would never stop.
    """
    timer = asyncio.get_running_loop().call_later(seconds, event.set)
    try:
        await event.wait()
    finally:
        timer.cancel()
