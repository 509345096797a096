"""The queue one emitter's replies to its requests arrive on: exclusive to the emitter's
connection, so RabbitMQ deletes it when the emitter stops or its process dies.

Direct reply-to (`amq.rabbitmq.reply-to`) would need each request published on the
channel that consumes the replies; the emitter publishes through its producer's own
channel, with publisher confirms, so an exclusive queue is used instead: one queue
declared per emitter, not per request.
"""

from __future__ import annotations

from aio_pika.abc import AbstractChannel, AbstractQueue

from dispytch.backends.backend import Subscription
from dispytch.routing import TopicPattern
from dispytch_rabbitmq import topology
from dispytch_rabbitmq.consumer import RabbitMQConsumer
from dispytch_rabbitmq.settings import RabbitMQSettings


class RabbitMQReplyConsumer(RabbitMQConsumer):
    """Consumes the replies topic `topic` from an exclusive, auto-deleted queue of that
    name, bound to the exchange with the topic as its key."""

    def __init__(self, settings: RabbitMQSettings, topic: str) -> None:
        pattern = TopicPattern(topic, settings.topic_delimiter)
        super().__init__(settings=settings, subscription=Subscription(topic, (pattern,)))

    _purpose = "replies"

    async def _declare(
        self, channel: AbstractChannel, settings: RabbitMQSettings, subscription: Subscription
    ) -> AbstractQueue:
        """The exclusive replies queue, bound to the replies topic."""
        source = await topology.exchange(channel, settings)
        queue: AbstractQueue = await channel.declare_queue(
            subscription.group, exclusive=True, auto_delete=True
        )
        for key in topology.binding_keys(subscription.patterns, settings):
            await queue.bind(source, key)
        return queue


def reply_consumer(settings: RabbitMQSettings, topic: str) -> RabbitMQReplyConsumer:
    """The consumer of an emitter's replies to its requests, sent to `topic`."""
    return RabbitMQReplyConsumer(settings, topic)
