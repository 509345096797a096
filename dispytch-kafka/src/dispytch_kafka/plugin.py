"""Registers the `kafka` backend with Dispytch (entry point group `dispytch`)."""

from __future__ import annotations

from collections.abc import Callable

from dispytch.backends.backend import Backend
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch_kafka.consumer import KafkaConsumer
from dispytch_kafka.producer import KafkaProducer
from dispytch_kafka.replies import reply_consumer
from dispytch_kafka.settings import KafkaSettings

CAPABILITIES = Capabilities(
    persistent=True,
    consumer_groups=True,
    redelivery=True,
    ordering=True,
    headers=True,
    wildcards=True,
)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register the `kafka` backend, also selected by `kafka://` URLs."""
    register(
        Backend(
            name="kafka",
            settings=KafkaSettings,
            create_producer=KafkaProducer.from_settings,
            create_consumer=KafkaConsumer.from_settings,
            capabilities=CAPABILITIES,
            schemes=("kafka",),
            create_reply_consumer=reply_consumer,
            install="dispytch-kafka",
            description="Apache Kafka and Kafka-protocol brokers, through aiokafka",
        )
    )
