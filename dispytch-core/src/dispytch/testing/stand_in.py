"""The in-memory stand-in for a configured backend: a private broker that knows which
deliveries are not settled yet, and listeners and emitters switched onto it for a while.

A listener built for Kafka, RabbitMQ, Redis or any plugin keeps its group, handlers,
retries, dead-letter settings and middleware; only its consumer and producer come from
the stand-in, which offers what the configured backend declares it offers: listeners of
one group compete for events only where the backend has consumer groups, a failed
message is nacked back only where it redelivers, and natively dead-lettered only where
the broker can. No socket is opened.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.memory import MemoryBroker, MemoryConsumer, MemoryProducer, MemorySettings
from dispytch.backends.memory.broker import Delivery
from dispytch.backends.memory.plugin import MEMORY_CAPABILITIES
from dispytch.emitter.emitter import EventEmitter
from dispytch.emitter.producer import Producer
from dispytch.emitter.request_reply import ReplyConsumerFactory
from dispytch.listener.consumer import Consumer, Message, SupportsDeadLetter, SupportsNack
from dispytch.listener.listener import EventListener
from dispytch.routing import TopicPattern


class StandInBroker(MemoryBroker):
    """A private in-memory broker that tracks every delivery until a listener settles it."""

    def __init__(self) -> None:
        super().__init__()
        self.unsettled: dict[int, Delivery] = {}
        self.changed = asyncio.Event()
        """Set when a delivery is settled or a handler failed; cleared by whoever waits."""

    def publish(
        self, topic: str, payload: bytes, headers: dict[str, str], key: str | None
    ) -> list[Delivery]:
        deliveries = super().publish(topic, payload, headers, key)
        for delivery in deliveries:
            self.unsettled[delivery.id] = delivery
        return deliveries

    def settled(self, delivery_id: int) -> None:
        """A listener acked or dead-lettered the delivery `delivery_id` for good."""
        if self.unsettled.pop(delivery_id, None) is not None:
            self.changed.set()


class StandInConsumer(Consumer):
    """A memory consumer offering only what the configured backend offers."""

    def __init__(self, inner: MemoryConsumer) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def ping(self) -> None:
        """The in-process broker always answers."""

    def listen(self) -> AsyncIterator[Message]:
        return self.inner.listen()

    def ack(self, msg: Message) -> None:
        self.inner.ack(msg)


class _ReplyConsumer(StandInConsumer):
    """Reads an emitter's replies; a reply read is settled."""

    def __init__(self, inner: MemoryConsumer, broker: StandInBroker) -> None:
        super().__init__(inner)
        self.broker = broker

    def ack(self, msg: Message) -> None:
        self.inner.ack(msg)
        self.broker.settled(msg.metadata["delivery_id"])


class _Redelivering(StandInConsumer):
    async def nack(self, msg: Message, delay: float = 0.0) -> None:
        await self.inner.nack(msg, delay)


class _DeadLettering(StandInConsumer):
    async def dead_letter(self, msg: Message, reason: str) -> None:
        """The broker keeps the message in its dead-letter queue: it leaves the group."""
        self.inner.ack(msg)


class _RedeliveringDeadLettering(_Redelivering, _DeadLettering):
    pass


def _consumer_class(caps: Capabilities) -> type[StandInConsumer]:
    if caps.redelivery and caps.native_dead_letter:
        return _RedeliveringDeadLettering
    if caps.redelivery:
        return _Redelivering
    return _DeadLettering if caps.native_dead_letter else StandInConsumer


def _raw_consumer_capabilities(consumer: Consumer) -> Capabilities:
    """What a listener given its own consumer can rely on: what that consumer implements."""
    return replace(
        MEMORY_CAPABILITIES,
        redelivery=isinstance(consumer, SupportsNack),
        native_dead_letter=isinstance(consumer, SupportsDeadLetter),
    )


_lone_groups = itertools.count(1)


def stand_in_backend(listener: EventListener, broker: StandInBroker) -> tuple[Backend, Any]:
    """A backend on `broker` that looks to `listener` like the one it was configured with,
    and the settings to pass it."""
    if listener.backend is not None:
        name = listener.backend.name
        settings_type = listener.backend.settings
        settings = listener.backend_settings
        caps = listener.backend.capabilities_for(settings)
    else:
        assert listener.consumer is not None
        name = type(listener.consumer).__name__
        settings_type, settings = MemorySettings, MemorySettings()
        caps = _raw_consumer_capabilities(listener.consumer)
    consumer_class = _consumer_class(caps)

    def create_consumer(_settings: Any, subscription: Subscription) -> Consumer:
        group = subscription.group
        if not caps.consumer_groups:  # every listener gets every event
            group = f"{group}#{next(_lone_groups)}"
        return consumer_class(MemoryConsumer(broker, group, subscription.patterns))

    def create_producer(_settings: Any) -> Producer:
        return MemoryProducer(broker)

    backend = Backend(
        name=name,
        settings=settings_type,
        create_producer=create_producer,
        create_consumer=create_consumer,
        capabilities=caps,
        description=f"in-memory stand-in for {name}",
    )
    return backend, settings


@dataclass
class _ListenerSettings:
    backend: Backend | None
    backend_settings: Any
    group: str | None
    consumer: Consumer | None
    producer: Producer | None


class StandIns:
    """Switches listeners and emitters onto a broker, and back to what they had."""

    def __init__(self, broker: StandInBroker) -> None:
        self.broker = broker
        self._listeners: list[tuple[EventListener, _ListenerSettings]] = []
        self._emitters: list[tuple[EventEmitter, Producer, ReplyConsumerFactory | None]] = []

    def switch_listener(self, listener: EventListener) -> None:
        """Make `listener` consume from the broker from its next start on."""
        saved = _ListenerSettings(
            listener.backend,
            listener.backend_settings,
            listener.group,
            listener.consumer,
            listener.producer,
        )
        backend, settings = stand_in_backend(listener, self.broker)
        listener.backend, listener.backend_settings = backend, settings
        listener.group = listener.group or f"{backend.name}-{next(_lone_groups)}"
        listener.consumer = listener.producer = None
        self._listeners.append((listener, saved))

    def switch_emitter(self, emitter: EventEmitter) -> None:
        """Make `emitter` publish to the broker, and receive its replies from it."""
        self._emitters.append((emitter, emitter.producer, emitter.reply_consumers))
        emitter.use_producer(MemoryProducer(self.broker))
        emitter.receive_replies_with(self._reply_consumer)

    def _reply_consumer(self, topic: str) -> Consumer:
        inner = MemoryConsumer(self.broker, topic, [TopicPattern(topic)])
        return _ReplyConsumer(inner, self.broker)

    def restore(self) -> None:
        """Give every switched listener and emitter back what it was configured with."""
        for listener, saved in reversed(self._listeners):
            listener.backend, listener.backend_settings = saved.backend, saved.backend_settings
            listener.group, listener.consumer = saved.group, saved.consumer
            listener.producer = saved.producer
        for emitter, producer, reply_consumers in reversed(self._emitters):
            emitter.use_producer(producer)
            emitter.receive_replies_with(reply_consumers)
        self._listeners.clear()
        self._emitters.clear()
