"""Producer, consumer and settings: the seam Dispytch asks a backend for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel
from typing_extensions import Self

from dispytch.backends import BackendSettings
from dispytch.emitter.producer import OutgoingMessage, Producer
from dispytch.listener.consumer import Consumer, Message
from dispytch.routing import TopicPattern
from dispytch_sqlite.store import Store


class SQLiteSettings(BackendSettings):
    """`path` of the database file; `lease` seconds a claimed message stays hidden;
    `poll_interval` seconds between looks when the queue is empty."""

    path: str
    lease: float = 30.0
    poll_interval: float = 0.02
    batch: int = 100

    @classmethod
    def from_url(cls, url: str) -> Self:
        """`sqlite:///absolute/path.db` or `sqlite://relative/path.db`."""
        parts = urlsplit(url)
        return cls(path=parts.netloc + parts.path)


class SQLiteEventConfig(BaseModel):
    """`__backend_config__`: `key` orders events that share it."""

    key: str | None = None


class SQLiteProducer(Producer):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def send(self, topic: str, payload: bytes, config: BaseModel | None = None) -> None:
        await self.publish(OutgoingMessage(topic, payload, config))

    async def publish(self, message: OutgoingMessage) -> None:
        key = message.config.key if isinstance(message.config, SQLiteEventConfig) else None
        await self.store.publish(message.topic, message.payload, message.headers, key)


class SQLiteConsumer(Consumer):
    """Claims leased batches for one group; `metadata["id"]` is the row id."""

    def __init__(
        self, store: Store, settings: SQLiteSettings, group: str, patterns: Iterable[TopicPattern]
    ) -> None:
        self.store = store
        self.settings = settings
        self.group = group
        self.patterns = tuple(patterns)
        self.holder = uuid.uuid4().hex

    async def start(self) -> None:
        await self.store.subscribe(self.group, self.patterns)

    async def listen(self) -> AsyncIterator[Message]:
        settings = self.settings
        while True:
            rows = await self.store.claim(self.group, self.holder, settings.batch, settings.lease)
            if not rows:
                await asyncio.sleep(settings.poll_interval)
            for row in rows:
                yield Message(
                    topic=row.topic,
                    payload=row.payload,
                    key=row.key,
                    headers=row.headers,
                    attempt=row.attempt,
                    metadata={"id": row.id},
                )

    async def ack(self, msg: Message) -> None:
        await self.store.ack(msg.metadata["id"])

    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        await self.store.release(msg.metadata["id"], delay)

    async def stop(self) -> None:
        await self.store.release_all(self.holder)
