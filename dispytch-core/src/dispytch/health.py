"""Health of listeners and apps: what liveness and readiness probes report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SupportsPing(Protocol):
    """A producer or consumer that can check that its broker answers.

    `ping()` returns when the broker answered and raises when it did not.
    """

    async def ping(self) -> None: ...


async def reachable(part: Any, timeout: float) -> bool | None:
    """Whether `part`'s broker answers a ping within `timeout` seconds; None when `part`
    cannot tell (it has no `ping()`)."""
    if not isinstance(part, SupportsPing):
        return None
    try:
        await asyncio.wait_for(part.ping(), timeout)
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class ListenerHealth:
    """One listener's health.

    - `consuming`: started, not stopping, and its pull loop is alive.
    - `backend_reachable`: the broker answered a ping (None: the backend cannot tell).
    - `last_poll`: seconds since the listener last asked its consumer for messages
      (0.0 while it is waiting on the consumer; None when not consuming).
    - `in_flight`: messages being handled.
    - `ready`: consuming, the broker reachable, and polled recently; else `reason` says why.
    """

    ready: bool
    consuming: bool
    backend_reachable: bool | None
    last_poll: float | None
    in_flight: int
    reason: str | None = None


@dataclass(frozen=True)
class AppHealth:
    """An app's health: ready when it is running and every listener is ready."""

    ready: bool
    listeners: tuple[ListenerHealth, ...]
    reason: str | None = None

    @property
    def consuming(self) -> bool:
        """True when every listener is consuming."""
        return all(h.consuming for h in self.listeners)

    @property
    def in_flight(self) -> int:
        """Messages being handled across the app's listeners."""
        return sum(h.in_flight for h in self.listeners)
