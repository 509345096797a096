"""The memory backend's consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from dispytch.backends.memory.broker import Delivery, Group, MemoryBroker
from dispytch.listener.consumer import Consumer, Message
from dispytch.routing import TopicPattern


class MemoryConsumer(Consumer):
    """Takes messages for one group from an in-process `MemoryBroker`.

    Unacked messages go back to the group on `stop()`; `nack` returns one after a delay.
    Metadata: `delivery_id`.
    """

    def __init__(self, broker: MemoryBroker, group: str, patterns: Iterable[TopicPattern]) -> None:
        self.broker = broker
        self.group_name = group
        self.patterns = tuple(patterns)
        self._group: Group | None = None
        self._held: dict[int, Delivery] = {}

    async def start(self) -> None:
        self._group = self.broker.join(self.group_name, self.patterns)

    async def listen(self) -> AsyncIterator[Message]:
        if self._group is None:
            await self.start()
        group = self._group
        assert group is not None
        while True:
            delivery = group.take()
            if delivery is None:
                await group.wait()
                continue
            self._held[delivery.id] = delivery
            yield Message(  # topic, payload, key, headers, attempt, metadata, raw: positional
                delivery.topic,  # arguments cost half what keywords do, once per message
                delivery.payload,
                delivery.key,
                dict(delivery.headers),
                delivery.attempt,
                {"delivery_id": delivery.id},
                delivery,
            )

    async def ping(self) -> None:
        """The in-process broker always answers."""

    def ack(self, msg: Message) -> None:
        self._held.pop(msg.metadata["delivery_id"], None)

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        delivery = self._held.pop(msg.metadata["delivery_id"], None)
        if delivery is None or self._group is None:
            return
        group = self._group
        asyncio.get_running_loop().call_later(delay, group.put, delivery)

    async def stop(self) -> None:
        if self._group is not None and self._held:
            self._group.put_back(sorted(self._held.values(), key=lambda d: d.id))
        self._held.clear()
