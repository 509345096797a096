"""A user's own backend, written from the seed page "Writing Custom Producers & Consumers".

These are not stand-ins for a broker: they are the custom `Producer` and `Consumer`
subclasses the seed page teaches a user to write, using only the imports, names and
signatures it shows. Their "broker" is a `Wire` in this process (a user's would be
Redis Streams or SQS).
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel

from dispytch.emitter.producer import Producer, ProducerTimeout
from dispytch.listener.consumer import Consumer, Message


@dataclass
class Record:
    """One message as the user's broker stores it."""

    topic: str
    payload: bytes
    config: BaseModel | None = None
    key: str | None = None


class KeyConfig(BaseModel):
    """The user's `__backend_config__`: a partition key, like Kafka's."""

    key: str


class Wire:
    """The user's broker: every record sent, and a queue that consumers read from."""

    def __init__(self) -> None:
        self.sent: list[Record] = []
        self.queue: asyncio.Queue[Record | None] = asyncio.Queue()

    def put(self, topic: str, payload: bytes, key: str | None = None) -> None:
        """Deliver a raw record, as another service (or a broken one) might have sent it."""
        self.queue.put_nowait(Record(topic, payload, key=key))

    def close(self) -> None:
        """End the stream: consumers stop yielding once they reach this point."""
        self.queue.put_nowait(None)


class WireProducer(Producer):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None):
        key = config.key if isinstance(config, KeyConfig) else None
        record = Record(topic, payload, config, key)
        self.wire.sent.append(record)
        self.wire.queue.put_nowait(record)


class TimingOutProducer(Producer):
    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None):
        raise ProducerTimeout(f"the broker did not confirm a send to {topic}")


class SyncAckConsumer(Consumer):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.acked: list[Message] = []

    async def listen(self) -> AsyncIterator[Message]:
        while True:
            raw = await self.wire.queue.get()
            if raw is None:
                return
            yield Message(topic=raw.topic, payload=raw.payload, key=raw.key)

    def ack(self, msg: Message):
        self.acked.append(msg)


class AsyncAckConsumer(Consumer):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.acked: list[Message] = []

    async def listen(self) -> AsyncIterator[Message]:
        while True:
            raw = await self.wire.queue.get()
            if raw is None:
                return
            yield Message(topic=raw.topic, payload=raw.payload, key=raw.key)

    async def ack(self, msg: Message):
        self.acked.append(msg)


class NackingConsumer(AsyncAckConsumer):
    """Also hands messages back: `nack(msg, delay=...)`, as `Consumer`'s docstring offers."""

    def __init__(self, wire: Wire) -> None:
        super().__init__(wire)
        self.nacked: list[Message] = []

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        self.nacked.append(msg)
