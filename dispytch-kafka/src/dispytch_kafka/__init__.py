"""The Kafka backend for Dispytch, built on aiokafka.

Its names are imported on first use, so that loading the plugin does not import aiokafka.
"""

from typing import TYPE_CHECKING

from dispytch._lazy import lazy_exports

__all__ = [
    "KafkaConsumer",
    "KafkaEventConfig",
    "KafkaProducer",
    "KafkaPublishError",
    "KafkaSettings",
]

if TYPE_CHECKING:
    from dispytch_kafka.config import KafkaEventConfig
    from dispytch_kafka.consumer import KafkaConsumer
    from dispytch_kafka.producer import KafkaProducer, KafkaPublishError
    from dispytch_kafka.settings import KafkaSettings
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "config": ["KafkaEventConfig"],
            "consumer": ["KafkaConsumer"],
            "producer": ["KafkaProducer", "KafkaPublishError"],
            "settings": ["KafkaSettings"],
        },
    )
