"""The Kafka backend for Dispytch, built on aiokafka."""

from dispytch_kafka.config import KafkaEventConfig
from dispytch_kafka.consumer import KafkaConsumer
from dispytch_kafka.producer import KafkaProducer, KafkaPublishError
from dispytch_kafka.settings import KafkaSettings

__all__ = [
    "KafkaConsumer",
    "KafkaEventConfig",
    "KafkaProducer",
    "KafkaPublishError",
    "KafkaSettings",
]
