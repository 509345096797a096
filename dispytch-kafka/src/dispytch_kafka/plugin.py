"""Registers the `kafka` backend with Dispytch (entry point group `dispytch`).

The factories import the modules that use aiokafka when they are called, so loading the
plugin does not import aiokafka.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch_kafka.settings import KafkaSettings

if TYPE_CHECKING:
    from dispytch_kafka.consumer import KafkaConsumer
    from dispytch_kafka.producer import KafkaProducer
    from dispytch_kafka.replies import KafkaReplyConsumer

CAPABILITIES = Capabilities(
    persistent=True,
    consumer_groups=True,
    redelivery=True,
    ordering=True,
    headers=True,
    wildcards=True,
)


def kafka_producer(settings: KafkaSettings) -> KafkaProducer:
    from dispytch_kafka.producer import KafkaProducer

    return KafkaProducer.from_settings(settings)


def kafka_consumer(settings: KafkaSettings, subscription: Subscription) -> KafkaConsumer:
    from dispytch_kafka.consumer import KafkaConsumer

    return KafkaConsumer.from_settings(settings, subscription)


def kafka_reply_consumer(settings: KafkaSettings, topic: str) -> KafkaReplyConsumer:
    from dispytch_kafka.replies import reply_consumer

    return reply_consumer(settings, topic)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register the `kafka` backend, also selected by `kafka://` URLs."""
    register(
        Backend(
            name="kafka",
            settings=KafkaSettings,
            create_producer=kafka_producer,
            create_consumer=kafka_consumer,
            capabilities=CAPABILITIES,
            schemes=("kafka",),
            create_reply_consumer=kafka_reply_consumer,
            install="dispytch-kafka",
            description="Apache Kafka and Kafka-protocol brokers, through aiokafka",
        )
    )
