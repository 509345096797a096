"""NATS backends for Dispytch, on nats-py.

- `nats` (URLs `nats://`): JetStream streams and durable pull consumers, one per group;
  or core NATS with `mode="core"`.
- `nats-core` (URLs `nats-core://`): core NATS publish/subscribe with queue groups,
  at most once.
"""

from dispytch_nats.core import CoreConsumer, CoreProducer
from dispytch_nats.jetstream import (
    JetStreamConsumer,
    JetStreamProducer,
    JetStreamPublishError,
    consumer_name,
)
from dispytch_nats.payload import PayloadTooLarge
from dispytch_nats.settings import NatsCoreSettings, NatsJetStreamSettings, NatsSettings
from dispytch_nats.streams import StreamError
from dispytch_nats.subjects import SubjectError

__all__ = [
    "CoreConsumer",
    "CoreProducer",
    "JetStreamConsumer",
    "JetStreamProducer",
    "JetStreamPublishError",
    "NatsCoreSettings",
    "NatsJetStreamSettings",
    "NatsSettings",
    "PayloadTooLarge",
    "StreamError",
    "SubjectError",
    "consumer_name",
]
