"""Helpers shared by the NATS integration tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from dispytch import EventBase


class Numbered(EventBase):
    """The event these tests send; `route` is the topic."""

    __topic__ = "{route}"
    __event_type__ = "crash_test.numbered"

    route: str
    number: int


class NumberedBody(BaseModel):
    number: int


def fresh(kind: str) -> str:
    """A subject token path no other test uses: `nats-it.<kind>.<random>`."""
    return f"nats-it.{kind}.{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.05)
