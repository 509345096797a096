"""The `memory` backend: an in-process broker with topics, groups, acks and redelivery.

It is a real backend, held to the same conformance suite as the others: the
embedded default for demos and for a service's own tests.
"""

from dispytch.backends.memory.broker import MemoryBroker, get_broker
from dispytch.backends.memory.consumer import MemoryConsumer
from dispytch.backends.memory.producer import MemoryEventConfig, MemoryProducer
from dispytch.backends.memory.settings import MemorySettings

__all__ = [
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryEventConfig",
    "MemoryProducer",
    "MemorySettings",
    "get_broker",
]
