"""What the parts of the conformance kit share: the backend they test, fresh names, and
waiting for something to happen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from dispytch.backends.capabilities import Capabilities
from dispytch.emitter.emitter import EventEmitter
from dispytch.listener.listener import EventListener


class KitBackend(Protocol):
    """What the kit's tests use of `BackendUnderTest`."""

    name: str
    settle: float
    timeout: float

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def settings(self) -> Any: ...

    def emitter(self, **options: Any) -> EventEmitter: ...

    def listener(self, group: str, **options: Any) -> EventListener: ...


def fresh(kind: str) -> str:
    """A topic or group name no other test uses: `conformance.<kind>.<random>`."""
    return f"conformance.{kind}.{uuid.uuid4().hex[:12]}"


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once `condition()` is true; `AssertionError` naming `what` after `timeout`
    seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.01)
