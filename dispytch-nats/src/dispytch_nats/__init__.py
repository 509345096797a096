"""NATS backends for Dispytch, on nats-py.

- `nats` (URLs `nats://`): JetStream streams and durable pull consumers, one per group;
  or core NATS with `mode="core"`.
- `nats-core` (URLs `nats-core://`): core NATS publish/subscribe with queue groups,
  at most once.

Its names are imported on first use, so that loading the plugin does not import nats-py.
"""

from typing import TYPE_CHECKING

from dispytch._lazy import lazy_exports

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

if TYPE_CHECKING:
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
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "core": ["CoreConsumer", "CoreProducer"],
            "jetstream": [
                "JetStreamConsumer",
                "JetStreamProducer",
                "JetStreamPublishError",
                "consumer_name",
            ],
            "payload": ["PayloadTooLarge"],
            "settings": ["NatsCoreSettings", "NatsJetStreamSettings", "NatsSettings"],
            "streams": ["StreamError"],
            "subjects": ["SubjectError"],
        },
    )
