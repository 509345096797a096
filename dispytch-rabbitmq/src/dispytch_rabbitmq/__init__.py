"""The RabbitMQ backend of Dispytch, on aio-pika.

Use it by name (`EventEmitter.from_backend("rabbitmq", url=...)`), by URL
(`amqp://...`, `amqps://...`), or with aio-pika objects you declared yourself
(`RabbitMQProducer([exchange])`, `RabbitMQConsumer(queue)`).

Its names are imported on first use, so that loading the plugin does not import aio-pika.
"""

from typing import TYPE_CHECKING

from dispytch._lazy import lazy_exports

__all__ = [
    "DeadLetteringRabbitMQConsumer",
    "RabbitMQConnectionError",
    "RabbitMQConsumer",
    "RabbitMQEventConfig",
    "RabbitMQProducer",
    "RabbitMQPublishError",
    "RabbitMQSettings",
    "TopologyError",
    "UnroutableMessage",
]

if TYPE_CHECKING:
    from dispytch_rabbitmq.config import RabbitMQEventConfig
    from dispytch_rabbitmq.connection import RabbitMQConnectionError
    from dispytch_rabbitmq.consumer import DeadLetteringRabbitMQConsumer, RabbitMQConsumer
    from dispytch_rabbitmq.producer import (
        RabbitMQProducer,
        RabbitMQPublishError,
        UnroutableMessage,
    )
    from dispytch_rabbitmq.settings import RabbitMQSettings
    from dispytch_rabbitmq.topology import TopologyError
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "config": ["RabbitMQEventConfig"],
            "connection": ["RabbitMQConnectionError"],
            "consumer": ["DeadLetteringRabbitMQConsumer", "RabbitMQConsumer"],
            "producer": ["RabbitMQProducer", "RabbitMQPublishError", "UnroutableMessage"],
            "settings": ["RabbitMQSettings"],
            "topology": ["TopologyError"],
        },
    )
