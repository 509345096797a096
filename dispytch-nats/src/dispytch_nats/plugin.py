"""Registers the NATS backends: `nats`, JetStream by default or core NATS with
`mode="core"` in its settings, and `nats-core`, a name for core mode.

The modes promise different things, so the capabilities of `nats` follow its settings,
and a listener's capability check sees the mode it gets.

The factories import the modules that use nats-py when they are called, so loading the
plugin does not import nats-py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from dispytch.backends import Backend, Capabilities, Subscription
from dispytch.backends.hookspecs import hookimpl
from dispytch_nats.settings import NatsCoreSettings, NatsJetStreamSettings, NatsSettings

if TYPE_CHECKING:
    from dispytch.listener.consumer import Consumer
    from dispytch_nats.core import CoreConsumer, CoreProducer
    from dispytch_nats.jetstream import JetStreamConsumer, JetStreamProducer

JETSTREAM = Capabilities(
    persistent=True,
    consumer_groups=True,
    redelivery=True,
    ordering=True,
    headers=True,
    wildcards=True,
    max_payload_bytes=1_048_576,
)
CORE = Capabilities(
    consumer_groups=True, ordering=True, headers=True, wildcards=True, max_payload_bytes=1_048_576
)


def nats_capabilities(settings: NatsSettings) -> Capabilities:
    """What the mode in `settings` offers, with its `max_payload` as the payload limit."""
    offered = CORE if settings.mode == "core" else JETSTREAM
    return dataclasses.replace(offered, max_payload_bytes=settings.max_payload)


def nats_producer(settings: NatsJetStreamSettings) -> JetStreamProducer | CoreProducer:
    if settings.mode == "core":
        return core_producer(settings)
    from dispytch_nats.jetstream import JetStreamProducer

    return JetStreamProducer(settings)


def nats_consumer(
    settings: NatsJetStreamSettings, subscription: Subscription
) -> JetStreamConsumer | CoreConsumer:
    if settings.mode == "core":
        return core_consumer(settings, subscription)
    from dispytch_nats.jetstream import JetStreamConsumer

    return JetStreamConsumer(settings, subscription)


def core_producer(settings: NatsSettings) -> CoreProducer:
    from dispytch_nats.core import CoreProducer

    return CoreProducer(settings)


def core_consumer(settings: NatsSettings, subscription: Subscription) -> CoreConsumer:
    from dispytch_nats.core import CoreConsumer

    return CoreConsumer(settings, subscription)


def nats_reply_consumer(settings: NatsJetStreamSettings, topic: str) -> Consumer:
    from dispytch_nats.replies import reply_consumer

    return reply_consumer(settings, topic)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="nats",
            settings=NatsJetStreamSettings,
            create_producer=nats_producer,
            create_consumer=nats_consumer,
            capabilities=JETSTREAM,
            capabilities_by_settings=nats_capabilities,
            create_reply_consumer=nats_reply_consumer,
            schemes=("nats",),
            install="dispytch-nats",
            description="NATS JetStream (or core NATS with mode='core'): streams, durable "
            "consumers per group, acks and delayed redelivery",
        )
    )
    register(
        Backend(
            name="nats-core",
            settings=NatsCoreSettings,
            create_producer=core_producer,
            create_consumer=core_consumer,
            capabilities=CORE,
            capabilities_by_settings=nats_capabilities,
            schemes=("nats-core",),
            install="dispytch-nats",
            description="core NATS: at most once, queue groups, nothing stored",
        )
    )
