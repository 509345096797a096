"""The memory backend's producer."""

from __future__ import annotations

from pydantic import BaseModel

from dispytch.backends.memory.broker import MemoryBroker
from dispytch.emitter.producer import OutgoingMessage, Producer


class MemoryEventConfig(BaseModel):
    """`__backend_config__` for the memory backend: `key` orders events that share it."""

    key: str | None = None


class MemoryProducer(Producer):
    """Publishes to an in-process `MemoryBroker`."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    async def ping(self) -> None:
        """The in-process broker always answers."""

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        key = message.config.key if isinstance(message.config, MemoryEventConfig) else None
        self.broker.publish(message.topic, message.payload, message.headers, key)
