"""Registers the memory backend through the same hook third-party backends use."""

from __future__ import annotations

from collections.abc import Callable

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch.backends.memory.broker import get_broker
from dispytch.backends.memory.consumer import MemoryConsumer
from dispytch.backends.memory.producer import MemoryProducer
from dispytch.backends.memory.settings import MemorySettings

MEMORY_CAPABILITIES = Capabilities(
    persistent=True,
    consumer_groups=True,
    redelivery=True,
    ordering=True,
    headers=True,
    wildcards=True,
)
"""What the memory backend offers."""


def _producer(settings: MemorySettings) -> MemoryProducer:
    return MemoryProducer(get_broker(settings.broker))


def _consumer(settings: MemorySettings, subscription: Subscription) -> MemoryConsumer:
    return MemoryConsumer(get_broker(settings.broker), subscription.group, subscription.patterns)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register `memory` (URL `memory://` or `memory://<broker name>`)."""
    register(
        Backend(
            name="memory",
            settings=MemorySettings,
            create_producer=_producer,
            create_consumer=_consumer,
            capabilities=MEMORY_CAPABILITIES,
            schemes=("memory",),
            description="In-process broker; persistent for the life of the process.",
        )
    )
