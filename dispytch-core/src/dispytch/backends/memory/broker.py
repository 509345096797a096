"""The in-process broker: every group subscribed to a topic gets each message once.

Listeners of one group compete for its messages; a message taken but not acked
goes back to its group when the consumer stops (or is nacked), so it is
delivered again. A group sees messages published after it first subscribed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from dispytch.routing import TopicPattern


@dataclass
class Delivery:
    """One message held by a group, with how often it has been handed out."""

    id: int
    topic: str
    payload: bytes
    headers: dict[str, str]
    key: str | None
    attempt: int = 0


@dataclass
class Group:
    """A consumer group: its subscriptions, its ready queue and what its consumers hold."""

    name: str
    patterns: set[TopicPattern] = field(default_factory=set)
    ready: deque[Delivery] = field(default_factory=deque)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wants(self, topic: str) -> bool:
        return any(p.match(topic) is not None for p in self.patterns)

    def put(self, delivery: Delivery) -> None:
        self.ready.append(delivery)
        self._wake()

    def put_back(self, deliveries: Iterable[Delivery]) -> None:
        """Return taken deliveries to the front, keeping their order."""
        self.ready.extendleft(reversed(list(deliveries)))
        self._wake()

    def take(self) -> Delivery | None:
        if not self.ready:
            return None
        delivery = self.ready.popleft()
        delivery.attempt += 1
        return delivery

    async def wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def _wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
        self.waiters.clear()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MemoryBroker:
    """Topics and groups held in this process."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self._ids = itertools.count(1)

    def publish(
        self, topic: str, payload: bytes, headers: dict[str, str], key: str | None
    ) -> list[Delivery]:
        """Give the message to every group subscribed to `topic`; their deliveries."""
        deliveries = []
        for group in self.groups.values():
            if group.wants(topic):
                delivery = Delivery(next(self._ids), topic, payload, dict(headers), key)
                group.put(delivery)
                deliveries.append(delivery)
        return deliveries

    def join(self, group: str, patterns: Iterable[TopicPattern]) -> Group:
        """The group named `group`, subscribed (also) to `patterns`."""
        found = self.groups.setdefault(group, Group(group))
        found.patterns.update(patterns)
        return found


_brokers: dict[str, MemoryBroker] = {}


def get_broker(name: str = "default") -> MemoryBroker:
    """The process-wide broker called `name` (`memory://name` selects it)."""
    return _brokers.setdefault(name, MemoryBroker())
