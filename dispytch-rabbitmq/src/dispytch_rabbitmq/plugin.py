"""Registers the `rabbitmq` backend (URL schemes `amqp://` and `amqps://`)."""

from __future__ import annotations

from collections.abc import Callable

from dispytch.backends.backend import Backend, Subscription
from dispytch.backends.capabilities import Capabilities
from dispytch.backends.hookspecs import hookimpl
from dispytch_rabbitmq.consumer import DeadLetteringRabbitMQConsumer, RabbitMQConsumer
from dispytch_rabbitmq.producer import RabbitMQProducer
from dispytch_rabbitmq.replies import reply_consumer
from dispytch_rabbitmq.settings import RabbitMQSettings


def _producer(settings: RabbitMQSettings) -> RabbitMQProducer:
    return RabbitMQProducer(settings=settings)


def _consumer(settings: RabbitMQSettings, subscription: Subscription) -> RabbitMQConsumer:
    if settings.dead_letter_exchange is not None:
        return DeadLetteringRabbitMQConsumer(settings=settings, subscription=subscription)
    return RabbitMQConsumer(settings=settings, subscription=subscription)


@hookimpl
def dispytch_register_backends(register: Callable[[Backend], None]) -> None:
    """Register `rabbitmq`."""
    register(
        Backend(
            name="rabbitmq",
            settings=RabbitMQSettings,
            create_producer=_producer,
            create_consumer=_consumer,
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
            create_reply_consumer=reply_consumer,
            install="dispytch-core[rabbitmq]",
            description="RabbitMQ through aio-pika: one exchange, a durable queue per group.",
        )
    )
