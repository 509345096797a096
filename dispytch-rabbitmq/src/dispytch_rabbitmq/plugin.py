"""Registers the `rabbitmq` backend (URL schemes `amqp://` and `amqps://`).

The factories import the modules that use aio-pika when they are called, so loading the
plugin does not import aio-pika.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch_rabbitmq.settings import RabbitMQSettings

if TYPE_CHECKING:
    from dispytch_rabbitmq.consumer import RabbitMQConsumer
    from dispytch_rabbitmq.producer import RabbitMQProducer
    from dispytch_rabbitmq.replies import RabbitMQReplyConsumer


def rabbitmq_producer(settings: RabbitMQSettings) -> RabbitMQProducer:
    from dispytch_rabbitmq.producer import RabbitMQProducer

    return RabbitMQProducer(settings=settings)


def rabbitmq_consumer(settings: RabbitMQSettings, subscription: Subscription) -> RabbitMQConsumer:
    from dispytch_rabbitmq.consumer import DeadLetteringRabbitMQConsumer, RabbitMQConsumer

    if settings.dead_letter_exchange is not None:
        return DeadLetteringRabbitMQConsumer(settings=settings, subscription=subscription)
    return RabbitMQConsumer(settings=settings, subscription=subscription)


def rabbitmq_reply_consumer(settings: RabbitMQSettings, topic: str) -> RabbitMQReplyConsumer:
    from dispytch_rabbitmq.replies import reply_consumer

    return reply_consumer(settings, topic)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register `rabbitmq`."""
    register(
        Backend(
            name="rabbitmq",
            settings=RabbitMQSettings,
            create_producer=rabbitmq_producer,
            create_consumer=rabbitmq_consumer,
            capabilities=Capabilities(
                persistent=True,
                consumer_groups=True,
                redelivery=True,
                ordering=True,
                headers=True,
                wildcards=True,
                native_dead_letter=True,
            ),
            schemes=("amqp", "amqps"),
            create_reply_consumer=rabbitmq_reply_consumer,
            install="dispytch-core[rabbitmq]",
            description="RabbitMQ through aio-pika: one exchange, a durable queue per group.",
        )
    )
