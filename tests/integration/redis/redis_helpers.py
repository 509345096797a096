"""Helpers shared by the Redis integration tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from pydantic import BaseModel

from dispytch import EventBase
from dispytch.serialization import Envelope, JSONSerializer
from dispytch.testing import Probe


class Note(EventBase):
    """The event these tests send; `stream` is the topic."""

    __topic__ = "{stream}"
    __event_type__ = "redis_test.note"

    stream: str
    n: int


class NoteBody(BaseModel):
    n: int


def entry(n: int) -> dict[str, bytes]:
    """Stream entry fields as the backend writes them, for a `Note` numbered `n`."""
    envelope = Envelope(f"id-{n}", Note.__event_type__, {"stream": "", "n": n}, 1)
    return {"payload": JSONSerializer().dumps(envelope)}


def fresh(kind: str) -> str:
    """A topic or group name no other test uses."""
    return f"redis-test.{kind}.{uuid.uuid4().hex[:10]}"


async def wait_until(
    what: str, condition: Callable[[], Awaitable[bool]], timeout: float = 15.0
) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.05)


async def logged(log: Probe, item: str) -> bool:
    """Whether `item` was added to `log` (a condition for `wait_until`)."""
    return item in log.items
